"""Webhook parsing against the real Jira Cloud and Server payloads in vendor-data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from node.trackers.base import WebhookError
from node.trackers.jira.webhooks import SUBSCRIBED_EVENTS, parse_webhook, sign

RECORDED = [
    "webhook-cloud-comment-created-mention-user.json",
    "webhook-cloud-comment-created.json",
    "webhook-cloud-comment-deleted.json",
    "webhook-cloud-comment-updated.json",
    "webhook-cloud-issue-created-many-fields.json",
    "webhook-cloud-issue-updated-custom-field.json",
    "webhook-server-comment-created.json",
    "webhook-server-comment-deleted.json",
    "webhook-server-comment-updated.json",
]


def _body(vendor_data: Path, name: str) -> bytes:
    return (vendor_data / "dev" / "jira-webhooks" / name).read_bytes()


def test_every_recording_is_listed(vendor_data: Path) -> None:
    on_disk = sorted(p.name for p in (vendor_data / "dev" / "jira-webhooks").glob("*.json"))
    assert on_disk == sorted(RECORDED)


@pytest.mark.parametrize("name", RECORDED)
def test_every_recorded_payload_parses(vendor_data: Path, name: str) -> None:
    body = _body(vendor_data, name)
    events = parse_webhook({}, body)
    assert len(events) == 1
    event = events[0]
    raw = json.loads(body)
    assert event.kind == raw["webhookEvent"].removeprefix("jira:")
    assert event.issue_id.isdigit()
    assert event.at == dt.datetime.fromtimestamp(raw["timestamp"] / 1000, tz=dt.UTC)
    if "comment" in raw:
        assert event.comment_id == raw["comment"]["id"]
        assert event.changed_fields == ["comments"]


def test_cloud_issue_created_with_changelog(vendor_data: Path) -> None:
    (event,) = parse_webhook({}, _body(vendor_data, "webhook-cloud-issue-created-many-fields.json"))
    assert event.kind == "issue_created"
    assert (event.issue_id, event.issue_key, event.project) == ("10509", "KT-22", "KT")
    assert event.actor is not None
    assert event.actor.account_id == "5cedcb4355a88a0fc86388ba"
    assert event.actor.username == "sample.user"
    assert event.actor.email == "user@example.com"
    by_field = {c.field: c for c in event.changelog}
    assert set(by_field) >= {"assignee", "priority", "status", "summary", "fix_versions", "customfield_10073"}
    assert by_field["assignee"].to_id == "5cedcb4355a88a0fc86388ba"  # accountId preferred to username
    assert by_field["assignee"].to_value == "Sample User"
    assert by_field["status"].to_value == "To Do"
    assert by_field["status"].to_id == "10004"
    assert by_field["customfield_10073"].to_value == "1"
    assert all(c.author == event.actor and c.at == event.at for c in event.changelog)
    assert "summary" in event.changed_fields


def test_cloud_issue_updated_custom_field(vendor_data: Path) -> None:
    (event,) = parse_webhook({}, _body(vendor_data, "webhook-cloud-issue-updated-custom-field.json"))
    assert event.kind == "issue_updated"
    assert event.issue_key == "TES-14"
    assert event.changed_fields == ["customfield_10072"]
    (change,) = event.changelog
    assert (change.from_value, change.to_value) == ("1", "12")


def test_cloud_comment_actor_is_comment_author(vendor_data: Path) -> None:
    (created,) = parse_webhook({}, _body(vendor_data, "webhook-cloud-comment-created.json"))
    assert created.kind == "comment_created"
    assert (created.issue_id, created.issue_key, created.project) == ("10040", "TES-41", "TES")
    assert created.actor is not None and created.actor.account_id == "5c5f880629be9642ba529340"
    (deleted,) = parse_webhook({}, _body(vendor_data, "webhook-cloud-comment-deleted.json"))
    assert deleted.kind == "comment_deleted"
    assert deleted.actor is None  # Cloud does not say who deleted it; the author is not the deleter
    assert deleted.actor is None or deleted.actor.email != '"?"'


def test_server_comment_issue_id_from_self_url(vendor_data: Path) -> None:
    (created,) = parse_webhook({}, _body(vendor_data, "webhook-server-comment-created.json"))
    assert (created.kind, created.issue_id, created.comment_id) == ("comment_created", "10013", "10082")
    assert created.issue_key is None
    assert created.actor is not None
    assert created.actor.username == "levbrouk"
    assert created.actor.account_id is None
    (deleted,) = parse_webhook({}, _body(vendor_data, "webhook-server-comment-deleted.json"))
    assert deleted.actor is not None and deleted.actor.username == "levbrouk"  # Server sends "user"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (b"{}", "no 'webhookEvent'"),
        (b'{"webhookEvent": 5}', "no 'webhookEvent'"),
        (b'{"webhookEvent": "jira:issue_updated"}', "'issue' missing"),
        (b'{"webhookEvent": "jira:issue_updated", "issue": {"key": "A-1"}}', "issue has no id"),
        (b'{"webhookEvent": "jira:issue_updated", "issue": {"id": true}}', "issue has no id"),
        (b'{"webhookEvent": "comment_created"}', "'comment' missing"),
        (b'{"webhookEvent": "comment_created", "comment": {"id": "1"}}', "which issue"),
        (b'{"webhookEvent": "comment_created", "comment": {"self": "/issue/1/comment/2"}}', "no id"),
        (
            b'{"webhookEvent": "jira:issue_updated", "issue": {"id": "1"}, "changelog": "x"}',
            "'changelog' is not an object",
        ),
    ],
)
def test_garbage_is_rejected_with_a_named_problem(body: bytes, problem: str) -> None:
    with pytest.raises(WebhookError, match=problem):
        parse_webhook({}, body)


def test_unused_events_are_ignored() -> None:
    assert parse_webhook({}, b'{"webhookEvent": "worklog_updated", "worklog": {}}') == []
    assert parse_webhook({}, b'{"webhookEvent": "attachment_created", "attachment": {"id": "1"}}') == []


def test_signature_checked_when_secret_configured(vendor_data: Path) -> None:
    body = _body(vendor_data, "webhook-cloud-comment-created.json")
    good = {"X-Hub-Signature": sign(body, "s3cret")}
    assert parse_webhook(good, body, secret="s3cret")[0].comment_id == "10019"
    assert parse_webhook({"x-hub-signature": good["X-Hub-Signature"]}, body, secret="s3cret")
    with pytest.raises(WebhookError, match="header missing"):
        parse_webhook({}, body, secret="s3cret")
    with pytest.raises(WebhookError, match="does not match"):
        parse_webhook(good, body + b" ", secret="s3cret")
    with pytest.raises(WebhookError, match="does not match"):
        parse_webhook(good, body, secret="other")
    with pytest.raises(WebhookError, match="sha256="):
        parse_webhook({"X-Hub-Signature": "md5"}, body, secret="s3cret")


def _issue_commented(
    vendor_data: Path, recording: str, type_name: str, *, with_comment: bool = True
) -> bytes:
    """The ``jira:issue_updated`` Jira sends beside a ``comment_*`` event, around the same comment."""
    raw = json.loads(_body(vendor_data, recording))
    body: dict[str, object] = {
        "timestamp": raw["timestamp"],
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": type_name,
        "user": raw.get("user") or raw["comment"]["updateAuthor"],
        "issue": {"id": "10013", "key": "PROJ-7", "fields": {"project": {"key": "PROJ"}}},
    }
    if with_comment:
        body["comment"] = raw["comment"]
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("recording", "type_name"),
    [
        ("webhook-server-comment-created.json", "issue_commented"),
        ("webhook-server-comment-updated.json", "issue_comment_edited"),
        ("webhook-server-comment-deleted.json", "issue_comment_deleted"),
    ],
)
def test_issue_updated_about_a_comment_is_the_same_change_as_the_comment_event(
    vendor_data: Path, recording: str, type_name: str
) -> None:
    (from_comment_event,) = parse_webhook({}, _body(vendor_data, recording))
    (from_issue_event,) = parse_webhook({}, _issue_commented(vendor_data, recording, type_name))
    assert from_issue_event.kind == from_comment_event.kind
    assert from_issue_event.issue_id == from_comment_event.issue_id == "10013"
    assert from_issue_event.comment_id == from_comment_event.comment_id
    assert from_issue_event.actor is not None and from_comment_event.actor is not None
    assert from_issue_event.actor.username == from_comment_event.actor.username
    assert from_issue_event.changed_fields == from_comment_event.changed_fields == ["comments"]
    assert (from_issue_event.issue_key, from_issue_event.project) == ("PROJ-7", "PROJ")


def test_issue_updated_about_a_comment_without_the_comment_object(vendor_data: Path) -> None:
    """Atlassian announced that Cloud's jira:issue_* bodies drop ``comment``: still a comment change."""
    body = _issue_commented(
        vendor_data, "webhook-server-comment-created.json", "issue_commented", with_comment=False
    )
    (event,) = parse_webhook({}, body)
    assert (event.kind, event.issue_id, event.comment_id) == ("comment_created", "10013", None)
    assert event.changed_fields == ["comments"]
    assert event.actor is not None and event.actor.username == "levbrouk"


def test_other_issue_updates_stay_issue_updates() -> None:
    body = (
        b'{"webhookEvent": "jira:issue_updated", "issue_event_type_name": "issue_generic",'
        b' "issue": {"id": "1"}}'
    )
    assert parse_webhook({}, body)[0].kind == "issue_updated"
    odd = b'{"webhookEvent": "jira:issue_updated", "issue_event_type_name": ["x"], "issue": {"id": "1"}}'
    assert parse_webhook({}, odd)[0].kind == "issue_updated"


def test_tandem_subscribes_to_issue_events_only() -> None:
    """Comment changes arrive as jira:issue_updated too; subscribing to both would deliver each twice."""
    assert SUBSCRIBED_EVENTS == ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted")
