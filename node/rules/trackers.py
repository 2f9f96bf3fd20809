"""Tracker-aware defaults: what incoming rules do when the two sides are different trackers.

GitHub Issues has no priority, type, components, due date, attachments or internal comments, and
its workflow is just open/closed. Before the field mapping runs, :func:`adapt_incoming` reshapes the
received replica (and the previous one, the same way, so "what changed" stays exact) into what the
LOCAL tracker can hold:

* **local GitHub, peer not GitHub**: status → ``open``/``closed`` by category (a ``values.status``
  map onto ``open``/``closed`` wins) plus a ``status: NAME`` label; priority, type and each
  component → ``priority: X`` / ``type: X`` / ``component: X`` labels; the due date → a footer line
  of the body (or dropped, with a warning); each attachment → one comment linking the sender's copy
  (``Attachment.url``); internal comments are skipped with a warning unless ``comments.internal:
  public``. A done status whose name or resolution says "won't do" closes as not planned.
* **peer GitHub, local another tracker**: those labels become fields again (a value not in
  ``github.known_values``, when a list is given, stays a label); the footer becomes the due date;
  open/closed drives the workflow by category (``closed`` → a done status), and the engine reports
  the status reached back (``ChangeSet.report_back``).
* Between different trackers, people are matched by email only unless ``users.match`` says
  otherwise: account ids and usernames of two trackers are different namespaces (a GitHub login
  ``jane`` is not Jira's ``jane``). The ``users.table`` maps a login to an account either way.

The sender's tracker kind travels in ``replica.extras["tracker"]`` (and the Jira resolution in
``extras["resolution"]``), filled by the outgoing rules from ``IssueSnapshot.tracker``.

Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from node.rules.config import FieldPlan, VisualRules
from node.rules.context import IncomingContext
from node.trackers.base import IssueSnapshot
from protocol.replica import Attachment, Comment, Replica, StatusRef
from protocol.richtext import Doc, plain_text

GITHUB = "github"
JIRA = "jira"
_SPACE = re.compile(r"\s")
OPEN, CLOSED = "open", "closed"
NOT_PLANNED_TRANSITION = "close_not_planned"
_LABEL_CHANGE_FIELDS = ("labels", "status", "priority", "issue_type", "components")


@dataclass
class Adapted:
    """A replica pair reshaped for the local tracker, and the rules to run on it."""

    replica: Replica
    previous: Replica | None
    rules: VisualRules
    direction: str  # "to_github" | "from_github" | "users_only"
    warnings: list[str] = field(default_factory=list)
    state_driven_status: bool = False  # from_github: the status target is the open/closed state
    not_planned: bool = False  # to_github: a close should be "not planned"


def family(kind: str) -> str:
    """``jira-cloud`` / ``jira-server`` / ``jira`` → ``jira``: one family, one set of capabilities."""
    return kind.casefold().strip().split("-", 1)[0]


def peer_tracker(replica: Replica, ctx: IncomingContext) -> str:
    value = ctx.peer_tracker or replica.extras.get("tracker") or ""
    return family(value) if isinstance(value, str) else ""


def adapt_incoming(
    replica: Replica,
    previous: Replica | None,
    ctx: IncomingContext,
    rules: VisualRules,
    plans: list[FieldPlan],
    local_issue: IssueSnapshot | None = None,
) -> Adapted | None:
    """The replica pair as the local tracker can hold it, or None when nothing differs."""
    local, peer = family(ctx.tracker), peer_tracker(replica, ctx)
    if not local:
        return None
    effective = _user_defaults(rules, local, peer)
    if not rules.github.enabled or (local != GITHUB and peer != GITHUB) or local == peer:
        if effective is rules:
            return None
        return Adapted(replica, previous, effective, "users_only")
    if local == GITHUB:
        # Jira labels cannot contain spaces: the GitHub labels that have them never reached the
        # peer, so its label list must not remove them.
        keep: list[str] = []
        if peer == JIRA and local_issue is not None:
            prefixes = [p.casefold() for _n, p in rules.github.label_prefixes.items()]
            keep = [
                label
                for label in local_issue.labels
                if _SPACE.search(label) and not label.casefold().startswith(tuple(prefixes))
            ]
        return _to_github(replica, previous, effective, plans, keep)
    return _from_github(replica, previous, effective, plans, drop_spaced=local == JIRA)


def finish(adapted: Adapted, status: str | None, local: IssueSnapshot | None) -> tuple[str | None, bool]:
    """(transition to prefer, report back?) for the change set's target ``status``."""
    if status is None:
        return None, False
    if adapted.direction == "to_github":
        if status.casefold() == CLOSED and adapted.not_planned:
            return NOT_PLANNED_TRANSITION, False
        return None, False
    if adapted.direction == "from_github" and adapted.state_driven_status:
        # The walk picks a status of this workflow the peer cannot guess: tell it (a new issue also
        # tells its priority and type). Within the same category the walk does not move.
        target = adapted.replica.status.category if adapted.replica.status else None
        moves = local is None or local.status is None or local.status.category != target
        return None, moves
    return None, False


