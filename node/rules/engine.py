"""The engine under all three modes: Visual rules (Basic = the defaults) applied to one entity.

* :func:`build_replica` — outgoing: local ``IssueSnapshot`` → ``Replica`` (or a reason not to send).
* :func:`build_changes` — incoming: replica + previous replica + local issue → minimal ``ChangeSet``.

Stale-safety (incoming): a field is a candidate only if it changed between ``previous`` and
``replica`` (on first sync every field is). A candidate whose LOCAL value also moved away from the
baseline (what this node last applied, ``ctx.last_applied``, else ``previous`` mapped locally) is a
conflict, resolved by ``conflict_policy`` and recorded; a field that did not change remotely is never
written, so a stale remote value never overwrites a fresh local edit.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from node.rules.changes import (
    AttachmentAdd,
    AttachmentDelete,
    ChangeSet,
    CommentAdd,
    CommentDelete,
    CommentEdit,
    Conflict,
    UnmatchedUser,
    UserChange,
)
from node.rules.config import FieldKind, FieldPlan, Unmatched, ValueMap, VisualRules, validation_error
from node.rules.context import IncomingContext, OutgoingContext
from node.rules.errors import RuleError
from node.rules.trackers import adapt_incoming
from node.rules.trackers import finish as finish_adapted
from node.rules.values import (
    _json,
    canon,
    changed_at_key,
    check_filters,
    convert,
    read_entity_field,
    same,
    same_user,
)
from node.trackers.base import IssueSnapshot, IssueUpdate
from protocol.replica import Attachment, Comment, Replica, UserRef
from protocol.richtext import Doc

_MISSING = object()


class Skip(Exception):
    """A value map said "ignore": leave this field alone."""


# -------------------------------------------------------------------------------------------------
# Shared helpers


def _map_scalar(vm: ValueMap, value: Any, field: str) -> Any:
    key = value.get("name") if isinstance(value, dict) else value
    if key is None:
        return value
    found, target = vm.lookup(str(key))
    if found:
        return target
    return _unmatched(vm.unmatched, value, str(key), field)


def _unmatched(rule: Unmatched, value: Any, key: str, field: str) -> Any:
    if rule.kind == "keep":
        return value
    if rule.kind == "default":
        return rule.default
    if rule.kind == "ignore":
        raise Skip(f"{field}: no mapping for {key!r}; left unchanged")
    raise RuleError(f"no mapping for {key!r} (add it to the map, or set unmatched)", path=f"values.{field}")


def map_value(rules: VisualRules, field: str, kind: FieldKind, value: Any) -> Any:
    """Apply ``values.<field>`` (if any). Lists map item by item ("ignore" drops the item)."""
    vm = rules.values.get(field)
    if vm is None or value is None:
        return value
    if isinstance(value, list):
        out = []
        for item in value:
            try:
                out.append(_map_scalar(vm, item, field))
            except Skip:
                continue
        return out
    return _map_scalar(vm, value, field)


def filter_list(plan: FieldPlan, value: Any) -> Any:
    if not isinstance(value, list) or not (plan.rule.include or plan.rule.exclude):
        return value
    inc = re.compile(plan.rule.include) if plan.rule.include else None
    exc = re.compile(plan.rule.exclude) if plan.rule.exclude else None
    return [
        v
        for v in value
        if not (isinstance(v, str) and ((inc and not inc.search(v)) or (exc and exc.search(v))))
    ]


def latest_changes(snapshot: IssueSnapshot, proxy_user: UserRef | None = None) -> dict[str, dt.datetime]:
    """Latest change per field from the tracker's history, leaving out the node's own writes (made as
    ``proxy_user``): a value copied from the peer keeps the peer's change time, not the copy's."""
    out: dict[str, dt.datetime] = {}
    for item in snapshot.changelog:
        if proxy_user is not None and item.author is not None and _same_person(item.author, proxy_user):
            continue
        if item.field not in out or item.at > out[item.field]:
            out[item.field] = item.at
    return out


def _same_person(a: UserRef, b: UserRef) -> bool:
    return same_user(a.model_dump(exclude_none=True), b.model_dump(exclude_none=True))


def _attachment_ok(rules: VisualRules, att: Attachment, warnings: list[str], verb: str) -> bool:
    ar = rules.attachments
    if ar.max_size is not None and att.size > ar.max_size:
        warnings.append(
            f"attachment {att.filename!r} ({att.size} bytes) is larger than {int(ar.max_size)} bytes; {verb}"
        )
        return False
    if ar.include and not re.search(ar.include, att.filename):
        return False
    return not (ar.exclude and re.search(ar.exclude, att.filename))


# -------------------------------------------------------------------------------------------------
# Outgoing


def build_replica(
    snapshot: IssueSnapshot, ctx: OutgoingContext, rules: VisualRules, plans: Sequence[FieldPlan]
) -> tuple[Replica | None, str | None, list[str]]:
    """(replica, None, warnings), or (None, reason, warnings) when the rules filter it out."""
    warnings: list[str] = []
    if rules.only_if or rules.skip_if:  # the JSON view of the issue (raw payload included) costs
        reason = check_filters(list(rules.only_if), list(rules.skip_if), snapshot.model_dump(mode="json"))
        if reason:
            return None, reason, warnings
    data = base_replica_data(snapshot)
    changed = latest_changes(snapshot, ctx.proxy_user)
    fallback = snapshot.created
    changed_at: dict[str, dt.datetime] = {}
    for plan in plans:
        value = filter_list(plan, read_entity_field(snapshot, plan.source))
        try:
            value = map_value(rules, plan.source, plan.source_kind, value)
        except Skip as why:
            warnings.append(str(why))
            continue
        if plan.target_kind == "status":
            if isinstance(value, str):  # a mapped name keeps the local category
                category = snapshot.status.category if snapshot.status else "new"
                value = {"name": value, "category": category}
        elif plan.target_kind != "any":
            value = convert(plan.target_kind, value, path=f"fields.{plan.source}")
        _put(data, plan.target, value)
        when = changed.get(plan.source, fallback)
        if when is not None:
            changed_at[changed_at_key(plan.target)] = when
    data["field_changed_at"] = {k: v.isoformat() for k, v in changed_at.items()}
    data["comments"] = outgoing_comments(snapshot, ctx, rules)
    data["attachments"] = outgoing_attachments(snapshot, ctx, rules, warnings)
    return validate_replica(data), None, warnings


def base_replica_data(snapshot: IssueSnapshot) -> dict[str, Any]:
    return {
        "entity": snapshot.ref().model_dump(mode="json"),
        "created": _json(snapshot.created),
        "updated": _json(snapshot.updated),
        "custom_fields": {},
        # The receiver's tracker-aware defaults need the sender's tracker (and a close reason).
        "extras": {"tracker": snapshot.tracker}
        | ({"resolution": snapshot.resolution} if snapshot.resolution else {}),
    }


def _put(data: dict[str, Any], target: str, value: Any) -> None:
    if target in Replica.model_fields and target not in ("custom_fields", "extras"):
        if value is None and target in ("labels", "components", "fix_versions", "affects_versions"):
            value = []
        data[target] = value
    else:
        data.setdefault("custom_fields", {})[target] = value


def validate_replica(data: dict[str, Any]) -> Replica:
    try:
        return Replica.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, "replica.") from None


def _is_received(ctx: OutgoingContext, snapshot: IssueSnapshot, comment: Comment) -> bool:
    if comment.id in ctx.received_comment_ids:
        return True
    marker = snapshot.comment_markers.get(comment.id)
    return bool(marker and ctx.connection and ctx.connection in marker)


def outgoing_comments(snapshot: IssueSnapshot, ctx: OutgoingContext, rules: VisualRules) -> list[Any]:
    if not rules.comments.enabled:
        return []
    policy = rules.comments.internal or "skip"
    out: list[Any] = []
    for comment in snapshot.comments:
        if _is_received(ctx, snapshot, comment):
            continue  # a copy of the peer's own comment: never echo it back
        if comment.internal and policy == "skip":
            continue
        # already valid: a copy, not a dump and re-validation; the body tree copied through orjson
        # (several times cheaper than deepcopy) so the replica shares no tree with the issue
        update: dict[str, Any] = {"body": orjson.loads(orjson.dumps(comment.body))}
        if comment.internal:
            update["internal"] = policy == "internal"
        out.append(comment.model_copy(update=update))
    return out


def outgoing_attachments(
    snapshot: IssueSnapshot, ctx: OutgoingContext, rules: VisualRules, warnings: list[str]
) -> list[Any]:
    if not rules.attachments.enabled:
        return []
    return [
        a.model_copy()
        for a in snapshot.attachments
        if a.id not in ctx.received_attachment_ids and _attachment_ok(rules, a, warnings, "not sent")
    ]


# -------------------------------------------------------------------------------------------------
# Incoming


def local_values(snapshot: IssueSnapshot, plans: Sequence[FieldPlan]) -> dict[str, Any]:
    """The local values of every field the incoming rules write: record this (after applying) as the
    twin's ``last_applied`` baseline."""
    out: dict[str, Any] = {}
    for plan in plans:
        value = read_entity_field(snapshot, plan.target)
        out[plan.target] = value.get("name") if plan.target_kind == "status" and value else value
    return out


