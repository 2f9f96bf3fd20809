"""Script mode: the sandbox refuses escapes, bounds time and memory, and points at the line."""

from __future__ import annotations

import time

import pytest

from node.rules import IncomingContext, RuleError, RuleSet, ScriptPool, ScriptTimeout, compile_rules
from node.rules import test_run as run_test
from node.rules.ruleset import CompiledRules
from protocol.replica import StatusRef

from .conftest import at, eng_issue, support_issue


def script(
    source: str, pool: ScriptPool, direction: str = "outgoing", time_limit: float = 1.0
) -> CompiledRules:
    return compile_rules(
        RuleSet(mode="script", direction=direction, source=source, time_limit=time_limit),
        pool=pool,
    )


def refused(source: str) -> RuleError:
    with pytest.raises(RuleError) as err:
        compile_rules(RuleSet(mode="script", direction="outgoing", source=source))
    return err.value


@pytest.mark.parametrize(
    ("source", "line", "words"),
    [
        ("x = 1\ny = 2\nimport os\n", 3, "imports are not allowed"),
        ("from os import path\n", 1, "imports are not allowed"),
        ("x = replica.__class__\n", 1, "'__class__'"),
        ("x = ().__class__.__base__.__subclasses__()\n", 1, "names starting with '_'"),
        ("x = open('/etc/passwd').read()\n", 1, "'open' is not allowed"),
        ("x = getattr(replica, '__globals__')\n", 1, "'getattr' is not allowed"),
        ("x = '{0.__class__}'.format(replica)\n", 1, "str.format is not allowed"),
        ("f = 'x'.format_map\n", 1, "str.format is not allowed"),
        ("eval('1')\n", 1, "'eval' is not allowed"),
        ("exec('x = 1')\n", 1, "'exec' is not allowed"),
        ("\n\ncompile('1', 'f', 'eval')\n", 3, "'compile' is not allowed"),
        ("g = globals()\n", 1, "'globals' is not allowed"),
        ("t = type(replica)\n", 1, "'type' is not allowed"),
        ("__builtins__['open']\n", 1, "names starting with '_'"),
        ("class X:\n    pass\n", 1, "class definitions are not allowed"),
        ("g = (x for x in [1])\nf = g.gi_frame\n", 2, "'gi_frame'"),
        ("def f():\n    yield 1\n", 2, "generators"),
        ("def f():\n    global replica\n", 2, "'global'"),
        ("with x:\n    pass\n", 1, "'with'"),
        ("x = (\n", 1, "SyntaxError"),
        ("try:\n    pass\nexcept BaseException:\n    pass\n", 3, "'BaseException' is not allowed"),
    ],
)
def test_escapes_are_refused_before_running_with_the_line(source: str, line: int, words: str) -> None:
    err = refused(source)
    assert err.line == line, str(err)
    assert words in str(err) and str(err).startswith(f"line {line}: ")


def test_outgoing_script_shapes_the_replica_prefilled_by_basic(pool: ScriptPool) -> None:
    rules = script(
        """
# Share the customer's name and tag the summary; drop Basic's labels.
replica["custom_fields"]["customer"] = issue["custom_fields"]["customfield_10010"]
replica["summary"] = "[" + issue["key"] + "] " + replica["summary"]
replica["labels"] = [l for l in replica["labels"] if l.startswith("cust-")]
if issue["priority"] == "High":
    replica["priority"] = "P1"
internal = [c for c in issue["comments"] if c["internal"]]
warn(f"{len(internal)} internal comment(s) kept home")
replica["description"] = doc(plain_text(replica["description"]).upper())
""",
        pool,
    )
    result = rules.outgoing_result(support_issue())
    replica = result.replica
    assert replica is not None
    assert replica.custom_fields == {"customer": "ACME Corp"}
    assert replica.summary == "[SUP-42] Checkout fails with HTTP 500 for EU customers"
    assert replica.labels == ["cust-acme"] and replica.priority == "P1"
    assert [c.id for c in replica.comments] == ["100", "102"]  # Basic's prefill: public only
    assert result.warnings == ["1 internal comment(s) kept home"]
    assert replica.description is not None and "SINCE THE 1 MAY RELEASE" in str(replica.description)


def test_skip_filters_an_issue_out(pool: ScriptPool) -> None:
    rules = script('if "escalated" not in issue["labels"]:\n    skip("not escalated")\n', pool)
    assert rules.outgoing(support_issue()) is not None
    result = rules.outgoing_result(support_issue(labels=[]))
    assert result.replica is None and result.skipped == "skipped by the script: not escalated"


def test_the_issue_view_is_read_only(pool: ScriptPool) -> None:
    with pytest.raises(RuleError) as err:
        script('x = 1\nissue["labels"].append("leak")\n', pool).outgoing(support_issue())
    assert err.value.line == 2 and "read-only" in str(err.value)


def test_runtime_errors_name_the_script_line(pool: ScriptPool) -> None:
    source = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\nf = 6\nreplica['summary'] = foo\n"
    with pytest.raises(RuleError) as err:
        script(source, pool).outgoing(support_issue())
    assert str(err.value) == "line 7: NameError: name 'foo' is not defined"
    with pytest.raises(RuleError) as err:
        script("def f(x):\n    return x['missing']\n\nf(replica)\n", pool).outgoing(support_issue())
    assert err.value.line == 2 and "KeyError" in str(err.value)


