"""Webhook payloads rendered with the emulator's RenderMemo are byte for byte what a fresh rendering
gives, after every kind of change (comments added, edited, made internal, deleted; users renamed;
issues edited, assigned, transitioned)."""

from __future__ import annotations

import pytest

from node.trackers.jira.emulator import JiraEmulator
from node.trackers.jira.emulator.ops import Event, Site
from node.trackers.jira.emulator.server import dumps
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


# ------------------------------------------------------------------ revision-keyed webhook issue cache

BASE = "http://jira.test"


def _cached_and_fresh(app: object, memo: RenderMemo, event: Event) -> tuple[bytes, bytes]:
    state = event.issue and app.state  # type: ignore[attr-defined]
    cached = dumps(app.webhook_payload(View(state, BASE, 2, memo), event))  # type: ignore[attr-defined]
    fresh = dumps(app.webhook_payload(View(state, BASE, 2), event))  # type: ignore[attr-defined]
    return cached, fresh


def test_an_in_place_change_without_touch_is_served_stale_and_touch_fixes_it() -> None:
    """The check below is able to fail: a mutation that skips the revision bump shows up as a
    cached rendering that differs from a fresh one."""
    emu = JiraEmulator(mode="server")
    state, app = emu.state, emu.app
    state.add_project("MEMO")
    admin = state.users["admin"]
    issue = Site(state).create_issue(
        admin, {"fields": {"project": {"key": "MEMO"}, "issuetype": {"name": "Task"}, "summary": "s"}}, 2
    )
    memo = RenderMemo()
    cached, fresh = _cached_and_fresh(app, memo, _updated(issue, admin))
    assert cached == fresh
    issue.labels.append("sneaky")  # in place: no attribute set, no touch()
    cached, fresh = _cached_and_fresh(app, memo, _updated(issue, admin))
    assert cached != fresh and b"sneaky" in fresh and b"sneaky" not in cached
    before = issue.revision
    issue.touch()
    assert issue.revision > before
    cached, fresh = _cached_and_fresh(app, memo, _updated(issue, admin))
    assert cached == fresh


def test_revisions_move_with_every_mutation_and_fields_revision_skips_comments() -> None:
    emu = JiraEmulator(mode="cloud")
    state = emu.state
    state.add_project("MEMO")
    admin = state.users["admin"]
    site = Site(state)
    issue = site.create_issue(
        admin, {"fields": {"project": {"key": "MEMO"}, "issuetype": {"name": "Task"}, "summary": "s"}}, 2
    )
    rev, frev = issue.revision, issue.fields_revision
    site.add_comment(admin, issue, {"body": "hello"}, 2)
    assert issue.revision > rev and issue.fields_revision == frev  # the comment list is rendered apart
    rev = issue.revision
    site.edit_issue(admin, issue, {"fields": {"summary": "t"}}, 2)
    assert issue.revision > rev and issue.fields_revision > frev
    other = site.create_issue(
        admin, {"fields": {"project": {"key": "MEMO"}, "issuetype": {"name": "Task"}, "summary": "o"}}, 2
    )
    assert other.revision > issue.revision  # stamps are process-wide: a new object never repeats one


def test_cached_webhook_issue_follows_reference_data_and_odd_values() -> None:
    emu = JiraEmulator(mode="cloud")
    state, app = emu.state, emu.app
    state.add_project("MEMO")
    bob = state.add_user("bob")
    admin = state.users["admin"]
    site = Site(state)
    issue = site.create_issue(
        admin, {"fields": {"project": {"key": "MEMO"}, "issuetype": {"name": "Task"}, "summary": "s"}}, 2
    )
    site.assign(admin, issue, {"accountId": bob.account_id})
    site.add_comment(bob, issue, {"body": "by bob"}, 2)
    memo = RenderMemo()
    event = _updated(issue, admin)

    def same() -> bytes:
        cached, fresh = _cached_and_fresh(app, memo, event)
        assert cached == fresh
        return cached

    same()
    bob.display_name = "Renamed Assignee"  # the assignee and a comment author: no issue mutation
    assert b"Renamed Assignee" in same()
    state.statuses[issue.status].name = "Renamed Status"
    assert b"Renamed Status" in same()
    state.projects["MEMO"].name = "Renamed Project"
    assert b"Renamed Project" in same()
    state.add_custom_field("Brand New", "text", field_id="customfield_19999")
    assert b"customfield_19999" in same()
    # a number beyond 64 bits: orjson refuses it, the rendering falls back to the plain dict
    site.edit_issue(admin, issue, {"fields": {"customfield_10016": 1 << 70}}, 2)
    assert str(1 << 70).encode() in same()
    short = Event("comment_created", issue, admin, comment=issue.comments[0])
    cached, fresh = _cached_and_fresh(app, memo, short)
    assert cached == fresh


