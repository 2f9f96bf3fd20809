"""The JQL fields Tandem understands: names and aliases, supported operators, and how each reads
its value(s) from an :class:`~node.trackers.base.IssueSnapshot`.

Value shapes handed to the evaluator, by kind:

* ``enum``  list of alias tuples, lower-case (a user is ``(account_id, username, email, name)``);
* ``text``  list of plain strings (rich text flattened with :func:`protocol.richtext.plain_text`);
* ``date``  an aware datetime or None; ``day`` a date or None; ``number`` a float or None;
* ``any``   (custom fields, entity properties) a list of scalars: str, float, bool, date, datetime,
  or alias tuples for option/user/version objects;
* ``attachments`` the number of attachments.

Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from node.trackers.base import IssueSnapshot
from protocol.replica import UserRef
from protocol.richtext import plain_text

Kind = Literal["enum", "text", "date", "day", "number", "any", "attachments"]
Alias = tuple[str, ...]

EQ = frozenset({"=", "!=", "in", "not in"})
IS = frozenset({"is", "is not"})
REL = frozenset({"<", ">", "<=", ">="})
TEXT = frozenset({"~", "!~"})
HIST = frozenset({"was", "was not", "was in", "was not in", "changed"})

STATUS_CATEGORY_ALIASES: dict[str, Alias] = {
    "new": ("to do", "new", "2"),
    "indeterminate": ("in progress", "indeterminate", "4"),
    "done": ("done", "3"),
}
STATUS_CATEGORY_ORDER = {"new": 0, "indeterminate": 1, "done": 2}


@dataclass(frozen=True)
class FieldSpec:
    name: str  # canonical name (what ``Query.order_by`` reports)
    kind: Kind
    operators: frozenset[str]
    getter: Callable[[IssueSnapshot], Any]
    history: frozenset[str] = frozenset()  # changelog field names (lower case) for WAS / CHANGED
    ordering: str | None = None  # how < > and ORDER BY rank enum values: priority/version/key/status
    user: bool = False
    empty_word: str | None = None  # a value that means EMPTY ("Unresolved" for resolution)
    aliases: tuple[str, ...] = field(default=())


def user_alias(u: UserRef | None) -> Alias | None:
    if u is None:
        return None
    out = tuple(x.lower() for x in (u.account_id, u.username, u.email, u.display_name) if x)
    return out or None


def _one(value: str | None) -> list[Alias]:
    return [(value.lower(),)] if value else []


def _many(values: list[str]) -> list[Alias]:
    return [(v.lower(),) for v in values if v]


def _users(*users: UserRef | None) -> list[Alias]:
    out = []
    for u in users:
        a = user_alias(u)
        if a:
            out.append(a)
    return out


def _status(s: IssueSnapshot) -> list[Alias]:
    return [(s.status.name.lower(),)] if s.status is not None else []


def _status_category(s: IssueSnapshot) -> list[Alias]:
    return [STATUS_CATEGORY_ALIASES[s.status.category]] if s.status is not None else []


def _key(s: IssueSnapshot) -> list[Alias]:
    return [(s.key.lower(), s.id.lower())]


def _parent(s: IssueSnapshot) -> list[Alias]:
    p = s.parent
    if p is None:
        return []
    return [tuple(x.lower() for x in (p.key, p.id) if x)]


def comment_texts(s: IssueSnapshot) -> list[str]:
    return [plain_text(c.body) for c in s.comments]


def all_texts(s: IssueSnapshot) -> list[str]:
    out = [s.summary, plain_text(s.description), *comment_texts(s)]
    env = s.raw.get("environment") if isinstance(s.raw, dict) else None
    if isinstance(env, str):
        out.append(env)
    out.extend(v for v in s.custom_fields.values() if isinstance(v, str))
    return out


def _environment(s: IssueSnapshot) -> list[str]:
    env = s.custom_fields.get("environment")
    if env is None and isinstance(s.raw, dict):
        env = s.raw.get("environment")
    if isinstance(env, dict):
        return [plain_text(env)] if plain_text(env) else []
    return [env] if isinstance(env, str) and env else []


def _description(s: IssueSnapshot) -> list[str]:
    text = plain_text(s.description)
    return [text] if text.strip() else []


SYSTEM_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("project", "enum", EQ | IS, lambda s: _one(s.project)),
    FieldSpec("issuetype", "enum", EQ | IS, lambda s: _one(s.issue_type), aliases=("type",)),
    FieldSpec("status", "enum", EQ | IS | HIST, _status, history=frozenset({"status"}), ordering="status"),
    FieldSpec("statusCategory", "enum", EQ, _status_category, ordering="category"),
    FieldSpec(
        "priority", "enum", EQ | IS | REL | HIST, lambda s: _one(s.priority),
        history=frozenset({"priority"}), ordering="priority",
    ),
    FieldSpec(
        "resolution", "enum", EQ | IS | HIST, lambda s: _one(s.resolution),
        history=frozenset({"resolution"}), empty_word="unresolved",
    ),
    FieldSpec("summary", "text", TEXT, lambda s: [s.summary] if s.summary else []),
    FieldSpec("description", "text", TEXT | IS, _description),
    FieldSpec("environment", "text", TEXT | IS, _environment),
    FieldSpec("text", "text", frozenset({"~"}), all_texts),
    FieldSpec("comment", "text", TEXT, comment_texts),
    FieldSpec("labels", "enum", EQ | IS, lambda s: _many(s.labels), aliases=("label",)),
    FieldSpec("component", "enum", EQ | IS, lambda s: _many(s.components), aliases=("components",)),
    FieldSpec(
        "fixVersion", "enum", EQ | IS | REL | HIST, lambda s: _many(s.fix_versions),
        history=frozenset({"fixversion", "fix version", "fixversions", "fix_versions", "fix version/s"}),
        ordering="version", aliases=("fixversions",),
    ),
    FieldSpec(
        "affectedVersion", "enum", EQ | IS | REL, lambda s: _many(s.affects_versions),
        ordering="version", aliases=("affectedversions", "affectsversion", "version"),
    ),
    FieldSpec("duedate", "day", EQ | IS | REL, lambda s: s.due_date, aliases=("due",)),
    FieldSpec("created", "date", EQ | REL, lambda s: s.created, aliases=("createddate",)),
    FieldSpec("updated", "date", EQ | REL, lambda s: s.updated, aliases=("updateddate",)),
    FieldSpec("resolved", "date", EQ | IS | REL, lambda s: s.resolved, aliases=("resolutiondate",)),
    FieldSpec(
        "assignee", "enum", EQ | IS | HIST, lambda s: _users(s.assignee),
        history=frozenset({"assignee"}), user=True, ordering="user",
    ),
    FieldSpec(
        "reporter", "enum", EQ | IS | HIST, lambda s: _users(s.reporter),
        history=frozenset({"reporter"}), user=True, ordering="user",
    ),
    FieldSpec("creator", "enum", EQ | IS, lambda s: _users(s.creator), user=True, ordering="user"),
    FieldSpec("watcher", "enum", EQ | IS, lambda s: _users(*s.watchers), user=True, ordering="user"),
    FieldSpec("watchers", "number", EQ | REL, lambda s: float(len(s.watchers))),
    FieldSpec("votes", "number", EQ | REL, lambda s: float(s.votes)),
    FieldSpec("parent", "enum", EQ, _parent, ordering="key"),
    FieldSpec("issuekey", "enum", EQ | REL, _key, ordering="key", aliases=("key", "id")),
    FieldSpec("attachments", "attachments", IS, lambda s: len(s.attachments)),
)  # fmt: skip

BY_NAME: dict[str, FieldSpec] = {}
for _spec in SYSTEM_FIELDS:
    BY_NAME[_spec.name.lower()] = _spec
    for _alias in _spec.aliases:
        BY_NAME[_alias] = _spec

CUSTOM_OPERATORS = EQ | IS | REL | TEXT


def normalize_any(value: Any) -> list[Any]:
    """Flatten a custom-field or property value into comparable scalars (empty list = EMPTY)."""
    out: list[Any] = []
    _flatten(value, out, 0)
    return out


def _flatten(value: Any, out: list[Any], depth: int) -> None:
    if value is None or depth > 8:
        return
    if isinstance(value, bool):
        out.append(value)
    elif isinstance(value, int | float):
        out.append(float(value))
    elif isinstance(value, str):
        if value != "":
            out.append(value)
    elif isinstance(value, dt.datetime | dt.date):
        out.append(value)
    elif isinstance(value, list | tuple | set | frozenset):
        for v in value:
            _flatten(v, out, depth + 1)
    elif isinstance(value, dict):
        if value.get("type") == "doc" and "content" in value:
            text = plain_text(value)
            if text:
                out.append(text)
            return
        aliases = tuple(
            str(value[k]).lower()
            for k in ("value", "name", "key", "id", "displayName", "accountId", "emailAddress")
            if isinstance(value.get(k), str | int)
            and not isinstance(value.get(k), bool)
            and value.get(k) != ""
        )
        if aliases:
            out.append(aliases)
        child = value.get("child")
        if isinstance(child, dict):
            _flatten(child, out, depth + 1)
    elif isinstance(value, UserRef):
        a = user_alias(value)
        if a:
            out.append(a)


def custom_getter(field_id: str | None, display_name: str | None) -> Callable[[IssueSnapshot], list[Any]]:
    """Reads a custom field by id, or by display name through ``snapshot.field_names``."""
    if field_id is not None:
        fid = field_id

        def by_id(s: IssueSnapshot) -> list[Any]:
            return normalize_any(s.custom_fields.get(fid))

        return by_id
    wanted = (display_name or "").lower()

    def by_name(s: IssueSnapshot) -> list[Any]:
        for fid2, name in s.field_names.items():
            if name.lower() == wanted:
                return normalize_any(s.custom_fields.get(fid2))
        return []

    return by_name


def property_getter(key: str, path: str) -> Callable[[IssueSnapshot], list[Any]]:
    parts = [p for p in path.split(".") if p] if path else []

    def get(s: IssueSnapshot) -> list[Any]:
        node: Any = s.properties.get(key)
        for part in parts:
            if isinstance(node, dict):
                node = node.get(part)
            elif isinstance(node, list):
                node = [x.get(part) for x in node if isinstance(x, dict)]
            else:
                return []
        return normalize_any(node)

    return get
