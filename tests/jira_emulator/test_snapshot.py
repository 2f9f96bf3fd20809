"""The neutral snapshot the emulator's JQL evaluates: built without validation (for speed), it must be
exactly the snapshot validation would give, and share no list or dict with the stored issue."""

from __future__ import annotations

from typing import Any

import pytest

from node.trackers.base import IssueSnapshot
from node.trackers.jira.emulator.ops import Site
from node.trackers.jira.emulator.state import EmulatorState, Issue, new_state


def rich_issue(mode: str) -> tuple[EmulatorState, Issue]:
    state = new_state(mode)  # type: ignore[arg-type]
    state.add_user("jane", password="pw", display_name="Jane Doe", email="jane@example.com")
    state.add_project("ABC", components=["Core", "UI"], versions=["1.0", "2.0"])
    site = Site(state)
    admin = state.users["admin"]
    jane = state.find_user(name="jane")
    assert jane is not None
    who: dict[str, Any] = {"accountId": jane.account_id} if mode == "cloud" else {"name": "jane"}
    fields: dict[str, Any] = {
        "project": {"key": "ABC"},
        "issuetype": {"name": "Bug"},
        "summary": "Crash on save",
        "description": "Steps: open *settings*, press {{Save}}.\n\n* one\n* two",
        "labels": ["red", "blue"],
        "priority": {"name": "High"},
        "components": [{"name": "Core"}],
        "fixVersions": [{"name": "2.0"}],
        "versions": [{"name": "1.0"}],
        "duedate": "2026-03-04",
        "assignee": who,
        "customfield_10016": 5,
        "customfield_10050": "ACME",
        "customfield_10051": {"value": "S2"},
        "customfield_10052": [{"value": "Linux"}, {"value": "Windows"}],
        "customfield_10053": who,
        "customfield_10054": "Root *cause*",
        "customfield_10055": "2026-02-01",
    }
    body = {"fields": fields, "properties": [{"key": "tandem.marker", "value": {"marker": "m1"}}]}
    issue = site.create_issue(admin, body, 2)
    site.do_transition(admin, issue, {"transition": {"id": "21"}}, 2)
    site.add_comment(jane, issue, {"body": "Seen it [here|https://example.com]."}, 2)
    site.add_comment(
        admin, issue, {"body": "Internal", "visibility": {"type": "role", "value": "Developers"}}, 2
    )
    props = [{"key": "sd.public.comment", "value": {"internal": True}}, {"key": "m", "value": [1, 2]}]
    site.add_comment(admin, issue, {"body": "Marked", "properties": props}, 2)
    site.add_attachment(jane, issue, "log.txt", b"trace", "text/plain")
    issue.watchers.append(jane.key)
    return state, issue


@pytest.mark.parametrize("mode", ["cloud", "server"])
def test_snapshot_is_what_validation_gives(mode: str) -> None:
    state, issue = rich_issue(mode)
    snap = state.to_snapshot(issue, "https://jira.example")
    again = IssueSnapshot.model_validate(snap.model_dump())
    assert snap == again
    assert snap.model_dump_json() == again.model_dump_json()
    # what it was built from is all there
    assert snap.status is not None and snap.status.name == "In Progress"
    assert [c.internal for c in snap.comments] == [False, True, True]
    assert snap.components == ["Core"] and snap.fix_versions == ["2.0"] and snap.affects_versions == ["1.0"]
    assert snap.custom_fields["customfield_10051"] == "S2"
    assert snap.custom_fields["customfield_10052"] == ["Linux", "Windows"]
    assert (
        len(snap.attachments) == 1
        and snap.attachments[0].sha256 == state.attachments[issue.attachments[0]].sha256
    )
    assert snap.changelog and snap.assignee is not None and snap.assignee.display_name == "Jane Doe"
    assert snap.properties == {"tandem.marker": {"marker": "m1"}}
    assert snap.due_date is not None and snap.due_date.isoformat() == "2026-03-04"
    assert [w.display_name for w in snap.watchers] == ["Jane Doe"]


def test_snapshot_shares_no_container_with_the_issue() -> None:
    state, issue = rich_issue("cloud")
    snap = state.to_snapshot(issue)
    issue.labels.append("green")
    issue.properties["other"] = 1
    issue.custom["customfield_10050"] = "Other"
    assert snap.labels == ["red", "blue"]
    assert "other" not in snap.properties
    assert snap.custom_fields["customfield_10050"] == "ACME"
