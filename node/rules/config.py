"""The Visual rules document: its schema (pydantic), loading from YAML or JSON, and Basic's defaults.

Basic mode IS this schema with every default (``VisualRules()``), so the three modes share one
engine. A document describes one direction of one connection. Validation errors name the path in
the document (``values.status.unmatched: ...``); YAML syntax errors name the line.

Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ByteSize, ConfigDict, Field, ValidationError, field_validator, model_validator

from node.rules.errors import RuleError

Direction = Literal["outgoing", "incoming"]
UserMatchKey = Literal["email", "account_id", "username"]
ALL_USER_KEYS: tuple[UserMatchKey, ...] = ("email", "account_id", "username")
FieldKind = Literal["text", "doc", "status", "name", "list", "date", "user", "any"]

#: Fields every tracker has, by neutral name (the replica's and IssueSnapshot's attribute names).
STANDARD_FIELDS: dict[str, FieldKind] = {
    "summary": "text",
    "description": "doc",
    "status": "status",
    "priority": "name",
    "issue_type": "name",
    "labels": "list",
    "components": "list",
    "fix_versions": "list",
    "affects_versions": "list",
    "due_date": "date",
    "assignee": "user",
    "reporter": "user",
}
#: What Basic shares (comments and attachments are switched on in their own sections).
BASIC_FIELDS: tuple[str, ...] = (
    "summary",
    "description",
    "status",
    "priority",
    "issue_type",
    "labels",
    "components",
    "due_date",
)
#: Names that are not plain fields (they have their own sections or are not mappable yet).
RESERVED = frozenset(
    {"comments", "attachments", "worklogs", "links", "parent", "entity", "custom_fields", "resolution"}
)
MAX_SOURCE_CHARS = 256 * 1024
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,199}$")
HEADER_PLACEHOLDERS = frozenset({"author", "peer", "created", "id"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
DEFAULT_HEADER = "*{author}* (via {peer}) wrote:"


def field_kind(name: str) -> FieldKind:
    return STANDARD_FIELDS.get(name, "any")


def _check_field_name(name: str) -> str:
    if name in RESERVED:
        raise ValueError(f"{name!r} is not a plain field (use its own section, or a script)")
    if not _FIELD_NAME.match(name):
        raise ValueError(f"{name!r} is not a field name (letters, digits, '_', '.', '-')")
    return name


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldRule(_Strict):
    """How one field flows. Shorthands: ``true`` (same name), ``false`` (disabled), ``"target"``."""

    to: str | None = None
    enabled: bool = True
    when: Literal["always", "create"] = "always"  # incoming: "create" = set only when creating the issue
    include: str | None = None  # list fields: keep only items matching this regex
    exclude: str | None = None  # list fields: drop items matching this regex

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {"enabled": value}
        if isinstance(value, str):
            return {"to": value}
        if value is None:
            return {}
        return value

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        return None if value is None else _check_field_name(value)

    @field_validator("include", "exclude")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _check_regex(value)


class Unmatched(_Strict):
    """What to do with a value the map does not list."""

    kind: Literal["keep", "ignore", "error", "default"] = "keep"
    default: Any = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value in {"keep", "ignore", "error"}:
                return {"kind": value}
            raise ValueError(f"must be 'keep', 'ignore', 'error' or {{default: VALUE}}, not {value!r}")
        if isinstance(value, dict) and set(value) == {"default"}:
            return {"kind": "default", "default": value["default"]}
        if isinstance(value, dict) and (not value or "kind" in value):
            return value
        raise ValueError("must be 'keep', 'ignore', 'error' or {default: VALUE}")


class ValueMap(_Strict):
    """Translate values of one field (``status``, ``priority``, ``issue_type``, a custom field, or
    each item of a list field). Keys are matched case-insensitively unless ``ignore_case: false``."""

    map: dict[str, Any] = Field(default_factory=dict)
    unmatched: Unmatched = Field(default_factory=lambda: Unmatched())
    ignore_case: bool = True

    def lookup(self, value: str) -> tuple[bool, Any]:
        if value in self.map:
            return True, self.map[value]
        if self.ignore_case:
            folded = value.casefold()
            for key, target in self.map.items():
                if key.casefold() == folded:
                    return True, target
        return False, None


class UserRules(_Strict):
    """Incoming: how a remote person becomes a local one. ``table`` maps a remote email, account id
    or username to a local user (an email, a username, or ``{account_id: ...}``)."""

    match: list[UserMatchKey] = Field(default_factory=lambda: list(ALL_USER_KEYS), min_length=1)
    table: dict[str, str | dict[str, str]] = Field(default_factory=dict)
    unmatched: Unmatched = Field(default_factory=lambda: Unmatched(kind="keep"))

    @field_validator("unmatched")
    @classmethod
    def _no_ignore(cls, value: Unmatched) -> Unmatched:
        if value.kind == "ignore":
            return Unmatched(kind="keep")
        return value

    @field_validator("table")
    @classmethod
    def _table(cls, value: dict[str, str | dict[str, str]]) -> dict[str, str | dict[str, str]]:
        for key, target in value.items():
            if isinstance(target, dict):
                bad = set(target) - {"email", "account_id", "username", "display_name"}
                if bad or not target:
                    raise ValueError(f"{key!r}: a user is an email, a username or {{account_id: ID}}")
        return value


class CommentRules(_Strict):
    enabled: bool = True
    # Outgoing: internal comments are NOT sent unless this says "internal" (send, still flagged
    # internal) or "public". Incoming: what to do with a comment the peer sent flagged internal
    # (default "internal": add it as an internal comment).
    internal: Literal["skip", "internal", "public"] | None = None
    header: str = DEFAULT_HEADER  # incoming: first line of each added comment; "" for none
    edits: bool = True
    deletions: bool = True

    @field_validator("header")
    @classmethod
    def _header(cls, value: str) -> str:
        for name in _PLACEHOLDER.findall(value):
            if name not in HEADER_PLACEHOLDERS:
                known = ", ".join("{" + p + "}" for p in sorted(HEADER_PLACEHOLDERS))
                raise ValueError(f"unknown placeholder {{{name}}}; use {known}")
        return value


class AttachmentRules(_Strict):
    enabled: bool = True
    max_size: ByteSize | None = None  # "10MB", "512KiB" or bytes; larger ones are skipped with a warning
    deletions: bool = True
    include: str | None = None  # filename regex
    exclude: str | None = None

    @field_validator("include", "exclude")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return _check_regex(value)


#: Neutral fields that become prefixed labels on GitHub (and labels that become fields again).
LABEL_FIELDS: tuple[str, ...] = ("status", "priority", "issue_type", "components")
_LABEL_ALIASES = {"type": "issue_type", "component": "components"}
DEFAULT_NOT_PLANNED = r"won'?t|not[ _-]?planned|cancel|reject|declin|duplicate|invalid|obsolete|abandon"


class LabelPrefixes(_Strict):
    """The label prefix of each field GitHub lacks (``null`` switches that field's label off).
    ``type`` and ``component`` are accepted for ``issue_type`` and ``components``."""

    status: str | None = "status: "
    priority: str | None = "priority: "
    issue_type: str | None = "type: "
    components: str | None = "component: "

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, value: Any) -> Any:
        if isinstance(value, dict):
            out = dict(value)
            for alias, name in _LABEL_ALIASES.items():
                if alias in out:
                    if name in out:
                        raise ValueError(f"give {name!r} or {alias!r}, not both")
                    out[name] = out.pop(alias)
            return out
        return value

    @model_validator(mode="after")
    def _distinct(self) -> LabelPrefixes:
        seen: dict[str, str] = {}
        for name in LABEL_FIELDS:
            prefix = getattr(self, name)
            if prefix is None:
                continue
            if not prefix.strip():
                raise ValueError(f"{name}: a prefix cannot be empty (use null to switch it off)")
            folded = prefix.casefold()
            for other, known in seen.items():
                if folded.startswith(known) or known.startswith(folded):
                    raise ValueError(f"{name}: prefix {prefix!r} overlaps the prefix of {other}")
            seen[name] = folded
        return self

    def items(self) -> list[tuple[str, str]]:
        return [(name, p) for name in LABEL_FIELDS if (p := getattr(self, name)) is not None]


class GitHubRules(_Strict):
    """Incoming rules when one side is GitHub and the other is not (``docs/rules.md``, "Jira ↔ GitHub").

    * local GitHub: status → open/closed (+ ``status: NAME`` label), priority / type / components →
      labels, due date → a footer line of the body (or dropped), attachments → link comments,
      internal comments skipped;
    * local Jira (or another tracker), peer GitHub: the same labels become fields again (only
      values in ``known_values``, when a list is given), open/closed drives the workflow by category.
    """

    enabled: bool = True
    label_prefixes: LabelPrefixes = Field(default_factory=lambda: LabelPrefixes())
    # Values the LOCAL tracker has (local Jira): a label naming another value stays a label.
    # Without a list for a field, every value is taken (the tracker refuses an unknown one).
    known_values: dict[str, list[str]] = Field(default_factory=dict)
    due_date: Literal["footer", "drop"] = "footer"
    due_date_prefix: str = Field("Due date: ", min_length=1, max_length=100)
    attachments: Literal["links", "skip"] = "links"
    # A remote status or resolution matching this (case-insensitive) closes as "not planned".
    not_planned: str = DEFAULT_NOT_PLANNED

    @field_validator("known_values", mode="before")
    @classmethod
    def _known(cls, value: Any) -> Any:
        if isinstance(value, dict):
            out = {_LABEL_ALIASES.get(str(k), k): v for k, v in value.items()}
            for name in out:
                if name not in LABEL_FIELDS:
                    raise ValueError(f"{name!r}: known values are for {', '.join(LABEL_FIELDS)}")
            return out
        return value

    @field_validator("not_planned")
    @classmethod
    def _regex(cls, value: str) -> str:
        _check_regex(value)
        return value


_OPERATORS = ("equals", "not_equals", "in", "not_in", "contains", "not_contains", "matches", "is_empty")


class Condition(_Strict):
    """``{field: PATH, <operator>: VALUE}`` with exactly one operator. PATH is dotted into the issue
    (outgoing) or replica (incoming) view; a custom field can be named by its id alone."""

    field: str = Field(min_length=1)
    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    contains: Any = None
    not_contains: Any = None
    matches: str | None = None
    is_empty: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op for op in _OPERATORS if (op if op != "in" else "in_") in self.model_fields_set]
        if len(given) != 1:
            raise ValueError(f"a condition needs exactly one operator of {', '.join(_OPERATORS)}")
        if self.matches is not None:
            _check_regex(self.matches)
        return self

    @property
    def operator(self) -> str:
        for op in _OPERATORS:
            if (op if op != "in" else "in_") in self.model_fields_set:
                return op
        raise AssertionError("validated")  # pragma: no cover

    @property
    def operand(self) -> Any:
        op = self.operator
        return getattr(self, "in_" if op == "in" else op)

    def describe(self) -> str:
        return f"{self.field} {self.operator} {self.operand!r}"


class VisualRules(_Strict):
    """One direction's declarative rules. ``VisualRules()`` is exactly Basic mode."""

    version: Literal[1] = 1
    defaults: Literal["basic", "none"] = "basic"  # start from Basic's fields, or from nothing
    fields: dict[str, FieldRule] = Field(default_factory=dict)
    values: dict[str, ValueMap] = Field(default_factory=dict)
    users: UserRules = Field(default_factory=lambda: UserRules())
    comments: CommentRules = Field(default_factory=lambda: CommentRules())
    attachments: AttachmentRules = Field(default_factory=lambda: AttachmentRules())
    skip_if: list[Condition] = Field(default_factory=list)  # any matches → not sent / ignored
    only_if: list[Condition] = Field(default_factory=list)  # all must match, else not sent / ignored
    create: bool = True  # incoming: create a local issue for a new remote one
    conflict_policy: Literal["later_wins", "remote_wins", "local_wins"] = "later_wins"
    github: GitHubRules = Field(default_factory=lambda: GitHubRules())  # incoming, GitHub on one side

    @field_validator("fields", "values")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            _check_field_name(name)
        return value


class FieldPlan(_Strict):
    source: str
    target: str
    rule: FieldRule

    @property
    def source_kind(self) -> FieldKind:
        return field_kind(self.source)

    @property
    def target_kind(self) -> FieldKind:
        return field_kind(self.target)


def plan_fields(rules: VisualRules, direction: Direction) -> list[FieldPlan]:
    """The effective field mapping, checked for this direction (raises RuleError naming the path)."""
    chosen: dict[str, FieldRule] = {}
    if rules.defaults == "basic":
        chosen = {name: FieldRule() for name in BASIC_FIELDS}
    for name, rule in rules.fields.items():
        chosen[name] = rule
    plans: list[FieldPlan] = []
    targets: dict[str, str] = {}
    for source, rule in chosen.items():
        if not rule.enabled:
            continue
        target = rule.to or source
        path = f"fields.{source}"
        if rule.when == "create" and direction == "outgoing":
            raise RuleError("'when: create' only applies to incoming rules", path=f"{path}.when")
        src_kind, tgt_kind = field_kind(source), field_kind(target)
        if "any" not in (src_kind, tgt_kind) and src_kind != tgt_kind:
            raise RuleError(
                f"cannot map {source} ({src_kind}) to {target} ({tgt_kind}); map fields of the same kind",
                path=f"{path}.to",
            )
        if (rule.include or rule.exclude) and "list" not in (src_kind, tgt_kind) and src_kind != "any":
            raise RuleError("include/exclude apply to list fields only", path=path)
        if target in targets:
            raise RuleError(
                f"{target!r} is already the target of fields.{targets[target]}", path=f"{path}.to"
            )
        targets[target] = source
        plans.append(FieldPlan(source=source, target=target, rule=rule))
    sources = {p.source for p in plans}
    for name in rules.values:
        if name not in sources:
            raise RuleError(f"{name!r} is not a synced field in this direction", path=f"values.{name}")
        if field_kind(name) in ("doc", "user", "date"):
            raise RuleError(f"value maps do not apply to {field_kind(name)} fields", path=f"values.{name}")
    if direction == "outgoing" and "github" in rules.model_fields_set:
        raise RuleError("the github section belongs to incoming rules", path="github")
    if direction == "outgoing" and rules.comments.header != DEFAULT_HEADER:
        raise RuleError(
            "the comment header is set by the receiving side's incoming rules", path="comments.header"
        )
    return plans


def load_visual(source: str) -> VisualRules:
    """Parse and validate a Visual document (YAML, or JSON which YAML reads too)."""
    if len(source) > MAX_SOURCE_CHARS:
        raise RuleError(f"the rules document is larger than {MAX_SOURCE_CHARS // 1024} KiB")
    data = _parse_document(source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RuleError("the rules document must be a mapping (key: value), not a " + type(data).__name__)
    _check_keys(data, "")
    try:
        return VisualRules.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _check_keys(node: Any, path: str) -> None:
    """YAML 1.1 reads unquoted on/off/yes/no as booleans; say so instead of a puzzling type error."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                hint = " (YAML reads on/off/yes/no as booleans: quote it)" if isinstance(key, bool) else ""
                raise RuleError(f"key {key!r} must be text{hint}", path=path or None)
            _check_keys(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _check_keys(item, f"{path}[{i}]")


def _parse_document(source: str) -> Any:
    stripped = source.lstrip()
    if stripped.startswith("{"):
        try:
            return json.loads(source)
        except json.JSONDecodeError as exc:
            raise RuleError(f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
    try:
        for event in yaml.parse(source, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                raise RuleError("YAML aliases (*name) are not allowed", line=mark.line + 1 if mark else None)
        return yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleError(f"invalid YAML: {problem}", line=mark.line + 1 if mark else None) from None


def error_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            item = "in" if item == "in_" else item
            parts.append(("." if parts else "") + item)
    return "".join(parts)


_TYPE_STEPS = frozenset({"str", "dict[str,str]", "bool", "int", "list", "dict"})


def validation_error(exc: ValidationError, prefix: str = "") -> RuleError:
    """A pydantic error as a RuleError naming the path (``prefix`` e.g. ``"replica."``)."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        # Drop pydantic's internal step names ("function-before[...]", "str", ...) from the path.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in _TYPE_STEPS)))
        msg = err["msg"].removeprefix("Value error, ")
        path = error_path(loc)
        problems.append((prefix + path if path else prefix.rstrip("."), msg))
    first_path, first_msg = problems[0]
    if len(problems) > 1:
        more = "; ".join(f"{p or '(top)'}: {m}" for p, m in problems[1:4])
        first_msg += f" (and {len(problems) - 1} more: {more})"
    return RuleError(first_msg, path=first_path or None)
