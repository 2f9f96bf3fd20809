"""Every ``scripts/bench_*.py`` runs end to end with tiny sizes and prints its table.

The scripts are run by hand, so nothing else notices when one stops matching the code it measures
(``bench_apply.py`` failed every apply for a session). Each run here is a subprocess of this tree
(``PYTHONPATH`` is the repository root, not the installed package) and must exit 0, print no
traceback or logged failure, print its table with a number in every row checked, and, where the
script reports what it did (twins linked, requests, deliveries, errors), report doing all of it.
Timings are never asserted: a benchmark, not a timed test. ``scripts/bench.py`` has its own smoke
test (``test_bench_smoke.py``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUM = r"[\d.]+"
RATE = r"[\d,]+"  # thousands separators

# A failure that leaves the exit code at 0: an exception in a task or callback, or a leak aiohttp
# reports. Tables have legitimate "errors"/"failed" columns, so stdout is held to these only.
FAILURE = re.compile(
    r"Traceback \(most recent call last\)|exception was never retrieved|Exception in callback"
    r"|Task was destroyed but it is pending|Unclosed (client session|connector)"
)
# Every script prints nothing on stderr when all goes well; a logged error goes there.
STDERR_FAILURE = re.compile(r"(?i)\b(traceback|exception|error|failed|failure|critical)\b")


@dataclass(frozen=True)
class Run:
    script: str
    args: tuple[str, ...]
    check: Callable[[str], None]
    variant: str = ""
    timeout: float = 120.0

    @property
    def id(self) -> str:
        return f"{self.script}[{self.variant}]" if self.variant else self.script


def line(out: str, pattern: str) -> re.Match[str]:
    found = re.search(pattern, out, re.M)
    assert found is not None, f"no line matching {pattern!r} in:\n{out}"
    return found


def labelled(out: str, labels: list[str], cells: str) -> dict[str, re.Match[str]]:
    """The row of each label: the label at the start, then ``cells`` (a regex) to the end."""
    return {label: line(out, rf"^\s*{re.escape(label)}\s+{cells}\s*$") for label in labels}


# -- what each script must print ----------------------------------------------------------------

ADAPTER_ISSUES, ADAPTER_COMMENTS = 3, 2
ADAPTER_ROWS = [
    "get_issue ×N (human)",
    "get_issues (human)",
    "get_issue ×N (own)",
    "get_issues (own)",
    "create_issue_ref ×N",
    "create_issues_ref",
    "add_comment ×N×C (marker)",
    "get_issues (own, just written)",
    "client.request POST comment ×N×C",
    "search_keys + get_issue",
    "search (pages of 100)",
]


def check_adapter(out: str) -> None:
    line(out, rf"^{ADAPTER_ISSUES} issues × {ADAPTER_COMMENTS} comments$")
    row = r"^\| (cloud|server) \| (.+?) \| (\d+) \| ([\d.]+) \| [\d.]+ \| [\d.]+ \| [\d.]+ \|$"
    rows = {(m[1], m[2]): m for m in re.finditer(row, out, re.M)}
    assert set(rows) == {(mode, what) for mode in ("cloud", "server") for what in ADAPTER_ROWS}, out
    for (_, what), m in rows.items():
        assert int(m[3]) == ADAPTER_ISSUES, m[0]
        assert float(m[4]) > 0, m[0]  # every row made tracker calls
        if what == "client.request POST comment ×N×C":  # one POST per comment, nothing else
            assert float(m[4]) == ADAPTER_COMMENTS, m[0]


APPLY_ISSUES, APPLY_COMMENTS = 4, 2


def check_apply(out: str) -> None:
    twins = line(out, r"^\s+twins linked\s+(\d+) \(inbox rows left unprocessed: (\d+)\)$")
    assert (int(twins[1]), int(twins[2])) == (APPLY_ISSUES, 0), twins[0]
    labelled(out, ["wall (s)"], NUM)
    labelled(
        out,
        ["engine process CPU / issue", "of which store writer", "emulator CPU / issue"],
        rf"{NUM} ms",
    )
    labelled(out, ["tracker calls / issue"], NUM)
    sent = labelled(out, ["messages sent"], r"(\d+)")["messages sent"]
    # twins still get linked when every send fails (as with a stand-in missing ``processed=``)
    assert int(sent[1]) >= 1, sent[0]
    start = out.find("\n{\n")
    assert start >= 0, out  # the routes the emulator served, as JSON
    routes = json.loads(out[start:])
    assert routes["POST /rest/api/{v}/issue/{key}/comment"] == APPLY_ISSUES * APPLY_COMMENTS, routes
    assert routes["POST /rest/api/{v}/issue/bulk"] >= 1, routes


def check_hotpaths(out: str) -> None:
    labels = [
        "A: outgoing rules (basic)",
        "A: session send (encode + seal)",
        "B: session receive + inbox copy",
        "B: engine decode of the inbox row",
        "B: incoming rules (basic, create)",
        "B: incoming rules (basic, unchanged)",
        "B: to_wiki, description",
        "B: to_wiki, one comment",
        "A: from_adf, one comment",
        "B: from_wiki, one comment (final read)",
        "B: echo baseline (outgoing rules)",
        "replica fingerprint",
        "one issue through A and B (sum)",
    ]
    labelled(out, labels, NUM)
    line(out, rf"^\(measured in {NUM} CPU s\)$")


JQL_ISSUES = 30


def check_jql(out: str) -> None:
    line(out, rf"^built {JQL_ISSUES} synthetic snapshots in {NUM} s$")
    line(out, r"^query\s+parse µs\s+compile µs\s+eval µs/issue\s+hits\s+sort ms$")
    # a row: the query (72 columns, may end in digits), then parse, compile, eval, hits[, sort]
    rows = [m for m in re.finditer(rf"^.{{72}} +(\d+) +(\d+) +({NUM}) +(\d+)(?: +({NUM}))? *$", out, re.M)]
    assert len(rows) >= 10, out
    hits = [int(m[4]) for m in rows]
    assert all(h <= JQL_ISSUES for h in hits) and sum(hits) > 0, out  # queries match some issues
    assert any(m[5] is not None for m in rows), out  # ORDER BY queries sorted their hits


def check_protocol(out: str) -> None:
    sizes = line(out, r"^replica plaintext (\d+) bytes, envelope (\d+) bytes, one core$")
    assert int(sizes[2]) > int(sizes[1]) > 4000, sizes[0]
    labels = [
        "seal+open, 4 KiB replica bytes",
        "encode+seal+open+decode (pydantic)",
        "invitation encode (sign)",
        "invitation decode (verify)",
    ]
    for label, m in labelled(out, labels, rf"{RATE} /s\s+{NUM} µs\s+(\d+)").items():
        assert int(m[1]) >= 100, (label, m[0])  # samples


def check_store(out: str) -> None:
    line(out, r"^Store micro benchmark \(64 ops, concurrency 4\)$")
    kinds = ("point read", "small write", "scan read")
    labelled(out, [f"{kind} ({how})" for kind in kinds for how in ("seq", "conc")], rf"{RATE}\s+{NUM}")


EMU_ISSUES, EMU_REQUESTS, EMU_SEARCHES = 60, 20, 4


def check_emulator_requests(out: str) -> None:
    line(out, rf"^Jira emulator \(cloud\), {EMU_ISSUES} issues \(setup {NUM}s\), concurrency 4$")
    expected = {
        "get issue (v2)": EMU_REQUESTS,
        "get issue (v3, expand=changelog)": EMU_REQUESTS,
        "search v2 (JQL, 50/page)": EMU_SEARCHES,
        "search/jql v3 (JQL, 50/page)": EMU_SEARCHES,
        "search v2 (50 ids/keys, 50/page)": EMU_SEARCHES,
        "search/jql v3 (50 ids/keys, 50/page)": EMU_SEARCHES,
    }
    rows = labelled(out, list(expected), rf"(\d+)\s+{NUM}\s+{NUM}\s+{NUM}\s+(\d+)")
    for label, m in rows.items():
        assert (int(m[1]), int(m[2])) == (expected[label], 0), m[0]  # requests, errors


EMU_COMMENTS = 14  # 2 issues × 7 comments


def check_emulator_webhooks(out: str) -> None:
    line(out, r"^Jira emulator \(cloud\): 2 issues x 7 comments, concurrency 2$")
    rows = labelled(out, ["no hook", "1 webhook"], rf"(\d+)\s+{NUM}\s+{NUM}\s+\d+\s+(\d+)\s+(\d+)")
    for m in rows.values():
        assert int(m[1]) == EMU_COMMENTS and int(m[3]) == 0, m[0]  # comments, errors
    assert int(rows["no hook"][2]) == 0, rows["no hook"][0]
    assert int(rows["1 webhook"][2]) >= EMU_COMMENTS, rows["1 webhook"][0]  # an event per comment
    line(out, rf"^CPU per delivered event: -?\d+ us \({NUM} events/comment\)$")


EMU_DELIVERIES = 20


def check_emulator_deliveries(out: str) -> None:
    line(out, rf"^webhook delivery alone: {EMU_DELIVERIES} x \d+ bytes, 4 workers")
    for m in labelled(out, ["aiohttp", "lean"], rf"\d+\s+{NUM}\s+(\d+)\s+(\d+)").values():
        assert (int(m[1]), int(m[2])) == (EMU_DELIVERIES, 0), m[0]  # delivered, failed


def check_emulator_reads(out: str) -> None:
    line(out, r"^Jira emulator \(cloud\), 3 rounds of 3 new issues x 7 comments, one webhook")
    expected = {
        "POST comment (+ its webhooks)": 3 * 7,
        "search v2 (id in, 2/search, *all)": 2,  # 3 issues, 2 per search
        "GET issue/{id}/comment?expand=properties": 3,
    }
    rounds = r"\d+ / \d+ / \d+"
    for label, m in labelled(out, list(expected), rf"(\d+)\s+{NUM}\s+{rounds}").items():
        assert int(m[1]) == expected[label], m[0]
    labelled(out, ["all of it, per issue"], rounds)
    assert "errors:" not in out, out


def check_emulator_pages(out: str) -> None:
    line(out, r"^Jira emulator \(cloud\), search/jql pages of 100 over 120 issues x 7 comments$")
    line(out, r"^emulator CPU per issue listed \(3 passes\): \d+ us / \d+ us / \d+ us$")


LINK_ROWS = ["direct (public ← public)", "private outbound (private → public)", "relay (private ↔ private)"]


def check_links(out: str) -> None:
    line(out, r"^node-to-node delivery, 3 probes one at a time; throughput with 5 queued$")
    labelled(out, LINK_ROWS, r"\s+".join([NUM] * 5))


def check_links_cpu(out: str) -> None:
    line(out, r"^5 probes of 200 payload bytes, public A → private B \(B dialled A\), best of 3$")
    labelled(out, ["node A CPU µs/message", "node B CPU µs/message", "messages/s"], NUM)


def check_webhooks(out: str) -> None:
    line(out, r"^10 deliveries per scenario and round, 1 round\(s\) \(medians\), 2 in flight")
    row = rf"^(server|app)\s+(echo|echo \(old comment_\* hook\)|person)\s+\d+\s+\d+\s+{NUM}\s+(\d+)$"
    rows = {(m[1], m[2]): int(m[3]) for m in re.finditer(row, out, re.M)}
    scenarios = ("echo", "echo (old comment_* hook)", "person")
    assert set(rows) == {(lst, s) for lst in ("server", "app") for s in scenarios}, out
    for (listener, scenario), handed in rows.items():
        if scenario == "person":  # handed to the engine (bursts of one issue coalesce)
            assert 1 <= handed <= 10, (listener, scenario, handed)
        else:  # the node's own comments: intake drops them
            assert handed == 0, (listener, scenario, handed)


RUNS = [
    Run("bench_protocol.py", ("--seconds", "0.1"), check_protocol),
    Run("bench_hotpaths.py", ("--seconds", "0.05"), check_hotpaths),
    Run("bench_jql.py", ("--issues", str(JQL_ISSUES), "--repeat", "1"), check_jql),
    Run("bench_store.py", ("--ops", "64", "--concurrency", "4"), check_store),
    Run(
        "bench_adapter.py",
        ("--issues", str(ADAPTER_ISSUES), "--comments", str(ADAPTER_COMMENTS), "--mode", "both"),
        check_adapter,
    ),
    Run(
        "bench_apply.py",
        ("--issues", str(APPLY_ISSUES), "--comments", str(APPLY_COMMENTS), "--rate", "200", "--burst", "2"),
        check_apply,
    ),
    *(
        Run(
            "bench_jira_emulator.py",
            (
                *("--issues", str(EMU_ISSUES), "--requests", str(EMU_REQUESTS)),
                *("--search-requests", str(EMU_SEARCHES), "--concurrency", "4", *extra),
            ),
            check_emulator_requests,
            variant,
        )
        for variant, extra in (("requests", ()), ("full-scan", ("--full-scan",)))
    ),
    Run(
        "bench_jira_emulator.py",
        ("--webhooks", "--comments", str(EMU_COMMENTS), "--concurrency", "2"),
        check_emulator_webhooks,
        "webhooks",
    ),
    Run(
        "bench_jira_emulator.py",
        ("--deliveries", str(EMU_DELIVERIES)),
        check_emulator_deliveries,
        "deliveries",
    ),
    Run(
        "bench_jira_emulator.py", ("--reads", "--issues", "3", "--batch", "2"), check_emulator_reads, "reads"
    ),
    Run("bench_jira_emulator.py", ("--pages", "--issues", "120"), check_emulator_pages, "pages"),
    Run("bench_links.py", ("--count", "3", "--burst", "5"), check_links, "links"),
    Run("bench_links.py", ("--cpu", "5", "--payload", "200"), check_links_cpu, "cpu"),
    Run(
        "bench_webhooks.py",
        ("--deliveries", "10", "--concurrency", "2", "--listener", "both"),
        check_webhooks,
    ),
]


def run_script(run: Run) -> tuple[int, str, str]:
    """Run the script in its own process group, so a hung run takes its children (nodes, emulators,
    receivers) down with it when the timeout kills it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, f"scripts/{run.script}", *run.args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=run.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"{run.id} still running after {run.timeout} s\n{out[-2000:]}\n{err[-3000:]}")
    return proc.returncode, out, err


@pytest.mark.timeout(180)
@pytest.mark.parametrize("run", RUNS, ids=lambda run: run.id)
def test_a_tiny_run_prints_its_table(run: Run) -> None:
    code, out, err = run_script(run)
    assert code == 0, f"exit {code}\n{out[-2000:]}\n{err[-4000:]}"
    for text in (out, err):
        failure = FAILURE.search(text)
        assert failure is None, f"{failure[0]!r} in the output:\n{out[-2000:]}\n{err[-4000:]}"
    bad = [row for row in err.splitlines() if STDERR_FAILURE.search(row)]
    assert not bad, err[-4000:]
    run.check(out)


def test_every_bench_script_is_run() -> None:
    """A new ``scripts/bench_*.py`` must be added to ``RUNS`` (with its own tiny arguments)."""
    on_disk = {path.name for path in (ROOT / "scripts").glob("bench_*.py")}
    assert on_disk, ROOT / "scripts"
    assert on_disk == {run.script for run in RUNS}
