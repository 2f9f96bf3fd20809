"""Incoming rules: minimal, stale-safe change sets."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from node.rules import (
    ChangeSet,
    CompiledRules,
    IncomingContext,
    RuleError,
    RuleSet,
    UserChange,
    compile_rules,
)
from node.trackers.base import ChangeItem, IssueSnapshot
from protocol.replica import Comment, Replica, StatusRef, UserRef
from protocol.richtext import from_plain_text, plain_text

from .conftest import AGENT, ENGINEER, JANE, at, eng_issue, support_issue

CTX = IncomingContext(
    connection="conn-sup", node_id="node-eng", peer_node_id="node-sup", peer_name="Support", project="ENG"
)


def outgoing_basic(issue: IssueSnapshot) -> Replica:
    replica = compile_rules(RuleSet(mode="basic", direction="outgoing")).outgoing(issue)
    assert replica is not None
    return replica


def incoming(source: str | None = None) -> CompiledRules:
    if source is None:
        return compile_rules(RuleSet(mode="basic", direction="incoming"))
    return compile_rules(RuleSet(mode="visual", direction="incoming", source=source))


def edited(replica: Replica, when: dt.datetime, **changes: Any) -> Replica:
    """The replica after the sender changed some fields at ``when``."""
    fca = dict(replica.field_changed_at)
    for name in changes:
        fca[name] = when
    return replica.model_copy(update={**changes, "field_changed_at": fca, "updated": when})


def test_first_sync_creates_with_every_field_and_public_comments() -> None:
    cs = incoming().incoming(outgoing_basic(support_issue()), None, None, CTX)
    assert cs.action == "create" and cs.project == "ENG"
    assert cs.fields.touched() == {
        "summary", "description", "priority", "issue_type", "labels", "components", "due_date"
    }  # fmt: skip
    assert cs.status == "Accept"
    assert [c.remote_id for c in cs.comments_add] == ["100", "102"]
    first = cs.comments_add[0]
    assert plain_text(first.body).startswith("Jane Doe (via Support) wrote:")
    assert first.body["content"][0]["content"][0] == {
        "type": "text",
        "text": "Jane Doe",
        "marks": [{"type": "strong"}],
    }
    assert "It is still failing." in plain_text(first.body) and not first.internal
    assert [a.remote.id for a in cs.attachments_add] == ["900", "901"]
    assert cs.conflicts == [] and cs.users == []


def test_only_fields_changed_since_previous_are_in_the_change_set() -> None:
    previous = outgoing_basic(support_issue())
    replica = edited(previous, at(30), summary="Checkout fails for EU and UK customers")
    local = eng_issue(
        priority="High", issue_type="Support Request", labels=["escalated", "cust-acme", "triage-l2"]
    )
    cs = incoming().incoming(
        replica, previous, local, CTX.model_copy(update={"comment_map": {"100": "5", "102": "6"}})
    )
    assert cs.action == "update"
    assert cs.fields.touched() == {"summary"}
    assert cs.fields.summary == "Checkout fails for EU and UK customers"
    assert cs.status is None and cs.comments_add == [] and cs.conflicts == []
    assert cs.to_json()["fields"] == {"summary": "Checkout fails for EU and UK customers"}


def test_nothing_changed_gives_an_empty_change_set() -> None:
    replica = outgoing_basic(support_issue())
    ctx = CTX.model_copy(
        update={"comment_map": {"100": "5", "102": "6"}, "attachment_map": {"900": "a", "901": "b"}}
    )
    cs = incoming().incoming(replica, replica, eng_issue(), ctx)
    assert cs.is_empty() and cs.reason == "nothing to change"


def test_concurrent_edits_to_different_fields_are_both_kept() -> None:
    previous = outgoing_basic(support_issue())
    # Engineering raised the priority locally at 25; support edited only the summary at 30.
    local = eng_issue(
        priority="Blocker",
        changelog=[ChangeItem(field="priority", from_value="High", to_value="Blocker", at=at(25))],
        updated=at(25),
    )
    replica = edited(previous, at(30), summary="New summary from support")
    cs = incoming().incoming(replica, previous, local, CTX)
    assert cs.fields.touched() == {"summary"}  # priority is not written back to the stale "High"
    assert cs.conflicts == []


@pytest.mark.parametrize(
    ("local_at", "remote_at", "winner"),
    [(25, 30, "remote"), (35, 30, "local")],
)
def test_same_field_edited_on_both_sides_later_change_wins(
    local_at: int, remote_at: int, winner: str
) -> None:
    previous = outgoing_basic(support_issue())
    local = eng_issue(
        summary="Engineering's wording",
        changelog=[
            ChangeItem(
                field="summary", from_value="Checkout fails", to_value="Engineering's", at=at(local_at)
            )
        ],
        updated=at(local_at),
    )
    replica = edited(previous, at(remote_at), summary="Support's wording")
    cs = incoming().incoming(replica, previous, local, CTX)
    assert len(cs.conflicts) == 1
    conflict = cs.conflicts[0]
    assert conflict.field == "summary" and conflict.winner == winner
    assert (conflict.local_value, conflict.remote_value) == ("Engineering's wording", "Support's wording")
    assert (conflict.local_changed_at, conflict.remote_changed_at) == (at(local_at), at(remote_at))
    if winner == "remote":
        assert cs.fields.summary == "Support's wording"
    else:
        assert "summary" not in cs.fields.touched()


def test_a_tie_is_broken_the_same_way_on_both_nodes() -> None:
    """Both nodes see the same two timestamps; each must pick the same VALUE."""
    base_sup = support_issue(summary="Original")
    previous_from_sup = outgoing_basic(base_sup)
    # Support edited to "S" at 30 and engineering edited to "E" at 30.
    sup_local = support_issue(
        summary="S", changelog=[ChangeItem(field="summary", to_value="S", at=at(30))], updated=at(30)
    )
    eng_local = eng_issue(
        summary="E", changelog=[ChangeItem(field="summary", to_value="E", at=at(30))], updated=at(30)
    )
    from_sup = outgoing_basic(sup_local)
    eng_out = compile_rules(RuleSet(mode="basic", direction="outgoing"))
    from_eng_prev = eng_out.outgoing(eng_issue(summary="Original"))
    from_eng = eng_out.outgoing(eng_local)
    assert from_eng is not None and from_eng_prev is not None

    eng_ctx = CTX  # node-eng receiving from node-sup
    sup_ctx = IncomingContext(node_id="node-sup", peer_node_id="node-eng", project="SUP")
    at_eng = incoming().incoming(from_sup, previous_from_sup, eng_local, eng_ctx)
    at_sup = incoming().incoming(from_eng, from_eng_prev, sup_local, sup_ctx)
    final_eng = at_eng.fields.summary if "summary" in at_eng.fields.touched() else "E"
    final_sup = at_sup.fields.summary if "summary" in at_sup.fields.touched() else "S"
    assert final_eng == final_sup == "E"  # "node-eng" < "node-sup": engineering's value wins everywhere
    assert at_eng.conflicts[0].reason == at_sup.conflicts[0].reason == "same time; the smaller node id wins"


def test_last_applied_baseline_distinguishes_our_own_write_from_a_local_edit() -> None:
    previous = outgoing_basic(support_issue())
    replica = edited(previous, at(30), summary="Support's new wording")
    rules = incoming()
    # The tracker stored what we applied last time; nobody edited it since: no conflict.
    local = eng_issue(summary="Checkout fails with HTTP 500 for EU customers")
    cs = rules.incoming(
        replica, previous, local, CTX.model_copy(update={"last_applied": rules.local_values(local)})
    )
    assert cs.conflicts == [] and cs.fields.summary == "Support's new wording"
    # A person edited it after our write (at 40, later than support's 30): local wins, recorded.
    edited_local = eng_issue(
        summary="Edited in ENG",
        changelog=[ChangeItem(field="summary", to_value="x", at=at(40))],
        updated=at(40),
    )
    cs = rules.incoming(
        replica, previous, edited_local, CTX.model_copy(update={"last_applied": rules.local_values(local)})
    )
    assert [c.winner for c in cs.conflicts] == ["local"] and "summary" not in cs.fields.touched()


def test_conflict_policy_remote_wins_is_configurable() -> None:
    previous = outgoing_basic(support_issue())
    local = eng_issue(summary="Mine", changelog=[ChangeItem(field="summary", to_value="Mine", at=at(50))])
    cs = incoming("conflict_policy: remote_wins\n").incoming(
        edited(previous, at(30), summary="Theirs"), previous, local, CTX
    )
    assert cs.fields.summary == "Theirs" and cs.conflicts[0].winner == "remote"


def test_status_map_support_to_engineering(example: Any) -> None:
    rules = incoming(example("engineering_incoming"))
    previous = outgoing_basic(support_issue())
    cs = rules.incoming(previous, None, None, CTX)
    assert cs.status == "To Do"  # Accept → To Do
    assert cs.fields.priority == "Critical" and cs.fields.issue_type == "Bug"
    assert cs.fields.custom_fields is None  # Basic on support's side shares no custom fields
    sup_out = compile_rules(RuleSet(mode="visual", direction="outgoing", source=example("support_outgoing")))
    shared = sup_out.outgoing(support_issue())
    assert shared is not None
    assert rules.incoming(shared, None, None, CTX).fields.custom_fields == {
        "customfield_20020": "ACME Corp",
        "customfield_20021": "All EU orders blocked",
    }
    in_review = eng_issue(status=StatusRef(name="In Review", category="indeterminate"))
    for support_status, eng_status in [
        ("Root Cause", "In Progress"),
        ("Resolve", "Done"),
        ("Weird", "To Do"),
    ]:
        replica = edited(previous, at(40), status=StatusRef(name=support_status, category="indeterminate"))
        cs = rules.incoming(replica, previous, in_review, CTX)
        assert cs.status == eng_status, support_status  # "Weird" is unmatched → default To Do


def test_status_map_engineering_to_support_unmatched_is_left_alone(example: Any) -> None:
    eng_out = compile_rules(
        RuleSet(mode="visual", direction="outgoing", source=example("engineering_outgoing"))
    )
    sup_in = incoming(example("support_incoming"))
    before = eng_out.outgoing(eng_issue())
    assert before is not None
    sup_ctx = IncomingContext(
        node_id="node-sup", peer_node_id="node-eng", peer_name="Engineering", project="SUP"
    )
    done = eng_out.outgoing(eng_issue(status=StatusRef(name="Done", category="done"), updated=at(60)))
    assert done is not None
    cs = sup_in.incoming(done, before, support_issue(), sup_ctx)
    assert cs.status == "Resolve"
    review = eng_out.outgoing(eng_issue(status=StatusRef(name="In Review", category="indeterminate")))
    assert review is not None
    cs = sup_in.incoming(review, before, support_issue(), sup_ctx)
    assert cs.status is None and any("'In Review'" in w for w in cs.warnings)
    # Engineering never creates support requests.
    assert sup_in.incoming(done, None, None, sup_ctx).action == "ignore"


@pytest.mark.parametrize(
    ("unmatched", "expected"),
    [("keep", "Weird"), ("{default: To Do}", "To Do"), ("ignore", None)],
)
def test_status_unmatched_rules(unmatched: str, expected: str | None) -> None:
    rules = incoming(f"values:\n  status: {{map: {{Accept: To Do}}, unmatched: {unmatched}}}\n")
    previous = outgoing_basic(support_issue())
    replica = edited(previous, at(40), status=StatusRef(name="Weird"))
    local = eng_issue(status=StatusRef(name="In Review", category="indeterminate"))
    assert rules.incoming(replica, previous, local, CTX).status == expected


def test_status_unmatched_error_names_the_value_and_path() -> None:
    rules = incoming("values:\n  status: {map: {Accept: To Do}, unmatched: error}\n")
    previous = outgoing_basic(support_issue())
    with pytest.raises(RuleError) as err:
        rules.incoming(edited(previous, at(40), status=StatusRef(name="Weird")), previous, eng_issue(), CTX)
    assert err.value.path == "values.status" and "'Weird'" in str(err.value)


def test_comment_edits_deletions_and_internal_handling() -> None:
    base = support_issue()
    previous = outgoing_basic(base)
    changed_comments = [
        Comment(
            id="100", author=JANE, body=from_plain_text("It is STILL failing!"), created=at(5), updated=at(50)
        ),
        Comment(id="103", author=AGENT, body=from_plain_text("shared note"), created=at(51), internal=True),
    ]  # 102 was deleted at the sender
    replica = previous.model_copy(update={"comments": changed_comments})
    ctx = CTX.model_copy(update={"comment_map": {"100": "5", "102": "6"}})
    cs = incoming().incoming(replica, previous, eng_issue(), ctx)
    assert [(e.remote_id, e.local_id) for e in cs.comments_edit] == [("100", "5")]
    assert "It is STILL failing!" in plain_text(cs.comments_edit[0].body)
    assert [(d.remote_id, d.local_id) for d in cs.comments_delete] == [("102", "6")]
    assert [(a.remote_id, a.internal) for a in cs.comments_add] == [("103", True)]  # stays internal here
    skip = incoming("comments: {internal: skip, deletions: false, header: ''}\n").incoming(
        replica, previous, eng_issue(), ctx
    )
    assert skip.comments_add == [] and skip.comments_delete == []
    assert plain_text(skip.comments_edit[0].body) == "It is STILL failing!"  # no header line


def test_attachments_are_added_by_metadata_and_deleted_when_removed() -> None:
    previous = outgoing_basic(support_issue())
    replica = previous.model_copy(update={"attachments": previous.attachments[1:]})
    ctx = CTX.model_copy(update={"attachment_map": {"900": "a1"}})
    cs = incoming("attachments: {max_size: 100MB}\n").incoming(replica, previous, eng_issue(), ctx)
    assert [a.remote.id for a in cs.attachments_add] == ["901"]
    assert cs.attachments_add[0].remote.sha256 == "b" * 64
    assert [(d.remote_id, d.local_id) for d in cs.attachments_delete] == [("900", "a1")]
    small = incoming("attachments: {max_size: 1MB}\n").incoming(replica, previous, eng_issue(), ctx)
    assert small.attachments_add == [] and any("dump.bin" in w for w in small.warnings)


def test_filters_ignore_a_replica_with_a_reason() -> None:
    rules = incoming("skip_if:\n  - {field: status.category, equals: done}\n")
    replica = outgoing_basic(support_issue(status=StatusRef(name="Close", category="done")))
    cs = rules.incoming(replica, None, None, CTX)
    assert cs.action == "ignore" and "status.category" in cs.reason


def test_fields_set_only_on_create_are_not_rewritten_later(example: Any) -> None:
    rules = incoming(example("engineering_incoming"))
    sup_out = compile_rules(RuleSet(mode="visual", direction="outgoing", source=example("support_outgoing")))
    first = sup_out.outgoing(support_issue())
    assert first is not None
    created = rules.incoming(first, None, None, CTX)
    assert [u.field for u in created.users] == ["reporter"]
    later = first.model_copy(update={"reporter": UserRef(email="someone.else@customer.example")})
    cs = rules.incoming(later, first, eng_issue(), CTX)
    assert cs.users == []


async def test_user_policies_default_keep_error_and_table(example: Any) -> None:
    directory = {"jane.doe@customer.example": UserRef(username="jdoe", display_name="Jane Doe")}

    async def find_user(ref: UserRef) -> UserRef | None:
        return directory.get(ref.email or "")

    def change(source: str, remote: UserRef | None) -> UserChange:
        rules = incoming(source)
        replica = outgoing_basic(support_issue()).model_copy(update={"assignee": remote})
        cs = rules.incoming(replica, None, None, CTX)
        assert [u.field for u in cs.users] == ["assignee"]
        return cs.users[0]

    fields = "fields: {assignee: true}\n"
    # Matched by email.
    res = await change(fields, JANE).resolve(find_user)
    assert (res.action, res.user) == ("set", UserRef(username="jdoe", display_name="Jane Doe"))
    # Unmatched: default user, keep, error — never silently unassigned.
    stranger = UserRef(email="nobody@customer.example", display_name="No Body")
    res = await change(fields + "users: {unmatched: {default: triage@eng.example}}\n", stranger).resolve(
        find_user
    )
    assert (res.action, res.user) == ("set", UserRef(email="triage@eng.example"))
    res = await change(fields + "users: {unmatched: keep}\n", stranger).resolve(find_user)
    assert res.action == "keep" and res.user is None
    with pytest.raises(RuleError, match="No Body"):
        await change(fields + "users: {unmatched: error}\n", stranger).resolve(find_user)
    # Explicit table wins without asking the tracker; the peer unassigning clears it.
    tabled = change(fields + "users: {table: {sam.agent@support.example: {account_id: acc-9}}}\n", AGENT)
    assert tabled.mapped == UserRef(account_id="acc-9")
    assert (await tabled.resolve(find_user)).user == UserRef(account_id="acc-9")
    previous = outgoing_basic(support_issue()).model_copy(update={"assignee": JANE})
    cleared = incoming(fields).incoming(
        previous.model_copy(update={"assignee": None}), previous, eng_issue(assignee=ENGINEER), CTX
    )
    res = await cleared.users[0].resolve(find_user)
    assert (res.action, res.user) == ("set", None)
    # match: [email] — the lookup uses only the email.
    only_email = change(fields + "users: {match: [email]}\n", AGENT)
    assert only_email.lookup_ref() == UserRef(email="sam.agent@support.example")


def test_change_set_round_trips_through_json_keeping_touched_fields() -> None:
    previous = outgoing_basic(support_issue())
    cs = incoming().incoming(edited(previous, at(30), due_date=None), previous, eng_issue(), CTX)
    data = cs.to_json()
    assert data["fields"] == {"due_date": None}  # clearing is explicit, untouched fields absent
    again = ChangeSet.model_validate(data)
    assert again.fields.touched() == {"due_date"} and again.fields.due_date is None


def test_a_field_changed_back_at_the_sender_is_still_a_candidate() -> None:
    """A → B → A at the sender while we missed B: the value equals ``previous`` but its change time
    moved, so it is examined (and here wins: it is later than our local edit)."""
    previous = outgoing_basic(support_issue())
    replica = edited(previous, at(60), priority="High")  # same value as before, changed at 60
    local = eng_issue(priority="Low", changelog=[ChangeItem(field="priority", to_value="Low", at=at(30))])
    cs = incoming().incoming(replica, previous, local, CTX)
    assert cs.fields.priority == "High" and [c.winner for c in cs.conflicts] == ["remote"]