def test_output_that_is_not_a_valid_replica_says_what_is_wrong(pool: ScriptPool) -> None:
    with pytest.raises(RuleError) as err:
        script('replica["attachments"][0]["size"] = -1\n', pool).outgoing(support_issue())
    assert err.value.path == "replica.attachments[0].size"
    with pytest.raises(RuleError) as err:
        script('replica["labels"] = {"a", "b"}\n', pool).outgoing(support_issue())
    assert "not JSON" in str(err.value)
    with pytest.raises(RuleError) as err:
        script("replica = 3\n", pool).outgoing(support_issue())
    assert err.value.path == "replica"


def test_infinite_loop_is_killed_within_the_time_limit_and_the_pool_recovers(pool: ScriptPool) -> None:
    rules = script("n = 0\nwhile True:\n    n += 1\n", pool, time_limit=0.5)
    started = time.monotonic()
    with pytest.raises(ScriptTimeout) as err:
        rules.outgoing(support_issue())
    elapsed = time.monotonic() - started
    assert elapsed < 0.5 + 1.5, elapsed
    assert "time limit (0.5 s)" in str(err.value)
    assert script("replica['summary'] = 'ok'\n", pool).outgoing(support_issue()).summary == "ok"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "bomb",
    [
        "x = 'a' * (10 * 1024 ** 3)\n",  # 10 GB at once
        "chunks = []\nwhile True:\n    chunks.append('x' * 10 ** 7)\n",  # grows until the bound
        "x = [0] * (2 * 10 ** 9)\n",
    ],
)
def test_memory_bombs_are_stopped_and_the_pool_recovers(pool: ScriptPool, bomb: str) -> None:
    started = time.monotonic()
    with pytest.raises(RuleError) as err:
        script(bomb, pool, time_limit=5.0).outgoing(support_issue())
    assert "MemoryError" in str(err.value) or "died" in str(err.value), str(err.value)
    assert time.monotonic() - started < 6
    assert script("replica['summary'] = 'ok'\n", pool).outgoing(support_issue()).summary == "ok"  # type: ignore[union-attr]


def test_huge_integer_arithmetic_is_cut_by_the_time_limit(pool: ScriptPool) -> None:
    with pytest.raises(ScriptTimeout):
        script("x = 7 ** (10 ** 9)\n", pool, time_limit=0.5).outgoing(support_issue())


def test_incoming_script_adjusts_basic_changes(pool: ScriptPool) -> None:
    rules = script(
        """
status_map = {"Accept": "To Do", "Root Cause": "In Progress", "Resolve": "Done"}
name = replica["status"]["name"]
if name in status_map:
    changes["status"] = status_map[name]
else:
    warn("unknown support status " + name)
    changes["status"] = None
if issue is None:
    changes["fields"]["labels"] = ["from-support"]
    changes["fields"]["issue_type"] = "Bug"
for c in changes["comments_add"]:
    c["internal"] = True
""",
        pool,
        direction="incoming",
    )
    sup = compile_rules(RuleSet(mode="basic", direction="outgoing"))
    replica = sup.outgoing(support_issue())
    assert replica is not None
    ctx = IncomingContext(project="ENG", peer_name="Support")
    cs = rules.incoming(replica, None, None, ctx)
    assert cs.action == "create" and cs.status == "To Do"
    assert cs.fields.labels == ["from-support"] and cs.fields.issue_type == "Bug"
    assert cs.fields.summary == replica.summary  # Basic's prefill kept
    assert cs.comments_add and all(c.internal for c in cs.comments_add)
    odd = replica.model_copy(update={"status": StatusRef(name="Close"), "updated": at(90)})
    cs = rules.incoming(odd, replica, eng_issue(), ctx)
    assert cs.status is None and cs.warnings == ["unknown support status Close"]


def test_incoming_script_skip_and_invalid_changes(pool: ScriptPool) -> None:
    replica = compile_rules(RuleSet(mode="basic", direction="outgoing")).outgoing(support_issue())
    assert replica is not None
    cs = script("if previous is None:\n    skip('manual linking only')\n", pool, "incoming").incoming(
        replica, None, None, IncomingContext()
    )
    assert cs.action == "ignore" and cs.reason == "skipped by the script: manual linking only"
    with pytest.raises(RuleError) as err:
        script("changes['action'] = 'explode'\n", pool, "incoming").incoming(
            replica, None, None, IncomingContext()
        )
    assert err.value.path == "changes.action"
    with pytest.raises(RuleError) as err:
        script("changes['fields']['due_date'] = 'soon'\n", pool, "incoming").incoming(
            replica, None, None, IncomingContext()
        )
    assert err.value.path == "changes.fields.due_date"


def test_test_run_reports_errors_with_the_line_instead_of_raising(pool: ScriptPool) -> None:
    ruleset = RuleSet(mode="script", direction="outgoing", source="x = 1\ny = x.nope\n")
    result = run_test(ruleset, snapshot=support_issue(), pool=pool)
    assert result.result is None and result.line == 2 and "AttributeError" in (result.error or "")


async def test_async_variant_does_not_block_the_event_loop(pool: ScriptPool) -> None:
    rules = script("replica['summary'] = 'async ok'\n", pool)
    out = await rules.outgoing_async(support_issue())
    assert out.replica is not None and out.replica.summary == "async ok"


def test_the_script_worker_does_not_inherit_the_nodes_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from node.rules.sandbox import _Worker

    monkeypatch.setenv("TANDEM_TRACKER_TOKEN", "s3cret-token")
    worker = _Worker(256 * 1024 * 1024)
    try:
        with open(f"/proc/{worker.proc.pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    finally:
        worker.kill()
    assert not any(item.startswith(b"TANDEM_TRACKER_TOKEN=") for item in environ)
    assert any(item.startswith(b"PYTHONPATH=") for item in environ)
