"""GitHub webhook deliveries (``issues``, ``issue_comment``) → :class:`~node.trackers.base.TrackerEvent`.

A delivery is a JSON body plus headers: ``X-GitHub-Event`` (the event name), ``X-GitHub-Delivery``
(a GUID, for de-duplication) and, when the hook has a secret, ``X-Hub-Signature-256:
sha256=<hex HMAC-SHA256 of the raw body>``. With a secret configured, a missing or wrong signature
is a :class:`~node.trackers.base.WebhookError` (compared in constant time); without one, deliveries
are accepted unsigned (configure a secret for anything reachable from the internet).

Events of pull requests (``issue_comment`` on a PR; ``issue.pull_request`` present) are skipped, as
are ``ping`` and every event Tandem does not use: they return no events, not an error. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from node.trackers.base import ChangeItem, EventKind, TrackerEvent, WebhookError
from node.trackers.common import signing
from node.trackers.common.signing import sign as sign  # the X-Hub-Signature-256 value (tests, emulator)

from .mapping import event_change, full_name_of, is_pull_request, make_key, parse_time, user_ref

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
SIGNATURE_HEADER = "x-hub-signature-256"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"

#: Events Tandem subscribes to (see ``GitHubAdapter.register_webhook``).
SUBSCRIBED_EVENTS = ("issues", "issue_comment")

_ISSUE_ACTIONS: dict[str, EventKind] = {
    "opened": "issue_created",
    "deleted": "issue_deleted",
    "edited": "issue_updated",
    "closed": "issue_updated",
    "reopened": "issue_updated",
    "labeled": "issue_updated",
    "unlabeled": "issue_updated",
    "assigned": "issue_updated",
    "unassigned": "issue_updated",
    "milestoned": "issue_updated",
    "demilestoned": "issue_updated",
    "transferred": "issue_updated",
    "locked": "issue_updated",
    "unlocked": "issue_updated",
}
_ACTION_FIELDS: dict[str, list[str]] = {
    "closed": ["status", "resolution"],
    "reopened": ["status", "resolution"],
    "labeled": ["labels"],
    "unlabeled": ["labels"],
    "assigned": ["assignee"],
    "unassigned": ["assignee"],
    "milestoned": ["fix_versions"],
    "demilestoned": ["fix_versions"],
    "locked": ["locked"],
    "unlocked": ["locked"],
}
_EDIT_FIELDS = {"title": "summary", "body": "description"}
_COMMENT_ACTIONS: dict[str, EventKind] = {
    "created": "comment_created",
    "edited": "comment_updated",
    "deleted": "comment_deleted",
}


def verify_signature(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    signing.verify(
        _lower(headers).get(SIGNATURE_HEADER), body, secret, tracker="GitHub", header="X-Hub-Signature-256"
    )


def delivery_id(headers: Mapping[str, str]) -> str | None:
    """``X-GitHub-Delivery``: unique per delivery (redeliveries reuse it), for de-duplication."""
    return _lower(headers).get(DELIVERY_HEADER)


def parse_webhook(
    headers: Mapping[str, str], body: bytes, *, secret: str | None = None
) -> list[TrackerEvent]:
    if len(body) > MAX_BODY_BYTES:
        raise WebhookError(f"GitHub webhook: body larger than {MAX_BODY_BYTES} bytes")
    if secret:
        verify_signature(headers, body, secret)
    event = _lower(headers).get(EVENT_HEADER)
    if not event:
        raise WebhookError("GitHub webhook: X-GitHub-Event header missing")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookError("GitHub webhook: body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookError("GitHub webhook: body is not a JSON object")
    if event not in SUBSCRIBED_EVENTS:
        return []  # ping, label, push, ...: nothing Tandem syncs
    action = payload.get("action")
    issue = payload.get("issue")
    if not isinstance(action, str) or not isinstance(issue, dict):
        raise WebhookError(f"GitHub webhook: {event} delivery without 'action' and 'issue'")
    if is_pull_request(issue):
        return []
    try:
        number = int(issue["number"])
        full_name = full_name_of(
            {**issue, "repository": payload.get("repository") or issue.get("repository")}
        )
    except (KeyError, TypeError, ValueError):
        raise WebhookError(f"GitHub webhook: {event} delivery names no issue number or repository") from None
    key = make_key(full_name, number)
    actor = user_ref(payload.get("sender"))
    at = parse_time(issue.get("updated_at"))
    if event == "issues":
        kind = _ISSUE_ACTIONS.get(action)
        if kind is None:
            return []  # pinned, typed, ...: not synced
        fields, changelog = _issue_changes(action, payload, issue, actor, at)
        return [
            TrackerEvent(
                kind=kind,
                issue_id=key,
                issue_key=key,
                project=full_name,
                actor=actor,
                at=at,
                changed_fields=fields,
                changelog=changelog,
            )
        ]
    ckind = _COMMENT_ACTIONS.get(action)
    comment = payload.get("comment")
    if ckind is None:
        return []
    if not isinstance(comment, dict) or comment.get("id") is None:
        raise WebhookError("GitHub webhook: issue_comment delivery without 'comment.id'")
    return [
        TrackerEvent(
            kind=ckind,
            issue_id=key,
            issue_key=key,
            project=full_name,
            actor=actor,
            at=parse_time(comment.get("updated_at")) or at,
            comment_id=str(comment["id"]),
        )
    ]


def _issue_changes(
    action: str, payload: dict[str, Any], issue: dict[str, Any], actor: Any, at: Any
) -> tuple[list[str], list[ChangeItem]]:
    when = at or parse_time(issue.get("created_at"))
    items: list[ChangeItem] = []
    fields = list(_ACTION_FIELDS.get(action, []))
    if action == "edited":
        raw_changes = payload.get("changes")
        changes: dict[str, Any] = raw_changes if isinstance(raw_changes, dict) else {}
        for native, neutral in _EDIT_FIELDS.items():
            if native in changes:
                fields.append(neutral)
                old = changes[native].get("from") if isinstance(changes[native], dict) else None
                if when is not None:
                    new = issue.get(native)
                    items.append(
                        ChangeItem(
                            field=neutral,
                            from_value=str(old) if old is not None and native == "title" else None,
                            to_value=str(new) if new is not None and native == "title" else None,
                            author=actor,
                            at=when,
                        )
                    )
        if not changes:
            fields.append("resolution")  # state_reason changed on a closed issue
    elif when is not None:
        item = event_change(action, payload, actor, when)
        if item is not None:
            items.append(item)
    return fields, items


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}