@pytest.mark.parametrize("mode,seed", [("cloud", 1), ("server", 2), ("cloud", 3)])
async def test_random_rest_operations_keep_the_cached_rendering_equal_to_a_fresh_one(
    mode: str, seed: int
) -> None:
    """Property-style: random sequences of REST operations (every kind that changes an issue); after
    each, every issue's cached webhook renderings equal fresh ones. A mutation that forgot to bump
    the revision leaves a stale cache entry and fails here (see the test above)."""
    import random

    import aiohttp

    from .conftest import Client

    emu = JiraEmulator(mode=mode)  # type: ignore[arg-type]
    await emu.start()
    try:
        state, app = emu.state, emu.app
        state.add_project("PROJ", components=["Core", "UI"], versions=["1.0", "2.0"])
        bob = state.add_user("bob", display_name="Bob")
        admin = state.users["admin"]
        rng = random.Random(seed)
        memo = RenderMemo()
        cloud = mode == "cloud"
        bob_ref = {"accountId": bob.account_id} if cloud else {"name": "bob"}
        keys: list[str] = []
        comments: dict[str, list[str]] = {}
        links: dict[str, list[int]] = {}
        attachments: list[str] = []
        done: list[str] = []
        async with aiohttp.ClientSession() as session:
            client = Client(session, str(emu.base_url))
            a = "/rest/api/2"

            async def create() -> None:
                status, body = await client.post(
                    f"{a}/issue",
                    {
                        "fields": {
                            "project": {"key": "PROJ"},
                            "issuetype": {"name": "Task"},
                            "summary": f"issue {len(keys)}",
                            "labels": ["one"],
                        }
                    },
                )
                assert status == 201, body
                keys.append(body["key"])

            async def op() -> str:
                key = rng.choice(keys)
                kind = rng.choice(
                    [
                        "summary",
                        "labels",
                        "priority",
                        "components",
                        "custom",
                        "select",
                        "user_field",
                        "description",
                        "duedate",
                        "assign",
                        "transition",
                        "comment",
                        "edit_comment",
                        "delete_comment",
                        "comment_internal",
                        "property",
                        "delete_property",
                        "remote_link",
                        "update_link",
                        "delete_link",
                        "attach",
                        "delete_attachment",
                        "rename_user",
                        "delete_issue",
                        "create",
                    ]
                )
                n = rng.randint(0, 99)
                if kind == "summary":
                    status, _ = await client.put(f"{a}/issue/{key}", {"fields": {"summary": f"s{n}"}})
                elif kind == "labels":
                    verb = rng.choice(["add", "remove"])
                    status, _ = await client.put(
                        f"{a}/issue/{key}", {"update": {"labels": [{verb: f"l{n % 3}"}]}}
                    )
                elif kind == "priority":
                    status, _ = await client.put(
                        f"{a}/issue/{key}", {"fields": {"priority": {"id": str(1 + n % 5)}}}
                    )
                elif kind == "components":
                    status, _ = await client.put(
                        f"{a}/issue/{key}", {"fields": {"components": [{"name": rng.choice(["Core", "UI"])}]}}
                    )
                elif kind == "custom":
                    status, _ = await client.put(
                        f"{a}/issue/{key}", {"fields": {"customfield_10050": f"c{n}"}}
                    )
                elif kind == "select":
                    status, _ = await client.put(
                        f"{a}/issue/{key}", {"fields": {"customfield_10051": {"value": f"S{1 + n % 4}"}}}
                    )
                elif kind == "user_field":
                    status, _ = await client.put(
                        f"{a}/issue/{key}", {"fields": {"customfield_10053": bob_ref}}
                    )
                elif kind == "description":
                    status, _ = await client.put(f"{a}/issue/{key}", {"fields": {"description": f"d *{n}*"}})
                elif kind == "duedate":
                    status, _ = await client.put(
                        f"{a}/issue/{key}", {"fields": {"duedate": f"2030-01-{1 + n % 28:02d}"}}
                    )
                elif kind == "assign":
                    status, _ = await client.put(f"{a}/issue/{key}/assignee", rng.choice([bob_ref, None]))
                elif kind == "transition":
                    status, _ = await client.post(
                        f"{a}/issue/{key}/transitions", {"transition": {"id": rng.choice(["11", "21", "31"])}}
                    )
                elif kind == "comment":
                    status, body = await client.post(f"{a}/issue/{key}/comment", {"body": f"c{n}"})
                    if status == 201:
                        comments.setdefault(key, []).append(body["id"])
                elif kind in ("edit_comment", "delete_comment", "comment_internal") and comments.get(key):
                    cid = rng.choice(comments[key])
                    if kind == "edit_comment":
                        status, _ = await client.put(f"{a}/issue/{key}/comment/{cid}", {"body": f"e{n}"})
                    elif kind == "delete_comment":
                        status, _ = await client.delete(f"{a}/issue/{key}/comment/{cid}")
                        comments[key].remove(cid)
                    else:
                        status, _ = await client.put(
                            f"{a}/comment/{cid}/properties/sd.public.comment", {"internal": n % 2 == 0}
                        )
                elif kind == "property":
                    status, _ = await client.put(f"{a}/issue/{key}/properties/p{n % 3}", {"v": n})
                elif kind == "delete_property":
                    status, _ = await client.delete(f"{a}/issue/{key}/properties/p{n % 3}")
                elif kind == "remote_link":
                    status, body = await client.post(
                        f"{a}/issue/{key}/remotelink",
                        {"globalId": f"g{n % 4}", "object": {"url": f"https://x/{n}", "title": "t"}},
                    )
                    if status == 201:
                        links.setdefault(key, []).append(body["id"])
                elif kind in ("update_link", "delete_link") and links.get(key):
                    lid = rng.choice(links[key])
                    if kind == "update_link":
                        status, _ = await client.put(
                            f"{a}/issue/{key}/remotelink/{lid}",
                            {"object": {"url": f"https://y/{n}", "title": "u"}},
                        )
                    else:
                        status, _ = await client.delete(f"{a}/issue/{key}/remotelink/{lid}")
                        links[key].remove(lid)
                elif kind == "attach":
                    form = aiohttp.FormData()
                    form.add_field(
                        "file", f"data {n}".encode(), filename=f"f{n}.txt", content_type="text/plain"
                    )
                    status, body = await client.call(
                        "POST",
                        f"{a}/issue/{key}/attachments",
                        data=form,
                        headers={"X-Atlassian-Token": "no-check"},
                    )
                    if status == 200:
                        attachments.append(body[0]["id"])
                elif kind == "delete_attachment" and attachments:
                    aid = attachments.pop(rng.randrange(len(attachments)))
                    status, _ = await client.delete(f"{a}/attachment/{aid}")
                elif kind == "rename_user":
                    bob.display_name = f"Bob {n}"
                    status = 200
                elif kind == "delete_issue" and len(keys) > 2:
                    status, _ = await client.delete(f"{a}/issue/{key}")
                    keys.remove(key)
                    for table in (comments, links):
                        table.pop(key, None)
                    attachments[:] = [x for x in attachments if x in state.attachments]
                elif kind == "create":
                    await create()
                    status = 201
                else:
                    return "skipped"
                assert status < 500
                return kind

            for _ in range(3):
                await create()
            for _ in range(120):
                done.append(await op())
                for key in keys:
                    issue = state.issue(key)
                    assert issue is not None
                    events = [
                        _updated(issue, admin),
                        Event("jira:issue_created", issue, admin, "issue_created"),
                    ]
                    if issue.comments:
                        events.append(Event("comment_created", issue, admin, comment=issue.comments[-1]))
                    for event in events:
                        cached, fresh = _cached_and_fresh(app, memo, event)
                        assert cached == fresh, (done[-1], event.webhook_event)
        assert len(set(done) - {"skipped"}) >= 12
    finally:
        await emu.stop()