def _user_defaults(rules: VisualRules, local: str, peer: str) -> VisualRules:
    if not peer or local == peer or "match" in rules.users.model_fields_set:
        return rules
    return rules.model_copy(update={"users": rules.users.model_copy(update={"match": ["email"]})})


# -------------------------------------------------------------------------------------------------
# Local GitHub, peer another tracker


def _to_github(
    replica: Replica, previous: Replica | None, rules: VisualRules, plans: list[FieldPlan], keep: list[str]
) -> Adapted:
    gh = rules.github
    sources = {p.source for p in plans}
    warnings: list[str] = []
    comments = rules.comments
    if comments.enabled and comments.internal in (None, "internal"):
        hidden = [c.id for c in replica.comments if c.internal]
        if hidden:
            warnings.append(
                f"GitHub has no internal comments: {len(hidden)} internal comment(s) not copied "
                "(comments.internal: public posts them publicly)"
            )
        comments = comments.model_copy(update={"internal": "skip"})
    # Value maps of the fields that become labels were applied here; the plans must not map twice.
    values = {
        k: v for k, v in rules.values.items() if k not in ("status", "priority", "issue_type", "components")
    }
    effective = rules.model_copy(update={"comments": comments, "values": values})
    new = _github_shape(replica, rules, sources, warnings, keep)
    old = _github_shape(previous, rules, sources, None, keep) if previous is not None else None
    adapted = Adapted(new, old, effective, "to_github", warnings)
    status = replica.status
    resolution = replica.extras.get("resolution")
    if status is not None and status.category == "done":
        text = " ".join(str(t) for t in (status.name, resolution) if t)
        adapted.not_planned = bool(re.search(gh.not_planned, text, re.IGNORECASE))
    return adapted


def _github_shape(
    replica: Replica, rules: VisualRules, sources: set[str], warnings: list[str] | None, keep: list[str]
) -> Replica:
    from node.rules.engine import Skip, map_value  # the engine imports this module

    gh = rules.github
    prefixes = dict(gh.label_prefixes.items())
    labels = list(replica.labels or [])
    extra: list[str] = []

    def mapped(name: str, value: str) -> str | None:
        try:
            out = map_value(rules, name, "name", value)
        except Skip:
            return None
        return None if out is None else str(out.get("name") if isinstance(out, dict) else out)

    status: StatusRef | None = None
    if replica.status is not None and "status" in sources:
        state = CLOSED if replica.status.category == "done" else OPEN
        target = mapped("status", replica.status.name)
        if target is not None and target.casefold() in (OPEN, CLOSED):
            state = target.casefold()
        status = StatusRef(name=state, category="done" if state == CLOSED else "new")
        if "status" in prefixes:
            extra.append(prefixes["status"] + replica.status.name)
    for name in ("priority", "issue_type"):
        value = getattr(replica, name)
        if value and name in sources and name in prefixes:
            label = mapped(name, value)
            if label:
                extra.append(prefixes[name] + label)
    if "components" in sources and "components" in prefixes:
        for component in replica.components or []:
            label = mapped("components", component)
            if label:
                extra.append(prefixes["components"] + label)
    all_labels = list(dict.fromkeys([*labels, *extra, *keep]))
    description = replica.description
    if replica.due_date is not None and "due_date" in sources:
        if gh.due_date == "footer" and "description" in sources:
            description = _with_footer(description, gh.due_date_prefix + replica.due_date.isoformat())
        elif warnings is not None:
            warnings.append(f"GitHub has no due date: {replica.due_date.isoformat()} not copied")
    comments = list(replica.comments)
    if replica.attachments and rules.attachments.enabled:
        if gh.attachments == "links":
            from node.rules.engine import _attachment_ok

            sink: list[str] = warnings if warnings is not None else []
            for att in replica.attachments:
                if _attachment_ok(rules, att, sink, "not linked"):
                    comments.append(_attachment_comment(att))
        elif warnings is not None:
            warnings.append(f"GitHub has no attachments: {len(replica.attachments)} not copied")
    changed = dict(replica.field_changed_at)
    label_times = [changed[k] for k in _LABEL_CHANGE_FIELDS if k in changed]
    if label_times:
        changed["labels"] = max(label_times)
    if "due_date" in changed and gh.due_date == "footer":
        changed["description"] = max(t for k in ("description", "due_date") if (t := changed.get(k)))
    return replica.model_copy(
        update={
            "status": status,
            "labels": all_labels,
            "priority": None,
            "issue_type": None,
            "components": [],
            "due_date": None,
            "description": description,
            "comments": comments,
            "attachments": [],
            "field_changed_at": changed,
        }
    )


def _with_footer(description: Doc | None, line: str) -> Doc:
    content = list((description or {}).get("content") or [])
    content.append({"type": "paragraph", "content": [{"type": "text", "text": line}]})
    return {"type": "doc", "version": 1, "content": content}


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _attachment_comment(att: Attachment) -> Comment:
    name: dict[str, Any] = {"type": "text", "text": att.filename}
    if att.url:
        name["marks"] = [{"type": "link", "attrs": {"href": att.url}}]
    inline: list[dict[str, Any]] = [
        {"type": "text", "text": "Attachment: "},
        name,
        {"type": "text", "text": f" ({_size(att.size)}, {att.mime_type})"},
    ]
    if not att.url:
        inline.append({"type": "text", "text": " — kept on the other tracker"})
    body = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": inline}]}
    return Comment(id=f"attachment:{att.id}", author=att.author, body=body, created=att.created)


