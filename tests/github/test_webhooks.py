"""GitHub webhook parsing: recorded payloads (vendor-data), signatures, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.trackers.base import WebhookError
from node.trackers.github.mapping import changelog_of
from node.trackers.github.webhooks import delivery_id, parse_webhook, sign


def load(vendor_data: Path, name: str) -> bytes:
    return (vendor_data / "dev" / "github-webhooks" / f"{name}.payload.json").read_bytes()


def headers(event: str, body: bytes | None = None, secret: str | None = None) -> dict[str, str]:
    out = {"X-GitHub-Event": event, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    if secret and body is not None:
        out["X-Hub-Signature-256"] = sign(body, secret)
    return out


def test_recorded_issue_opened(vendor_data: Path) -> None:
    body = load(vendor_data, "issues/opened")
    (event,) = parse_webhook(headers("issues"), body)
    assert event.kind == "issue_created"
    assert event.issue_id == event.issue_key == "Codertocat/Hello-World#1"
    assert event.project == "Codertocat/Hello-World"
    assert event.actor is not None and event.actor.username == "Codertocat"
    assert event.at is not None


def test_recorded_issue_edited_and_labeled(vendor_data: Path) -> None:
    (edited,) = parse_webhook(headers("issues"), load(vendor_data, "issues/edited"))
    assert edited.kind == "issue_updated"
    (labeled,) = parse_webhook(headers("issues"), load(vendor_data, "issues/labeled"))
    assert labeled.changed_fields == ["labels"]
    assert [(c.field, c.to_value) for c in labeled.changelog] == [("labels", "bug")]


def test_recorded_comment_created(vendor_data: Path) -> None:
    body = load(vendor_data, "issue_comment/created")
    (event,) = parse_webhook(headers("issue_comment"), body)
    assert event.kind == "comment_created"
    assert event.comment_id == str(json.loads(body)["comment"]["id"])
    assert event.issue_key == "Codertocat/Hello-World#1"


def test_events_tandem_does_not_sync_give_nothing(vendor_data: Path) -> None:
    assert parse_webhook(headers("label"), load(vendor_data, "label/created")) == []
    assert parse_webhook(headers("ping"), b'{"zen": "Design for failure."}') == []


def test_edit_changes_name_the_fields() -> None:
    payload = {
        "action": "edited",
        "changes": {"title": {"from": "old"}, "body": {"from": "old body"}},
        "issue": {"number": 3, "title": "new", "body": "b", "updated_at": "2024-01-01T00:00:00Z"},
        "repository": {"full_name": "o/r"},
        "sender": {"login": "jane", "id": 7},
    }
    (event,) = parse_webhook(headers("issues"), json.dumps(payload).encode())
    assert event.changed_fields == ["summary", "description"]
    summary = next(c for c in event.changelog if c.field == "summary")
    assert (summary.from_value, summary.to_value) == ("old", "new")


@pytest.mark.parametrize(
    ("action", "obj", "expected"),
    [
        ("assigned", {"assignee": {"login": "jane"}}, ("assignee", None, "jane", None, "jane")),
        ("unassigned", {"assignee": {"login": "jane"}}, ("assignee", "jane", None, "jane", None)),
        ("demilestoned", {"milestone": {"title": "1.2"}}, ("fix_versions", "1.2", None, None, None)),
        ("labeled", {"label": {"color": "f00"}}, ("labels", None, None, None, None)),  # no name: no "None"
        ("reopened", {}, ("status", "closed", "open", None, None)),
    ],
)
def test_webhook_changes_match_the_issue_events_api(
    action: str, obj: dict[str, object], expected: tuple[object, ...]
) -> None:
    issue = {
        "number": 3,
        "title": "t",
        "updated_at": "2024-01-01T00:00:00Z",
        "created_at": "2024-01-01T00:00:00Z",
    }
    payload = {
        "action": action,
        "issue": issue,
        "repository": {"full_name": "o/r"},
        "sender": {"login": "jane"},
        **obj,
    }
    (event,) = parse_webhook(headers("issues"), json.dumps(payload).encode())
    (item,) = event.changelog
    assert (item.field, item.from_value, item.to_value, item.from_id, item.to_id) == expected
    # the same change read from /issues/{n}/events gives the same item
    (same,) = changelog_of(
        [{"event": action, "created_at": "2024-01-01T00:00:00Z", "actor": {"login": "jane"}, **obj}]
    )
    assert same.model_dump(exclude={"at", "author"}) == item.model_dump(exclude={"at", "author"})


def test_pull_request_events_are_skipped(vendor_data: Path) -> None:
    payload = json.loads(load(vendor_data, "issue_comment/created"))
    payload["issue"]["pull_request"] = {"url": "https://api.github.com/repos/o/r/pulls/1"}
    assert parse_webhook(headers("issue_comment"), json.dumps(payload).encode()) == []


def test_signature_checked_when_a_secret_is_set(vendor_data: Path) -> None:
    body = load(vendor_data, "issues/opened")
    assert parse_webhook(headers("issues", body, "s3cret"), body, secret="s3cret")
    with pytest.raises(WebhookError, match="header missing"):
        parse_webhook(headers("issues"), body, secret="s3cret")
    with pytest.raises(WebhookError, match="does not match"):
        parse_webhook(headers("issues", body, "other"), body, secret="s3cret")
    with pytest.raises(WebhookError, match="does not match"):
        parse_webhook(headers("issues", body, "s3cret"), body + b" ", secret="s3cret")
    bad = {**headers("issues"), "X-Hub-Signature-256": "md5=abc"}
    with pytest.raises(WebhookError, match="sha256="):
        parse_webhook(bad, body, secret="s3cret")


@pytest.mark.parametrize(
    ("hdrs", "body", "message"),
    [
        ({}, b"{}", "X-GitHub-Event header missing"),
        ({"X-GitHub-Event": "issues"}, b"not json", "not JSON"),
        ({"X-GitHub-Event": "issues"}, b"[1, 2]", "not a JSON object"),
        ({"X-GitHub-Event": "issues"}, b'{"action": "opened"}', "without 'action' and 'issue'"),
        ({"X-GitHub-Event": "issues"}, b'{"action": "opened", "issue": {"title": "x"}}', "no issue number"),
        (
            {"X-GitHub-Event": "issue_comment"},
            b'{"action": "created", "issue": {"number": 1}, "repository": {"full_name": "o/r"}}',
            "comment.id",
        ),
    ],
)
def test_bad_deliveries_are_named(hdrs: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(WebhookError, match=message):
        parse_webhook(hdrs, body)


def test_delivery_id() -> None:
    assert delivery_id({"x-github-delivery": "abc"}) == "abc"
    assert delivery_id({}) is None