def _local_value(local: IssueSnapshot, plan: FieldPlan) -> Any:
    value = read_entity_field(local, plan.target)
    if plan.target_kind == "status" and isinstance(value, dict):
        return value.get("name")
    return value


def _desired(rules: VisualRules, plan: FieldPlan, value: Any) -> Any:
    value = filter_list(plan, value)
    value = map_value(rules, plan.source, plan.source_kind, value)
    if plan.target_kind == "any":
        return value
    return convert(plan.target_kind, value, path=f"fields.{plan.source}")


def build_changes(
    replica: Replica,
    previous: Replica | None,
    local: IssueSnapshot | None,
    ctx: IncomingContext,
    rules: VisualRules,
    plans: Sequence[FieldPlan],
) -> ChangeSet:
    if rules.only_if or rules.skip_if:
        reason = check_filters(list(rules.only_if), list(rules.skip_if), replica.model_dump(mode="json"))
        if reason:
            return ChangeSet(action="ignore", reason=reason)
    if local is None and not rules.create:
        return ChangeSet(action="ignore", reason="creating local issues is switched off (create: false)")
    # Different trackers on the two sides: reshape the pair into what the local tracker can hold.
    adapted = adapt_incoming(replica, previous, ctx, rules, list(plans), local)
    if adapted is not None:
        replica, previous, rules = adapted.replica, adapted.previous, adapted.rules
    cs = ChangeSet(action="create" if local is None else "update")
    if adapted is not None:
        cs.warnings.extend(adapted.warnings)
    if local is None:
        cs.project = ctx.project or None
        if not ctx.project:
            cs.warnings.append("no target project in the context: the engine must choose one")
    updates: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    local_changed = latest_changes(local) if local is not None else {}
    for plan in plans:
        if local is not None and plan.rule.when == "create":
            continue
        new = read_entity_field(replica, plan.source)
        if previous is not None:
            old = read_entity_field(previous, plan.source)
            key = changed_at_key(plan.source)
            moved = _later(replica.field_changed_at.get(key), previous.field_changed_at.get(key))
            if same(plan.source_kind, new, old) and not moved:
                continue  # not changed remotely: never (re)write it
        try:
            desired = _desired(rules, plan, new)
        except Skip as why:
            cs.warnings.append(str(why))
            continue
        if local is None:
            if desired is None or desired == []:
                continue
        else:
            current = _local_value(local, plan)
            wanted = desired
            if plan.target_kind == "user":  # compare with the user the table picks, when it does
                mapped = user_change(rules, plan.target, new).mapped
                wanted = mapped.model_dump(mode="json", exclude_none=True) if mapped else desired
            if same(plan.target_kind, current, wanted):
                continue
            baseline = _baseline(rules, plan, ctx, previous)
            locally_edited = baseline is _MISSING or not same(plan.target_kind, current, baseline)
            if locally_edited and not (baseline is _MISSING and plan.target_kind == "user"):
                conflict = _resolve(rules, plan, ctx, replica, local, local_changed, current, desired)
                cs.conflicts.append(conflict)
                if conflict.winner == "local":
                    continue
        _stage(cs, rules, plan, desired, new, updates, custom)
    if custom:
        updates["custom_fields"] = custom
    if local is None and "issue_type" not in updates and ctx.default_issue_type:
        updates["issue_type"] = ctx.default_issue_type
    try:
        cs.fields = IssueUpdate.model_validate(updates)
    except ValidationError as exc:
        raise validation_error(exc, "fields.") from None
    _incoming_comments(cs, replica, previous, ctx, rules)
    _incoming_attachments(cs, replica, previous, ctx, rules)
    if adapted is not None:
        cs.transition, cs.report_back = finish_adapted(adapted, cs.status, local)
    if cs.action == "update" and cs.is_empty():
        cs.reason = "nothing to change"
    return cs