# -------------------------------------------------------------------------------------------------
# Peer GitHub, local another tracker


@dataclass
class _Parsed:
    replica: Replica
    label_status: str | None
    state: str | None
    dropped: list[str] = field(default_factory=list)


def _from_github(
    replica: Replica,
    previous: Replica | None,
    rules: VisualRules,
    plans: list[FieldPlan],
    *,
    drop_spaced: bool,
) -> Adapted:
    sources = {p.source for p in plans}
    new = _fields_from_labels(replica, rules, sources, drop_spaced)
    old = _fields_from_labels(previous, rules, sources, drop_spaced) if previous is not None else None
    adapted = Adapted(new.replica, old.replica if old else None, rules, "from_github")
    if new.dropped:
        adapted.warnings.append(
            "Jira labels cannot contain spaces; kept on GitHub only: "
            + ", ".join(repr(x) for x in new.dropped)
        )
    if "status" not in sources or replica.status is None:
        return adapted
    category = replica.status.category
    if old is not None and previous is not None and previous.status is not None:
        # The previous replica as a status this side understands: its label, else its state.
        old_status = StatusRef(name=old.label_status or old.state or OPEN, category=previous.status.category)
        old.replica = old.replica.model_copy(update={"status": old_status})
        adapted.previous = old.replica
    status = StatusRef(name=new.state or OPEN, category=category)
    state_driven = True
    if old is None:
        if new.label_status and new.state != CLOSED:
            status, state_driven = StatusRef(name=new.label_status, category=category), False
    elif old.state != new.state:
        # Closed or reopened on GitHub: the state decides, even if the label changed as well (the
        # label may be this node's own earlier write, which the peer never echoes back).
        pass
    elif new.label_status and new.label_status != old.label_status:
        status, state_driven = StatusRef(name=new.label_status, category=category), False
    else:
        status = old.replica.status or status  # unchanged: not a candidate
        state_driven = False
    adapted.replica = adapted.replica.model_copy(update={"status": status})
    adapted.state_driven_status = state_driven
    return adapted


def _known(rules: VisualRules, name: str, value: str) -> str | None:
    """The local spelling of ``value``, or None when the known values of ``name`` exclude it."""
    known = rules.github.known_values.get(name)
    if known is None:
        return value
    folded = value.casefold()
    return next((k for k in known if k.casefold() == folded), None)


def _fields_from_labels(
    replica: Replica, rules: VisualRules, sources: set[str], drop_spaced: bool
) -> _Parsed:
    gh = rules.github
    prefixes = gh.label_prefixes.items()
    plain: list[str] = []
    found: dict[str, list[str]] = {}
    for label in replica.labels or []:
        folded = label.casefold()
        for name, prefix in prefixes:
            if name in sources and folded.startswith(prefix.casefold()):
                value = label[len(prefix) :].strip()
                local = _known(rules, name, value) if value else None
                if local is not None and (name == "components" or name not in found):
                    found.setdefault(name, []).append(local)
                    break
        else:
            plain.append(label)
            continue
    dropped = [x for x in plain if drop_spaced and _SPACE.search(x)]
    if dropped:
        plain = [x for x in plain if x not in dropped]
    update: dict[str, Any] = {"labels": plain}
    if "priority" in found:
        update["priority"] = found["priority"][0]
    if "issue_type" in found:
        update["issue_type"] = found["issue_type"][0]
    if "components" in sources:
        update["components"] = list(dict.fromkeys(found.get("components", [])))
    if gh.due_date == "footer" and "due_date" in sources:
        description, due = _split_footer(replica.description, gh.due_date_prefix)
        update["description"] = description
        update["due_date"] = due
    changed = dict(replica.field_changed_at)
    if "labels" in changed:
        for name in ("priority", "issue_type", "components"):
            changed.setdefault(name, changed["labels"])
    if "description" in changed:
        changed.setdefault("due_date", changed["description"])
    update["field_changed_at"] = changed
    state = replica.status.name.casefold() if replica.status is not None else None
    label_status = found.get("status", [None])[0]
    return _Parsed(replica.model_copy(update=update), label_status, state, dropped)


def _split_footer(description: Doc | None, prefix: str) -> tuple[Doc | None, dt.date | None]:
    content = list((description or {}).get("content") or [])
    if not content:
        return description, None
    last = content[-1]
    if not isinstance(last, dict) or last.get("type") != "paragraph":
        return description, None
    text = plain_text({"type": "doc", "version": 1, "content": [last]}).strip()
    if not text.casefold().startswith(prefix.casefold()):
        return description, None
    try:
        due = dt.date.fromisoformat(text[len(prefix) :].strip())
    except ValueError:
        return description, None
    rest = content[:-1]
    return ({**(description or {}), "content": rest} if rest else None), due
