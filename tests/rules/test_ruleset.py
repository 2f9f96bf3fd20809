"""Rule sets: versions, draft → publish → rollback, test runs, direction checks."""

from __future__ import annotations

import datetime as dt

import pytest

from node.rules import IncomingContext, RuleError, RuleHistory, RuleSet, compile_rules
from node.rules import test_run as run_test

from .conftest import eng_issue, support_issue


def clock() -> dt.datetime:
    return dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def test_before_any_publish_basic_is_in_force() -> None:
    history = RuleHistory("outgoing", clock=clock)
    assert history.current.mode == "basic" and history.current.version == 0
    assert history.versions() == [] and history.draft is None


def test_draft_publish_rollback_state_machine() -> None:
    history = RuleHistory("outgoing", clock=clock)
    draft = history.edit_draft("visual", "fields: {reporter: true}\n")
    assert (draft.state, draft.version) == ("draft", 1)
    assert history.current.version == 0  # a draft changes nothing in force
    v1 = history.publish()
    assert (v1.state, v1.version, v1.mode) == ("published", 1, "visual")
    assert history.current == v1 and history.draft is None

    history.edit_draft("visual", "comments: {enabled: false}\n")
    history.edit_draft("visual", "attachments: {enabled: false}\n")  # editing replaces the one draft
    v2 = history.publish()
    assert v2.version == 2 and v2.source == "attachments: {enabled: false}\n"

    history.edit_draft("script", "replica['summary'] = 'x'\n")
    v3 = history.publish()
    assert history.current == v3

    back = history.rollback()  # v3 undone: v2 in force again, as v4
    assert (back.version, back.source, back.note) == (4, v2.source, "rollback to v2")
    again = history.rollback()  # and again: v1, as v5
    assert (again.version, again.source, again.note) == (5, v1.source, "rollback to v1")
    with pytest.raises(RuleError, match="no earlier published version"):
        history.rollback()
    assert [v.version for v in history.versions()] == [1, 2, 3, 4, 5]
    assert all(v.state == "published" for v in history.versions())
    assert history.get(3) == v3
    with pytest.raises(RuleError, match="no version 9"):
        history.get(9)


def test_an_invalid_draft_cannot_be_published_and_stays_for_fixing() -> None:
    history = RuleHistory("incoming", clock=clock)
    history.edit_draft("script", "import os\n")
    with pytest.raises(RuleError) as err:
        history.publish()
    assert err.value.line == 1
    assert history.draft is not None and history.versions() == []
    history.edit_draft("visual", "values: {status: {map: {Open: To Do}}}\n")
    assert history.publish().version == 1
    with pytest.raises(RuleError, match="no draft"):
        history.publish()


def test_draft_after_rollback_gets_a_fresh_number() -> None:
    history = RuleHistory("outgoing", clock=clock)
    for src in ("a: 1\n", "b: 2\n"):
        history.edit_draft("basic", src)
        history.publish()
    history.edit_draft("basic", "draft\n")
    history.rollback()
    assert history.draft is not None and history.draft.version == 4
    assert history.publish().version == 4


def test_test_run_outgoing_and_incoming_apply_nothing() -> None:
    out = run_test(
        RuleSet(mode="visual", direction="outgoing", source="fields: {reporter: true}\n"),
        snapshot=support_issue(),
    )
    assert out.error is None and out.result is not None
    assert out.result["reporter"]["email"] == "jane.doe@customer.example"
    assert out.result["entity"]["key"] == "SUP-42"
    replica = compile_rules(RuleSet(mode="basic", direction="outgoing")).outgoing(support_issue())
    assert replica is not None
    inc = run_test(
        RuleSet(mode="basic", direction="incoming"),
        replica=replica,
        local=eng_issue(),
        incoming_ctx=IncomingContext(project="ENG"),
    )
    assert inc.error is None and inc.result is not None and inc.result["action"] == "update"
    # First sync against an existing issue: equal fields are left alone, differing ones are
    # conflicts (ENG's status changed at 09:10, after support's at 09:03: ENG keeps "To Do").
    assert "summary" not in inc.result["fields"] and inc.result["status"] is None
    assert {(c["field"], c["winner"]) for c in inc.result["conflicts"]} >= {("status", "local")}


def test_test_run_reports_config_errors_with_path() -> None:
    result = run_test(RuleSet(mode="visual", direction="incoming", source="create: maybe\n"), replica=None)
    assert result.error is not None and result.path == "create"
    missing = run_test(RuleSet(mode="basic", direction="incoming"))
    assert missing.error == "an incoming test run needs a replica"


def test_rules_refuse_the_other_direction() -> None:
    rules = compile_rules(RuleSet(mode="basic", direction="incoming"))
    with pytest.raises(RuleError, match="incoming rules"):
        rules.outgoing(support_issue())


def test_outgoing_only_options_are_refused_on_the_wrong_side() -> None:
    with pytest.raises(RuleError) as err:
        compile_rules(
            RuleSet(mode="visual", direction="outgoing", source="comments: {header: 'hi {author}'}\n")
        )
    assert err.value.path == "comments.header"
