"""Jira webhook deliveries → :class:`~node.trackers.base.TrackerEvent`.

Jira Cloud and Server both post REST-v2-shaped bodies (users with ``name``/``key`` and, on Cloud,
``accountId``; text as wiki markup): ``{"webhookEvent", "timestamp", "user"?, "issue"?,
"changelog"?, "comment"?}``. Server's comment events carry no ``issue``; its id is read from the
comment's ``self`` URL (``…/rest/api/2/issue/10013/comment/10082``).

Tandem subscribes to the ``jira:issue_*`` events only. Jira (Cloud and Server) announces every
comment change twice: as ``comment_created``/``_updated``/``_deleted`` and as ``jira:issue_updated``
with ``issue_event_type_name`` ``issue_commented``/``issue_comment_edited``/``issue_comment_deleted``
(carrying the ``comment``, and the actor in ``user``, which Cloud's comment events lack). The issue
event is turned into the same comment change the comment event gives, so one subscription is
enough and each change arrives once. Atlassian has announced that Cloud's ``jira:issue_*`` bodies
will drop the ``comment`` object: such a delivery is still the comment change, without a comment
id (intake needs only the issue and the actor). ``comment_*`` deliveries are still parsed
(registrations made by older versions or by hand).

Admin webhooks registered with a secret are signed: ``X-Hub-Signature: sha256=<hex HMAC of the raw
body>``. When the adapter has a secret, unsigned or mis-signed deliveries are rejected.

Anything we cannot accept raises :class:`~node.trackers.base.WebhookError` naming the problem; a
well-formed delivery of an event Tandem does not use (``worklog_updated``, ``project_created``, …)
returns no events. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from node.trackers.base import EventKind, TrackerEvent, WebhookError
from node.trackers.common import signing
from node.trackers.common.signing import sign as sign  # the X-Hub-Signature value (tests, emulator)

from .mapping import change_items, parse_time, user_ref

MAX_BODY_BYTES = 16 * 1024 * 1024
SIGNATURE_HEADER = "x-hub-signature"

#: Events Tandem registers for (see ``JiraAdapter.register_webhook``).
SUBSCRIBED_EVENTS = (
    "jira:issue_created",
    "jira:issue_updated",
    "jira:issue_deleted",
)

_ISSUE_EVENTS: dict[str, EventKind] = {
    "jira:issue_created": "issue_created",
    "jira:issue_updated": "issue_updated",
    "jira:issue_deleted": "issue_deleted",
}
_COMMENT_EVENTS: dict[str, EventKind] = {
    "comment_created": "comment_created",
    "comment_updated": "comment_updated",
    "comment_deleted": "comment_deleted",
}
# ``jira:issue_updated`` deliveries that announce a comment change (``issue_event_type_name``)
_ISSUE_COMMENT_TYPES: dict[str, EventKind] = {
    "issue_commented": "comment_created",
    "issue_comment_edited": "comment_updated",
    "issue_comment_deleted": "comment_deleted",
}
_ATTACHMENT_EVENTS: dict[str, EventKind] = {
    "attachment_created": "attachment_created",
    "attachment_deleted": "attachment_deleted",
}
_COMMENT_SELF = re.compile(r"/issue/([^/]+)/comment/([^/?#]+)")


def verify_signature(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    # aiohttp's headers are case-insensitive already; a plain mapping is searched by hand
    given = headers.get("X-Hub-Signature") or next(
        (v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None
    )
    signing.verify(given, body, secret, tracker="Jira", header="X-Hub-Signature")


def parse_webhook(
    headers: Mapping[str, str], body: bytes, *, secret: str | None = None
) -> list[TrackerEvent]:
    if len(body) > MAX_BODY_BYTES:
        raise WebhookError(f"Jira webhook: body larger than {MAX_BODY_BYTES} bytes")
    if secret:
        verify_signature(headers, body, secret)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookError("Jira webhook: body is not UTF-8") from exc
        raise WebhookError("Jira webhook: body is not JSON (JSONDecodeError)") from exc
    if not isinstance(payload, dict):
        raise WebhookError("Jira webhook: body is not a JSON object")
    event = payload.get("webhookEvent")
    if not isinstance(event, str) or not event:
        raise WebhookError("Jira webhook: no 'webhookEvent' field")
    at = parse_time(payload.get("timestamp"))
    actor = user_ref(payload.get("user"))

    if event in _ISSUE_EVENTS:
        kind = _ISSUE_EVENTS[event]
        type_name = payload.get("issue_event_type_name")
        if kind == "issue_updated" and isinstance(type_name, str):
            kind = _ISSUE_COMMENT_TYPES.get(type_name, kind)
        return [_issue_event(payload, kind, actor, at)]
    if event in _COMMENT_EVENTS:
        return [_comment_event(payload, _COMMENT_EVENTS[event], actor, at)]
    if event in _ATTACHMENT_EVENTS:
        issue = payload.get("issue")
        if not isinstance(issue, dict) or not issue.get("id"):
            return []  # Cloud's attachment events do not say which issue; the issue_updated does
        return [_issue_event(payload, _ATTACHMENT_EVENTS[event], actor, at)]
    return []


def _object(payload: Mapping[str, Any], key: str, event: str) -> Mapping[str, Any]:
    value = payload.get(key)
    if not isinstance(value, dict):
        raise WebhookError(f"Jira webhook {event}: '{key}' missing or not an object")
    return value


def _issue_event(payload: Mapping[str, Any], kind: EventKind, actor: Any, at: Any) -> TrackerEvent:
    event = str(payload.get("webhookEvent"))
    issue = _object(payload, "issue", event)
    issue_id = issue.get("id")
    if not isinstance(issue_id, str | int) or isinstance(issue_id, bool) or not str(issue_id):
        raise WebhookError(f"Jira webhook {event}: issue has no id")
    fields = issue.get("fields") if isinstance(issue.get("fields"), dict) else {}
    assert isinstance(fields, dict)
    project = fields.get("project") if isinstance(fields.get("project"), dict) else {}
    assert isinstance(project, dict)
    key = issue.get("key")

    changelog = []
    raw_changelog = payload.get("changelog")
    if raw_changelog is not None:
        if not isinstance(raw_changelog, dict) or not isinstance(raw_changelog.get("items", []), list):
            raise WebhookError(f"Jira webhook {event}: 'changelog' is not an object with 'items'")
        history = {"created": payload.get("timestamp"), "items": raw_changelog.get("items") or []}
        changelog = change_items(history, author=actor)
    comment = payload.get("comment")
    comment_id = str(comment["id"]) if isinstance(comment, dict) and comment.get("id") else None
    changed = list(dict.fromkeys(item.field for item in changelog))
    if (comment_id or kind.startswith("comment_")) and "comments" not in changed:
        changed.append("comments")
    return TrackerEvent(
        kind=kind,
        issue_id=str(issue_id),
        issue_key=str(key) if isinstance(key, str) and key else None,
        project=str(project["key"]) if isinstance(project.get("key"), str) else _project_of(key),
        actor=actor,
        at=at,
        comment_id=comment_id,
        changed_fields=changed,
        changelog=changelog,
    )


def _comment_event(payload: Mapping[str, Any], kind: EventKind, actor: Any, at: Any) -> TrackerEvent:
    event = str(payload.get("webhookEvent"))
    comment = _object(payload, "comment", event)
    comment_id = comment.get("id")
    if not isinstance(comment_id, str | int) or isinstance(comment_id, bool) or not str(comment_id):
        raise WebhookError(f"Jira webhook {event}: comment has no id")
    issue = payload.get("issue")
    issue_id: str | None = None
    key: str | None = None
    project: str | None = None
    if isinstance(issue, dict) and issue.get("id"):
        issue_id = str(issue["id"])
        key = issue.get("key") if isinstance(issue.get("key"), str) else None
        fields = issue.get("fields") if isinstance(issue.get("fields"), dict) else {}
        assert isinstance(fields, dict)
        proj = fields.get("project")
        project = proj.get("key") if isinstance(proj, dict) and isinstance(proj.get("key"), str) else None
    else:
        match = _COMMENT_SELF.search(str(comment.get("self") or ""))
        if match:
            issue_id = match.group(1)
    if not issue_id:
        raise WebhookError(f"Jira webhook {event}: cannot tell which issue the comment belongs to")
    if actor is None and kind != "comment_deleted":
        # Cloud's comment events carry no "user": the comment's last editor made this change.
        field = "author" if kind == "comment_created" else "updateAuthor"
        actor = user_ref(comment.get(field)) or user_ref(comment.get("author"))
    return TrackerEvent(
        kind=kind,
        issue_id=issue_id,
        issue_key=key,
        project=project or _project_of(key),
        actor=actor,
        at=at or parse_time(comment.get("updated")),
        comment_id=str(comment_id),
        changed_fields=["comments"],
    )


def _project_of(key: Any) -> str | None:
    if isinstance(key, str) and "-" in key:
        return key.rsplit("-", 1)[0]
    return None