def _later(a: dt.datetime | None, b: dt.datetime | None) -> bool:
    """The sender's change time moved on: the field was edited there (perhaps back to the value we
    last saw, A → B → A, while we missed B)."""
    return a is not None and b is not None and a > b


def _baseline(rules: VisualRules, plan: FieldPlan, ctx: IncomingContext, previous: Replica | None) -> Any:
    if ctx.last_applied is not None and plan.target in ctx.last_applied:
        return ctx.last_applied[plan.target]
    if previous is None or plan.target_kind == "user":
        # A remote person cannot be compared with a local one without the tracker: users are
        # conflict-checked only against ``last_applied``.
        return _MISSING
    try:
        return _desired(rules, plan, read_entity_field(previous, plan.source))
    except (Skip, RuleError):
        return _MISSING


def _resolve(
    rules: VisualRules,
    plan: FieldPlan,
    ctx: IncomingContext,
    replica: Replica,
    local: IssueSnapshot,
    local_changed: dict[str, dt.datetime],
    current: Any,
    desired: Any,
) -> Conflict:
    remote_at = (
        replica.field_changed_at.get(changed_at_key(plan.source)) or replica.updated or replica.created
    )
    local_at = local_changed.get(plan.target) or local.updated or local.created
    policy = rules.conflict_policy
    if policy == "remote_wins":
        winner, why = "remote", "conflict_policy remote_wins"
    elif policy == "local_wins":
        winner, why = "local", "conflict_policy local_wins"
    elif remote_at is not None and (local_at is None or remote_at > local_at):
        winner, why = "remote", "the remote change is later"
    elif local_at is not None and (remote_at is None or local_at > remote_at):
        winner, why = "local", "the local change is later"
    elif ctx.node_id and ctx.peer_node_id and ctx.node_id != ctx.peer_node_id:
        winner = "local" if ctx.node_id < ctx.peer_node_id else "remote"
        why = "same time; the smaller node id wins"
    else:
        a, b = repr(canon(plan.target_kind, current)), repr(canon(plan.target_kind, desired))
        winner = "local" if a <= b else "remote"
        why = "same time and no node ids; the smaller value wins"
    return Conflict(
        field=plan.target,
        local_value=current,
        remote_value=desired,
        local_changed_at=local_at,
        remote_changed_at=remote_at,
        winner=winner,
        reason=why,
    )


