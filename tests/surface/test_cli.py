"""The sync commands of the real `tandem` CLI against a running in-process node (FakeEngine behind
its admin API): output, --json, errors on stderr, exit statuses."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

from node.sync.service import ConflictView
from tests.surface.conftest import Cli
from tests.surface.fake import FakeEngine

EXAMPLES = Path(__file__).resolve().parents[2] / "node" / "rules" / "examples"
RULES = ["--connection", "eng", "--direction", "outgoing"]


async def test_without_a_tracker_commands_say_so(cli: Cli) -> None:
    for args in (
        ["trigger", "list"],
        ["sync", "SUP-1", "--connection", "eng"],
        ["errors"],
        ["status", "X-1"],
    ):
        result = await cli(*args)
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == "Error: this node has no tracker configured (tandem init --tracker …)"
        assert result.stdout == ""


async def test_triggers(cli: Cli, fake: FakeEngine) -> None:
    r = await cli("trigger", "add", "--connection", "eng", "--query", "project = SUP", "--note", "all of SUP")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "trigger 1 (eng, active): project = SUP  # all of SUP"
    r = await cli("trigger", "add", "--connection", "nope", "--query", "project = SUP")
    assert r.exit_code == 1 and r.stderr.strip() == "Error: no connection named 'nope'"
    r = await cli("trigger", "add", "--connection", "eng", "--query", "garbage")
    assert r.exit_code == 1 and "JQL" in r.stderr
    r = await cli("trigger", "add", "--connection", "eng")
    assert r.exit_code == 2 and "--query" in r.stderr
    r = await cli("trigger", "disable", "1")
    assert r.stdout.strip() == "trigger 1 (eng, disabled): project = SUP  # all of SUP"
    r = await cli("trigger", "list")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "CONNECTION", "ACTIVE", "QUERY", "NOTE"]
    assert lines[1].split()[:3] == ["1", "eng", "no"]
    r = await cli("trigger", "enable", "1")
    assert "(eng, active)" in r.stdout
    [listed] = json.loads((await cli("trigger", "list", "--connection", "eng", "--json")).stdout)
    assert listed["active"] is True and listed["query"] == "project = SUP"
    assert json.loads((await cli("trigger", "list", "--connection", "other", "--json")).stdout) == []
    r = await cli("trigger", "remove", "1")
    assert r.exit_code == 0 and r.stdout.strip() == "trigger 1: removed"
    r = await cli("trigger", "remove", "1")
    assert r.exit_code == 1 and r.stderr.strip() == "Error: no trigger 1"
    assert (await cli("trigger", "list")).stdout.strip() == "no triggers"
    assert (await cli("trigger", "enable", "0")).exit_code == 2


async def test_sync_status_unlink(cli: Cli, fake: FakeEngine) -> None:
    r = await cli("sync", "SUP-1", "--connection", "eng")
    assert r.exit_code == 0 and r.stdout.strip() == "SUP-1: sent to eng (version 1)"
    r = await cli("sync", "SUP-1", "--connection", "eng")
    assert r.stdout.strip() == "SUP-1: not sent to eng: nothing changed"
    r = await cli("sync", "SUP-404", "--connection", "eng")
    assert r.exit_code == 1 and r.stderr.strip() == "Error: no issue 'SUP-404' in the tracker"
    r = await cli("status", "SUP-1")
    lines = r.stdout.splitlines()
    assert lines[0] == "SUP-1 over eng: linked, twin ENG-1  http://eng.example/browse/ENG-1"
    assert lines[1].startswith("  last sent      20") and lines[1].endswith("(version 1)")
    assert lines[2] == "  last received  -"
    assert lines[3] == "  last result    applied"
    assert "replica" not in r.stdout
    r = await cli("status", "SUP-1", "--replicas")
    assert '"summary": "sent"' in r.stdout and "remote replica (last received):" in r.stdout
    status = json.loads((await cli("status", "SUP-1", "--json")).stdout)
    assert status["key"] == "SUP-1" and status["twins"][0]["local_replica"] == {
        "key": "SUP-1",
        "summary": "sent",
    }
    r = await cli("unlink", "SUP-1", "--connection", "eng")
    assert r.exit_code == 0 and r.stdout.strip() == "SUP-1: unlinked from ENG-1 over eng"
    r = await cli("unlink", "SUP-1", "--connection", "eng")
    assert r.exit_code == 1 and "not linked" in r.stderr
    assert (await cli("status", "SUP-2")).stdout.strip() == "SUP-2 is not synced over any connection"


async def test_bulk_follows_the_job_to_its_end(cli: Cli, fake: FakeEngine) -> None:
    fake.issues.remove("SUP-13")  # the fake fails every *-13
    r = await cli("bulk", "--connection", "eng", "--query", "project = SUP")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "bulk job 1 done: 19/19 synced, 0 failed"
    assert "bulk job 1 (eng)" in r.stderr  # the progress bar's label (the bar itself needs a terminal)
    assert len([c for c in fake.calls if c[0] == "sync"]) == 19
    assert (await cli("status", "SUP-20", "--json")).stdout.count('"remote_key": "ENG-') == 1


async def test_bulk_with_failures_exits_1(cli: Cli, fake: FakeEngine) -> None:
    r = await cli("bulk", "--connection", "eng", "--query", "project = SUP", "--json")
    assert r.exit_code == 1
    job = json.loads(r.stdout)
    assert (job["state"], job["done"], job["failed"], job["total"]) == ("done", 19, 1, 20)


async def test_bulk_no_wait_then_reattach(cli: Cli, fake: FakeEngine) -> None:
    fake.bulk_gate.clear()
    r = await cli("bulk", "--connection", "eng", "--query", "project = SUP", "--no-wait")
    assert r.exit_code == 0 and r.stdout.strip() == "1"
    assert fake.jobs[1].state == "running" and fake.jobs[1].done == 0
    fake.polled.clear()
    follow = asyncio.create_task(cli("bulk", "--job", "1"))
    await asyncio.wait_for(fake.polled.wait(), 10)  # attached to the running job
    assert not follow.done()
    fake.bulk_gate.set()
    r = await asyncio.wait_for(follow, 30)
    assert r.exit_code == 1  # SUP-13 failed
    assert r.stdout.strip() == "bulk job 1 done: 19/20 synced, 1 failed"
    assert "see `tandem errors`" in r.stderr


async def test_bulk_usage_errors(cli: Cli, fake: FakeEngine) -> None:
    for args in (["bulk"], ["bulk", "--connection", "eng"], ["bulk", "--job", "1", "--query", "x = 1"]):
        r = await cli(*args)
        assert r.exit_code == 2, (args, r.output)
    r = await cli("bulk", "--job", "7")
    assert r.exit_code == 1 and r.stderr.strip() == "Error: no bulk job 7"
    assert fake.jobs == {}


async def test_rules_edit_test_publish_rollback(cli: Cli, fake: FakeEngine, tmp_path: Path) -> None:
    r = await cli("rules", "show", *RULES)
    assert r.stdout.splitlines()[1] == "published: none (Basic defaults are in force)"

    bad = tmp_path / "bad.py"
    bad.write_text("replica['summary'] = issue.summary\nif True\n    pass\n")
    r = await cli("rules", "edit", *RULES, "--file", str(bad))
    assert r.exit_code == 1
    assert r.stderr.splitlines() == ["Error: line 2: SyntaxError: expected ':'", "  2 | if True"]

    visual = EXAMPLES / "support_outgoing.yaml"
    r = await cli("rules", "edit", *RULES, "--file", str(visual))
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("outgoing rules of eng: draft saved as version 1 (visual, draft, 20")
    r = await cli("rules", "test", *RULES, "--key", "SUP-3")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"key": "SUP-3", "mode": "visual"}
    assert r.stderr.strip() == "warning: a warning"
    assert fake.calls[-1] == ("test_rules", {"key": "SUP-3", "replica": None, "draft": True, "version": 1})
    r = await cli("rules", "publish", *RULES)
    assert r.exit_code == 0 and r.stdout.startswith(
        "outgoing rules of eng: published version 1 (visual, published"
    )

    script = tmp_path / "v2.py"
    script.write_text("replica['summary'] = '[SUP] ' + replica['summary']\n")
    assert (await cli("rules", "edit", *RULES, "--file", str(script))).exit_code == 0
    r = await cli("rules", "show", *RULES)
    assert "published: version 1 (visual" in r.stdout and "draft: version 2 (script" in r.stdout
    assert "    replica['summary'] = '[SUP] ' + replica['summary']" in r.stdout
    assert "only_if:" in r.stdout
    r = await cli("rules", "test", *RULES, "--key", "SUP-3", "--published", "--json")
    assert json.loads(r.stdout)["replica"] == {"key": "SUP-3", "mode": "visual"}
    assert fake.calls[-1][1]["draft"] is False
    assert (await cli("rules", "publish", *RULES)).exit_code == 0
    r = await cli("rules", "rollback", *RULES)
    assert r.exit_code == 0 and r.stdout.startswith("outgoing rules of eng: rolled back to version 3 (visual")
    r = await cli("rules", "rollback", *RULES)
    assert r.exit_code == 1 and "no earlier published version" in r.stderr
    r = await cli("rules", "show", *RULES, "--versions")
    rows = [line.split()[:3] for line in r.stdout.splitlines()]
    assert rows == [
        ["VERSION", "STATE", "MODE"],
        ["1", "superseded", "visual"],
        ["2", "superseded", "script"],
        ["3", "published", "visual"],
    ]
    shown = json.loads((await cli("rules", "show", *RULES, "--json")).stdout)
    assert shown["published"]["version"] == 3 and shown["draft"] is None
    r = await cli("rules", "publish", *RULES)
    assert r.exit_code == 1 and r.stderr.strip() == "Error: there is no draft to publish"


async def test_rules_incoming_test_from_stdin(cli: Cli, fake: FakeEngine) -> None:
    incoming = ["--connection", "eng", "--direction", "incoming"]
    r = await cli("rules", "edit", *incoming, "--mode", "basic")
    assert r.exit_code == 0, r.output
    replica = {"key": "ENG-9", "summary": "from engineering"}
    r = await cli("rules", "test", *incoming, "--replica", "-", input=json.dumps(replica))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"action": "create", "from": replica}
    r = await cli("rules", "test", *incoming, "--replica", "-", "--key", "SUP-1", input=json.dumps(replica))
    assert json.loads(r.stdout) == {"action": "update", "from": replica}
    assert fake.calls[-1][1]["key"] == "SUP-1" and fake.calls[-1][1]["replica"] == replica
    r = await cli("rules", "test", *incoming, "--replica", "-", input="{not json")
    assert r.exit_code == 2 and "not JSON" in r.stderr


async def test_rules_usage_errors(cli: Cli, fake: FakeEngine, tmp_path: Path) -> None:
    odd = tmp_path / "rules.txt"
    odd.write_text("x")
    cases = [
        (["rules", "edit", *RULES, "--file", str(odd)], "--mode"),
        (["rules", "edit", *RULES], "--file"),
        (["rules", "edit", *RULES, "--file", str(tmp_path / "missing.yaml")], "cannot read"),
        (["rules", "test", *RULES], "--key"),
        (["rules", "test", *RULES, "--replica", "-"], "outgoing rules run on a local issue"),
        (["rules", "show", "--connection", "eng", "--direction", "sideways"], "sideways"),
        (["rules", "show", "--direction", "outgoing"], "--connection"),
    ]
    for args, words in cases:
        r = await cli(*args)
        assert r.exit_code == 2, (args, r.output)
        assert words in r.stderr, (args, r.stderr)
    assert (
        fake.histories.get(("eng", "outgoing")) is None or fake.histories[("eng", "outgoing")].draft is None
    )


async def test_errors_retry_resolve_conflicts(cli: Cli, fake: FakeEngine) -> None:
    assert (await cli("errors")).stdout.strip() == "no errors"
    fake.add_error()
    fake.add_error(
        kind="tracker", message="Jira answered 503", line=None, paused=False, entity="SUP-2", count=5
    )
    r = await cli("errors")
    header, first, second = r.stdout.splitlines()
    assert header.split() == [
        "ID",
        "STATE",
        "KIND",
        "CONNECTION",
        "ENTITY",
        "COUNT",
        "LAST",
        "SEEN",
        "MESSAGE",
    ]
    assert first.startswith("1   open, paused  rule ") and first.endswith(
        "line 3: NameError: name 'x' is not defined"
    )
    assert second.split()[:6] == ["2", "open", "tracker", "eng", "SUP-2", "5"]
    r = await cli("retry", "1")
    assert r.exit_code == 0 and r.stdout.strip() == "error 1: retrying"
    r = await cli("resolve", "2")
    assert r.exit_code == 0 and r.stdout.strip() == "error 2: resolved"
    assert [e["id"] for e in json.loads((await cli("errors", "--json")).stdout)] == [1]
    assert [e["id"] for e in json.loads((await cli("errors", "--json", "--all")).stdout)] == [1, 2]
    r = await cli("resolve", "9")
    assert r.exit_code == 1 and r.stderr.strip() == "Error: no error 9"
    assert (await cli("retry", "x")).exit_code == 2

    assert (await cli("conflicts")).stdout.strip() == "no conflicts"
    fake.conflicts_.append(
        ConflictView(
            id=1,
            connection="eng",
            entity="SUP-4",
            field="priority",
            local_value="High",
            remote_value="Low",
            winner="remote",
            at=dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        )
    )
    r = await cli("conflicts")
    assert r.stdout.splitlines()[1].split() == [
        "1",
        "eng",
        "SUP-4",
        "priority",
        '"High"',
        '"Low"',
        "remote",
        "2030-01-02",
        "03:04:05",
    ]
    assert json.loads((await cli("conflicts", "--connection", "other", "--json")).stdout) == []
    [c] = json.loads((await cli("conflicts", "--connection", "eng", "--json")).stdout)
    assert c["winner"] == "remote" and c["local_value"] == "High"
