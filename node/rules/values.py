"""Field values in one plain, comparable form; reading and writing fields by name; conditions.

Every comparison the engine makes ("did this field change?", "is the local value still what we
applied?") goes through :func:`canon`, so that label order, rich-text normalisation or a user seen
with fewer identity keys do not count as changes.

Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from node.richtext.normalize import canonical
from node.rules.config import Condition, FieldKind, field_kind
from node.rules.errors import RuleError
from node.trackers.base import IssueSnapshot
from protocol.errors import InvalidMessage
from protocol.replica import Replica, StatusRef, UserRef
from protocol.richtext import from_plain_text, validate_doc

_USER_KEYS = ("email", "account_id", "username", "display_name")


_SCALARS = (str, int, float, bool, type(None))


def _json(value: Any) -> Any:
    """Any pydantic-ish value → plain JSON data (a new tree: the caller may change it)."""
    if isinstance(value, _SCALARS):  # most leaves (rich-text nodes are mostly strings): test first
        return value
    if isinstance(value, dict):
        return {str(k): v if isinstance(v, str) else _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [v if isinstance(v, str) else _json(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def read_entity_field(entity: IssueSnapshot | Replica, name: str) -> Any:
    """A field of a snapshot or replica as plain JSON data (status → ``{name, category}``)."""
    if field_kind(name) == "any":
        return _json(entity.custom_fields.get(name))
    return _json(getattr(entity, name))


def changed_at_key(name: str) -> str:
    """The replica's ``field_changed_at`` key of a replica field."""
    return name if field_kind(name) != "any" else f"custom_fields.{name}"


def canon(kind: FieldKind, value: Any) -> Any:
    """The comparable form of a plain value of a field of ``kind``."""
    if value is None:
        return None
    if kind == "status":
        return value.get("name") if isinstance(value, dict) else str(value)
    if kind == "doc":
        if not isinstance(value, dict):
            return value
        try:
            return canonical(value)
        except Exception:  # a doc the normaliser cannot read still compares as itself
            return value
    if kind == "list":
        if isinstance(value, list):
            return sorted(json.dumps(v, sort_keys=True) if not isinstance(v, str) else v for v in value)
        return [value]
    if kind == "user":
        if isinstance(value, dict):
            return {k: value[k] for k in _USER_KEYS if value.get(k)} or None
        return value
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "any":
        return json.loads(json.dumps(value, sort_keys=True, default=str))
    return value


def same(kind: FieldKind, a: Any, b: Any) -> bool:
    if type(a) is type(b) and a == b:  # equal plain values have equal canonical forms
        return True
    ca, cb = canon(kind, a), canon(kind, b)
    if kind == "user" and isinstance(ca, dict) and isinstance(cb, dict):
        return same_user(ca, cb)
    if kind == "doc" and ca != cb:
        # Trackers re-render rich text; if the normal forms still differ, compare what a reader sees.
        from protocol.richtext import plain_text

        try:
            return bool(ca and cb) and plain_text(ca) == plain_text(cb)
        except Exception:
            return False
    return bool(ca == cb)


def same_user(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two references to one person: any identity key in common decides (email case-insensitively)."""
    for key in ("account_id", "username"):
        if a.get(key) and b.get(key):
            return bool(a[key] == b[key])
    if a.get("email") and b.get("email"):
        return bool(str(a["email"]).casefold() == str(b["email"]).casefold())
    return bool(a.get("display_name") and a.get("display_name") == b.get("display_name"))


def convert(kind: FieldKind, value: Any, *, path: str) -> Any:
    """Coerce a plain value to what a field of ``kind`` accepts (raises RuleError naming ``path``)."""
    if value is None:
        return None
    try:
        if kind in ("text", "name"):
            if isinstance(value, dict) and "name" in value:
                return str(value["name"])
            if isinstance(value, str | int | float | bool):
                return str(value)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return ", ".join(value)
            raise ValueError(f"expected text, got {type(value).__name__}")
        if kind == "status":
            if isinstance(value, dict) and isinstance(value.get("name"), str):
                return value["name"]
            if isinstance(value, str):
                return value
            raise ValueError(f"expected a status name, got {type(value).__name__}")
        if kind == "doc":
            if isinstance(value, str):
                return from_plain_text(value)
            return validate_doc(value)
        if kind == "list":
            items = value if isinstance(value, list) else [value]
            out: list[str] = []
            for item in items:
                if isinstance(item, dict) and "name" in item:
                    item = item["name"]
                if not isinstance(item, str | int | float):
                    raise ValueError(f"expected a list of names, got an item of type {type(item).__name__}")
                out.append(str(item))
            return out
        if kind == "date":
            if isinstance(value, dt.date):
                return value.isoformat()
            return dt.date.fromisoformat(str(value)[:10]).isoformat()
        if kind == "user":
            if isinstance(value, str):
                return {"email": value} if "@" in value else {"username": value}
            return UserRef.model_validate(value).model_dump(mode="json", exclude_none=True)
    except (ValueError, TypeError, InvalidMessage) as exc:
        raise RuleError(f"cannot use this value: {exc}", path=path) from None
    return value  # "any": custom fields take JSON as it is


def status_of(value: Any) -> StatusRef | None:
    if isinstance(value, dict) and value.get("name"):
        return StatusRef.model_validate(value)
    return None


# -------------------------------------------------------------------------------------------------
# Conditions (skip_if / only_if)


def lookup(view: dict[str, Any], path: str) -> Any:
    """Dotted ``path`` in a plain view; a bare custom field id is looked up in ``custom_fields``;
    an object with a ``name`` (status, …) yields its name."""
    parts = path.split(".")
    node: Any = view
    if parts[0] not in view and isinstance(view.get("custom_fields"), dict):
        node = view["custom_fields"]
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    if isinstance(node, dict) and isinstance(node.get("name"), str):
        return node["name"]
    return node


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    return bool(a == b)


def matches(cond: Condition, view: dict[str, Any]) -> bool:
    value = lookup(view, cond.field)
    op, operand = cond.operator, cond.operand
    items = value if isinstance(value, list) else [value]
    if op == "equals":
        return _eq(value, operand)
    if op == "not_equals":
        return not _eq(value, operand)
    if op == "in":
        return any(_eq(v, o) for v in items for o in operand)
    if op == "not_in":
        return not any(_eq(v, o) for v in items for o in operand)
    if op in ("contains", "not_contains"):
        if isinstance(value, list):
            found = any(_eq(v, operand) for v in value)
        elif isinstance(value, str) and isinstance(operand, str):
            found = operand.casefold() in value.casefold()
        else:
            found = False
        return found if op == "contains" else not found
    if op == "matches":
        pattern = re.compile(str(operand))
        return any(isinstance(v, str) and pattern.search(v) is not None for v in items)
    if op == "is_empty":
        empty = value is None or value == "" or value == [] or value == {}
        return empty is bool(operand)
    raise AssertionError(op)  # pragma: no cover


def check_filters(only_if: list[Condition], skip_if: list[Condition], view: dict[str, Any]) -> str | None:
    """The reason to skip this entity, or None to go ahead."""
    for i, cond in enumerate(only_if):
        if not matches(cond, view):
            return f"only_if[{i}] not met: {cond.describe()}"
    for i, cond in enumerate(skip_if):
        if matches(cond, view):
            return f"skip_if[{i}] matched: {cond.describe()}"
    return None