def _stage(
    cs: ChangeSet,
    rules: VisualRules,
    plan: FieldPlan,
    desired: Any,
    remote_value: Any,
    updates: dict[str, Any],
    custom: dict[str, Any],
) -> None:
    kind = plan.target_kind
    if kind == "status":
        if desired is not None:
            cs.status = str(desired)
        return
    if kind == "user":
        cs.users.append(user_change(rules, plan.target, remote_value))
        return
    if kind == "any":
        custom[plan.target] = desired
    else:
        updates[plan.target] = desired


def user_change(rules: VisualRules, field: str, remote: Any) -> UserChange:
    ur = rules.users
    ref = UserRef.model_validate(remote) if isinstance(remote, dict) else None
    mapped: UserRef | None = None
    if ref is not None:
        for key in (ref.email, ref.account_id, ref.username):
            target = ur.table.get(key) if key else None
            if target is None and key and "@" in key:
                target = next((v for k, v in ur.table.items() if k.casefold() == key.casefold()), None)
            if target is not None:
                mapped = _user_of(target)
                break
    default = None
    if ur.unmatched.kind == "default":
        default = _user_of(ur.unmatched.default)
    return UserChange(
        field=field,
        remote=ref,
        mapped=mapped,
        match_by=list(ur.match),
        unmatched=_user_policy(ur.unmatched.kind),
        default=default,
    )


