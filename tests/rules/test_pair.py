"""Two nodes' rules wired back to back (no engine, no trackers): replicas flow both ways through
outgoing and incoming rules, a tiny in-memory "tracker" applies change sets. Proves the pipeline
converges, keeps concurrent edits to different fields, and never echoes comments."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.rules import ChangeSet, CompiledRules, IncomingContext, OutgoingContext, RuleSet, compile_rules
from node.trackers.base import ChangeItem, IssueSnapshot
from protocol.replica import Comment, Replica, StatusRef, UserRef
from protocol.richtext import from_plain_text, plain_text

from .conftest import T0, eng_issue, support_issue

_ids = itertools.count(5000)
PROXY = UserRef(account_id="tandem-proxy", display_name="Tandem")


def apply(issue: IssueSnapshot, cs: ChangeSet, now: dt.datetime) -> tuple[IssueSnapshot, dict[str, str]]:
    """What an adapter would do with a change set (the proxy user's writes land in the changelog)."""
    data = issue.model_dump()
    changelog = list(issue.changelog)
    for name in cs.fields.touched():
        value = getattr(cs.fields, name)
        if name == "custom_fields":
            data["custom_fields"] = {**data["custom_fields"], **value}
            changelog += [ChangeItem(field=k, at=now, author=PROXY) for k in value]
        else:
            data[name] = value
            changelog.append(ChangeItem(field=name, at=now, author=PROXY))
    if cs.status is not None:
        data["status"] = {"name": cs.status, "category": "indeterminate"}
        changelog.append(ChangeItem(field="status", at=now, author=PROXY))
    new_ids: dict[str, str] = {}
    comments = list(data["comments"])
    for add in cs.comments_add:
        local_id = str(next(_ids))
        new_ids[add.remote_id] = local_id
        comments.append(Comment(id=local_id, body=add.body, internal=add.internal, created=now).model_dump())
    data.update(comments=comments, changelog=changelog, updated=now)
    return IssueSnapshot.model_validate(data), new_ids


@dataclass
class Side:
    name: str
    node_id: str
    issue: IssueSnapshot
    out_rules: CompiledRules
    in_rules: CompiledRules
    previous: Replica | None = None  # the peer's replica applied last
    last_applied: dict[str, Any] | None = None
    comment_map: dict[str, str] = field(default_factory=dict)  # remote id -> local id

    def send(self, peer: Side) -> Replica | None:
        ctx = OutgoingContext(
            node_id=self.node_id, received_comment_ids=set(self.comment_map.values()), proxy_user=PROXY
        )
        return self.out_rules.outgoing(self.issue, ctx)

    def receive(self, replica: Replica, peer: Side, now: dt.datetime) -> ChangeSet:
        ctx = IncomingContext(
            node_id=self.node_id,
            peer_node_id=peer.node_id,
            peer_name=peer.name,
            project=self.issue.project,
            comment_map=self.comment_map,
            last_applied=self.last_applied,
        )
        cs = self.in_rules.incoming(replica, self.previous, self.issue, ctx)
        self.issue, new_ids = apply(self.issue, cs, now)
        self.comment_map.update(new_ids)
        self.previous = replica
        self.last_applied = self.in_rules.local_values(self.issue)
        return cs


def basic(direction: str) -> CompiledRules:
    return compile_rules(RuleSet(mode="basic", direction=direction))  # type: ignore[arg-type]


def pair() -> tuple[Side, Side]:
    sup = Side(
        "Support", "node-sup", support_issue(changelog=[], comments=[]), basic("outgoing"), basic("incoming")
    )
    eng = Side("Engineering", "node-eng", eng_issue(), basic("outgoing"), basic("incoming"))
    # Bring them in line: engineering's issue was created from support's.
    first = sup.send(eng)
    assert first is not None
    eng.issue = eng.issue.model_copy(
        update={k: getattr(first, k) for k in ("summary", "description", "priority", "issue_type", "labels")}
        | {"status": StatusRef(name="Accept", category="indeterminate"), "changelog": []}
    )
    eng.previous, eng.last_applied = first, eng.in_rules.local_values(eng.issue)
    back = eng.send(sup)
    assert back is not None
    sup.previous, sup.last_applied = back, sup.in_rules.local_values(sup.issue)
    return sup, eng


def edit(side: Side, now: dt.datetime, **values: Any) -> None:
    items = [ChangeItem(field=k, at=now) for k in values]
    side.issue = side.issue.model_copy(
        update={**values, "changelog": [*side.issue.changelog, *items], "updated": now}
    )


def sync(a: Side, b: Side, now: dt.datetime) -> None:
    replica = a.send(b)
    assert replica is not None
    b.receive(replica, a, now)


SHARED = ("summary", "priority", "labels", "due_date")


def shared(side: Side) -> tuple[Any, ...]:
    status = side.issue.status.name if side.issue.status else None
    return (*(getattr(side.issue, f) for f in SHARED), status)


def test_concurrent_edits_to_different_fields_survive_a_round_trip() -> None:
    sup, eng = pair()
    t = T0 + dt.timedelta(hours=1)
    edit(sup, t, summary="Support's new summary")
    edit(eng, t + dt.timedelta(seconds=1), priority="Highest")
    sync(sup, eng, t + dt.timedelta(seconds=2))
    sync(eng, sup, t + dt.timedelta(seconds=3))
    sync(sup, eng, t + dt.timedelta(seconds=4))
    assert sup.issue.summary == eng.issue.summary == "Support's new summary"
    assert sup.issue.priority == eng.issue.priority == "Highest"


def test_comments_cross_once_and_internal_ones_never() -> None:
    sup, eng = pair()
    t = T0 + dt.timedelta(hours=2)
    eng.issue = eng.issue.model_copy(
        update={
            "comments": [
                Comment(id="e1", body=from_plain_text("Fix is in review."), created=t),
                Comment(id="e2", body=from_plain_text("Blame the payments team."), created=t, internal=True),
            ]
        }
    )
    sup.issue = sup.issue.model_copy(
        update={"comments": [Comment(id="s1", body=from_plain_text("Any news?"), created=t)]}
    )
    for i in range(3):  # several rounds: nothing is echoed or duplicated
        sync(eng, sup, t + dt.timedelta(seconds=2 * i + 1))
        sync(sup, eng, t + dt.timedelta(seconds=2 * i + 2))
    sup_texts = [plain_text(c.body) for c in sup.issue.comments]
    eng_texts = [plain_text(c.body) for c in eng.issue.comments]
    assert len(sup.issue.comments) == 2 and len(eng.issue.comments) == 3
    assert sup_texts[1].startswith("Someone (via Engineering) wrote:")
    assert sup_texts[1].endswith("Fix is in review.")
    assert not any("Blame" in text for text in sup_texts)
    assert eng_texts[2].startswith("Someone (via Support) wrote:") and eng_texts[2].endswith("Any news?")


_edits = st.lists(
    st.tuples(
        st.sampled_from(["sup", "eng", "sync_se", "sync_es"]),
        st.sampled_from(["summary", "priority", "labels", "due_date"]),
        st.integers(min_value=0, max_value=3),
    ),
    max_size=12,
)
_VALUES: dict[str, list[Any]] = {
    "summary": ["A", "B", "C", "D"],
    "priority": ["Low", "Medium", "High", "Highest"],
    "labels": [["x"], ["y"], ["x", "y"], []],
    "due_date": [dt.date(2024, 6, d) for d in (1, 2, 3, 4)],
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_edits)
def test_any_interleaving_of_edits_and_syncs_converges(steps: list[tuple[str, str, int]]) -> None:
    """Later-wins with a strictly increasing clock: after the final exchange both sides agree."""
    sup, eng = pair()
    clock = T0 + dt.timedelta(days=1)
    for who, name, choice in steps:
        clock += dt.timedelta(seconds=1)
        if who == "sup":
            edit(sup, clock, **{name: _VALUES[name][choice]})
        elif who == "eng":
            edit(eng, clock, **{name: _VALUES[name][choice]})
        elif who == "sync_se":
            sync(sup, eng, clock)
        else:
            sync(eng, sup, clock)
    for _ in range(2):
        clock += dt.timedelta(seconds=1)
        sync(sup, eng, clock)
        clock += dt.timedelta(seconds=1)
        sync(eng, sup, clock)
    assert shared(sup) == shared(eng)
