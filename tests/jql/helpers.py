"""Snapshot and context builders for the JQL tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from node.jql import EvalContext, compile_query
from node.trackers.base import ChangeItem, IssueSnapshot
from protocol.replica import Comment, StatusRef, UserRef
from protocol.richtext import from_plain_text

NOW = dt.datetime(2024, 3, 15, 12, 0, tzinfo=dt.UTC)  # a Friday
ALICE = UserRef(
    account_id="acc-alice", username="alice", email="alice@example.com", display_name="Alice Able"
)
BOB = UserRef(account_id="acc-bob", username="bob", email="bob@example.com", display_name="Bob Baker")
CAROL = UserRef(account_id="acc-carol", display_name="Carol Cole")

_counter = 0


def issue(**kw: Any) -> IssueSnapshot:
    """An issue with sensible defaults; ``description``/``comments`` may be given as plain strings."""
    global _counter
    _counter += 1
    n = kw.pop("n", _counter)
    project = kw.pop("project", "ABC")
    if isinstance(kw.get("description"), str):
        kw["description"] = from_plain_text(kw["description"])
    if "comments" in kw:
        kw["comments"] = [
            c if isinstance(c, Comment) else Comment(id=str(i), body=from_plain_text(c))
            for i, c in enumerate(kw["comments"])
        ]
    if isinstance(kw.get("status"), str):
        kw["status"] = StatusRef(name=kw["status"], category=kw.pop("category", "new"))
    kw.setdefault("created", NOW - dt.timedelta(days=10))
    kw.setdefault("updated", NOW - dt.timedelta(days=1))
    kw.setdefault("summary", f"Issue {n}")
    return IssueSnapshot(tracker="jira", id=str(10000 + n), key=f"{project}-{n}", project=project, **kw)


def change(
    field: str, frm: str | None, to: str | None, at: dt.datetime, author: UserRef | None = None, **ids: str
) -> ChangeItem:
    return ChangeItem(field=field, from_value=frm, to_value=to, at=at, author=author, **ids)


def ctx(**kw: Any) -> EvalContext:
    kw.setdefault("now", NOW)
    kw.setdefault("current_user", ALICE)
    return EvalContext(**kw)


def hits(query: str, issues: list[IssueSnapshot], context: EvalContext | None = None) -> list[str]:
    q = compile_query(query)
    c = context or ctx()
    return [i.key for i in issues if q.matches(i, c)]


def matches(query: str, snapshot: IssueSnapshot, context: EvalContext | None = None) -> bool:
    return compile_query(query).matches(snapshot, context or ctx())