def _user_of(value: Any) -> UserRef:
    if isinstance(value, dict):
        return UserRef.model_validate(value)
    text = str(value)
    return UserRef(email=text) if "@" in text else UserRef(username=text)


_STRONG = re.compile(r"\*([^*]+)\*")
_PLACE = re.compile(r"\{(author|peer|created|id)\}")


def header_paragraph(template: str, comment: Comment, ctx: IncomingContext) -> dict[str, Any] | None:
    if not template.strip():
        return None
    a = comment.author
    author = (a.display_name or a.email or a.username or a.account_id) if a else None
    values = {
        "author": author or "Someone",
        "peer": ctx.peer_name or ctx.connection or "peer",
        "created": (  # (formatted only when the template shows it: a header per copied comment)
            comment.created.strftime("%Y-%m-%d %H:%M %Z").strip()
            if comment.created and "{created}" in template
            else ""
        ),
        "id": comment.id,
    }
    text = _PLACE.sub(lambda m: values[m.group(1)], template)
    inlines: list[dict[str, Any]] = []
    pos = 0
    for m in _STRONG.finditer(text):
        if m.start() > pos:
            inlines.append({"type": "text", "text": text[pos : m.start()]})
        inlines.append({"type": "text", "text": m.group(1), "marks": [{"type": "strong"}]})
        pos = m.end()
    if pos < len(text):
        inlines.append({"type": "text", "text": text[pos:]})
    return {"type": "paragraph", "content": inlines} if inlines else None


def comment_body(rules: VisualRules, comment: Comment, ctx: IncomingContext) -> Doc:
    header = header_paragraph(rules.comments.header, comment, ctx)
    content = list(comment.body.get("content") or [])
    return {"type": "doc", "version": 1, "content": ([header] if header else []) + content}


def _incoming_comments(
    cs: ChangeSet, replica: Replica, previous: Replica | None, ctx: IncomingContext, rules: VisualRules
) -> None:
    cr = rules.comments
    if not cr.enabled:
        return
    policy = cr.internal or "internal"
    before = {c.id: c for c in previous.comments} if previous else {}
    seen: set[str] = set()
    for c in replica.comments:
        seen.add(c.id)
        internal = c.internal and policy == "internal"
        local_id = ctx.comment_map.get(c.id)
        if c.internal and policy == "skip":
            if local_id is not None and cr.deletions:
                cs.comments_delete.append(CommentDelete(remote_id=c.id, local_id=local_id))
            continue
        if local_id is None:
            # model_construct: the body is the replica's (validated when it was decoded) under a
            # header paragraph built here, so validating the whole tree again would only cost.
            cs.comments_add.append(
                CommentAdd.model_construct(
                    remote_id=c.id,
                    body=comment_body(rules, c, ctx),
                    internal=internal,
                    author=c.author,
                    created=c.created,
                )
            )
            continue
        old = before.get(c.id)
        if cr.edits and old is not None and (old.body != c.body or old.internal != c.internal):
            cs.comments_edit.append(
                CommentEdit.model_construct(
                    remote_id=c.id, local_id=local_id, body=comment_body(rules, c, ctx), internal=internal
                )
            )
    if cr.deletions:
        for rid in before:
            if rid not in seen and rid in ctx.comment_map:
                cs.comments_delete.append(CommentDelete(remote_id=rid, local_id=ctx.comment_map[rid]))


def _incoming_attachments(
    cs: ChangeSet, replica: Replica, previous: Replica | None, ctx: IncomingContext, rules: VisualRules
) -> None:
    ar = rules.attachments
    if not ar.enabled:
        return
    seen: set[str] = set()
    for a in replica.attachments:
        seen.add(a.id)
        if a.id not in ctx.attachment_map and _attachment_ok(rules, a, cs.warnings, "not fetched"):
            cs.attachments_add.append(AttachmentAdd(remote=a))
    if ar.deletions and previous is not None:
        for a in previous.attachments:
            if a.id not in seen and a.id in ctx.attachment_map:
                cs.attachments_delete.append(
                    AttachmentDelete(remote_id=a.id, local_id=ctx.attachment_map[a.id])
                )


def _user_policy(kind: str) -> UnmatchedUser:
    if kind == "default":
        return "default"
    if kind == "error":
        return "error"
    return "keep"
