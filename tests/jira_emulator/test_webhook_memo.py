"""Webhook payloads rendered with the emulator's RenderMemo are byte for byte what a fresh rendering
gives, after every kind of change (comments added, edited, made internal, deleted; users renamed;
issues edited, assigned, transitioned)."""

from __future__ import annotations

import pytest

from node.trackers.common.rest import encode_json as dumps
from node.trackers.jira.emulator import JiraEmulator
from node.trackers.jira.emulator.ops import Event, Site
from node.trackers.jira.emulator.views import RenderMemo, View


@pytest.mark.parametrize("mode", ["cloud", "server"])
def test_memo_rendering_equals_a_fresh_one_after_each_kind_of_change(mode: str) -> None:
    emu = JiraEmulator(mode=mode)  # type: ignore[arg-type]
    state, app = emu.state, emu.app
    state.add_project("MEMO")
    bob = state.add_user("bob", display_name="Bob Builder", email="bob@example.com")
    memo = RenderMemo()
    compared: list[str] = []
    hits_before = 0

    def check(event: Event) -> None:
        cached = dumps(app.webhook_payload(View(state, "http://jira.test", 2, memo), event))
        fresh = dumps(app.webhook_payload(View(state, "http://jira.test", 2), event))
        assert cached == fresh, event.webhook_event
        compared.append(event.webhook_event)

    site = Site(state, check)
    admin = state.users["admin"]
    issue = site.create_issue(
        admin,
        {"fields": {"project": {"key": "MEMO"}, "issuetype": {"name": "Task"}, "summary": "memo"}},
        2,
    )
    first = site.add_comment(admin, issue, {"body": "first *bold*"}, 2)
    second = site.add_comment(bob, issue, {"body": "second"}, 2)
    hits_before = len(memo.comments)
    site.update_comment(admin, issue, first, {"body": "first, edited"}, 2)
    site.update_comment(
        admin, issue, second, {"body": "second", "visibility": {"type": "role", "value": "Developers"}}, 2
    )
    bob.display_name = "Robert Builder"  # a user renamed: every rendering that shows them changes
    site.add_comment(admin, issue, {"body": "third"}, 2)
    bob.email = "robert@example.com"
    site.edit_issue(admin, issue, {"fields": {"summary": "memo, renamed"}}, 2)
    site.assign(admin, issue, {"name": "bob", "accountId": bob.account_id})
    site.do_transition(admin, issue, {"transition": {"id": "21"}}, 2)
    site.delete_comment(admin, issue, first)
    site.add_comment(admin, issue, {"body": "fourth"}, 2)
    # a different base URL must not reuse renderings made for the first one
    other = dumps(app.webhook_payload(View(state, "http://other.test", 2, memo), _updated(issue, admin)))
    assert b"http://jira.test" not in other
    assert {"jira:issue_created", "comment_created", "comment_updated", "jira:issue_updated"} <= set(compared)
    assert hits_before >= 2 and len(compared) >= 15


def _updated(issue: object, actor: object) -> Event:
    return Event("jira:issue_updated", issue, actor, "issue_updated")  # type: ignore[arg-type]
