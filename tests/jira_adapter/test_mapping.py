"""Jira issue JSON (v3 Cloud and v2 Server shapes) → IssueSnapshot."""

from __future__ import annotations

import datetime as dt
from typing import Any

from node.trackers.jira.mapping import (
    MARKER_PROPERTY,
    change_items,
    comment_of,
    custom_value,
    issue_snapshot,
    neutral_field,
    parse_time,
    user_ref,
)
from protocol.richtext import plain_text

ALICE_CLOUD = {"accountId": "5b10aaa", "displayName": "Alice A", "emailAddress": "alice@example.com"}
BOB_CLOUD = {"accountId": "5b10bbb", "displayName": "Bob B"}
ALICE_SERVER = {
    "name": "alice",
    "key": "alice",
    "displayName": "Alice A",
    "emailAddress": "alice@example.com",
}


def _adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def cloud_issue() -> dict[str, Any]:
    return {
        "id": "10001",
        "key": "ABC-7",
        "names": {"summary": "Summary", "customfield_10051": "Severity"},
        "properties": {MARKER_PROPERTY: {"marker": "m-1"}, "other": [1]},
        "fields": {
            "project": {"id": "10000", "key": "ABC"},
            "summary": "Printer on fire",
            "description": _adf("It burns"),
            "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
            "resolution": None,
            "priority": {"name": "High", "id": "2"},
            "issuetype": {"name": "Bug"},
            "labels": ["fire", "printer"],
            "components": [{"name": "Hardware"}],
            "fixVersions": [{"name": "2.0"}],
            "versions": [{"name": "1.0"}, {"name": "1.1"}],
            "duedate": "2024-06-30",
            "assignee": ALICE_CLOUD,
            "reporter": BOB_CLOUD,
            "creator": BOB_CLOUD,
            "created": "2024-05-01T10:00:00.000+0000",
            "updated": "2024-05-02T11:30:00.000+0200",
            "resolutiondate": None,
            "customfield_10051": {"self": "x", "value": "S2", "id": "10101"},
            "customfield_10052": [{"value": "Linux", "id": "1"}, {"value": "macOS", "id": "2"}],
            "customfield_10053": ALICE_CLOUD,
            "customfield_10054": _adf("root cause"),
            "customfield_10056": {"value": "EU", "child": {"value": "Paris"}},
            "customfield_10016": 5.0,
            "customfield_10099": None,
            "votes": {"votes": 3},
            "parent": {"id": "10000", "key": "ABC-1"},
            "issuelinks": [
                {
                    "type": {"name": "Blocks", "inward": "is blocked by", "outward": "blocks"},
                    "outwardIssue": {"key": "ABC-9"},
                },
                {
                    "type": {"name": "Blocks", "inward": "is blocked by", "outward": "blocks"},
                    "inwardIssue": {"key": "XYZ-2"},
                },
            ],
            "attachment": [
                {
                    "id": "300",
                    "filename": "a.txt",
                    "size": 3,
                    "mimeType": "text/plain",
                    "created": "2024-05-01T10:00:00.000+0000",
                },
                {"id": "301", "filename": "b.bin", "size": 9},
            ],
            "worklog": {
                "worklogs": [
                    {
                        "id": "9",
                        "author": ALICE_CLOUD,
                        "timeSpentSeconds": 3600,
                        "started": "2024-05-01T09:00:00.000+0000",
                    }
                ]
            },
            "comment": {"total": 2, "comments": []},
        },
        "changelog": {
            "total": 2,
            "histories": [
                {
                    "id": "2",
                    "author": ALICE_CLOUD,
                    "created": "2024-05-02T09:00:00.000+0000",
                    "items": [
                        {
                            "field": "status",
                            "fieldId": "status",
                            "from": "1",
                            "fromString": "To Do",
                            "to": "3",
                            "toString": "In Progress",
                        }
                    ],
                },
                {
                    "id": "1",
                    "author": BOB_CLOUD,
                    "created": "2024-05-01T12:00:00.000+0000",
                    "items": [
                        {
                            "field": "assignee",
                            "fieldId": "assignee",
                            "from": None,
                            "to": "5b10aaa",
                            "toString": "Alice A",
                        },
                        {
                            "field": "Severity",
                            "fieldtype": "custom",
                            "fieldId": "customfield_10051",
                            "toString": "S2",
                        },
                    ],
                },
            ],
        },
    }


COMMENTS = [
    {
        "id": "500",
        "author": BOB_CLOUD,
        "updateAuthor": BOB_CLOUD,
        "body": _adf("first"),
        "created": "2024-05-01T13:00:00.000+0000",
        "updated": "2024-05-01T13:00:00.000+0000",
        "properties": [{"key": MARKER_PROPERTY, "value": {"marker": "c-1"}}],
    },
    {
        "id": "501",
        "author": ALICE_CLOUD,
        "updateAuthor": BOB_CLOUD,
        "body": _adf("secret"),
        "created": "2024-05-02T08:00:00.000+0000",
        "updated": "2024-05-02T10:00:00.000+0000",
        "properties": [{"key": "sd.public.comment", "value": {"internal": True}}],
    },
]


def test_cloud_issue_maps_every_field() -> None:
    snap = issue_snapshot(
        cloud_issue(),
        base_url="https://x.atlassian.net",
        comments=COMMENTS,
        attachment_hashes={"300": "a" * 64},
    )
    assert (snap.tracker, snap.id, snap.key, snap.project) == ("jira", "10001", "ABC-7", "ABC")
    assert snap.url == "https://x.atlassian.net/browse/ABC-7"
    assert snap.summary == "Printer on fire"
    assert snap.description is not None and plain_text(snap.description) == "It burns"
    assert snap.status is not None and (snap.status.name, snap.status.category) == (
        "In Progress",
        "indeterminate",
    )
    assert (snap.priority, snap.issue_type, snap.resolution) == ("High", "Bug", None)
    assert snap.labels == ["fire", "printer"]
    assert snap.components == ["Hardware"]
    assert snap.fix_versions == ["2.0"]
    assert snap.affects_versions == ["1.0", "1.1"]
    assert snap.due_date == dt.date(2024, 6, 30)
    assert snap.assignee is not None and snap.assignee.account_id == "5b10aaa"
    assert snap.assignee.email == "alice@example.com"
    assert snap.reporter is not None and snap.reporter.display_name == "Bob B"
    assert snap.custom_fields["customfield_10051"] == "S2"
    assert snap.custom_fields["customfield_10052"] == ["Linux", "macOS"]
    assert snap.custom_fields["customfield_10053"]["account_id"] == "5b10aaa"
    assert plain_text(snap.custom_fields["customfield_10054"]) == "root cause"
    assert snap.custom_fields["customfield_10056"] == "EU - Paris"
    assert snap.custom_fields["customfield_10016"] == 5.0
    assert "customfield_10099" not in snap.custom_fields
    assert snap.field_names["customfield_10051"] == "Severity"
    assert snap.properties[MARKER_PROPERTY] == {"marker": "m-1"}
    assert snap.votes == 3
    assert snap.parent is not None and snap.parent.key == "ABC-1"
    assert [(lk.direction, lk.target_key, lk.title) for lk in snap.links] == [
        ("outward", "ABC-9", "blocks"),
        ("inward", "XYZ-2", "is blocked by"),
    ]
    # only attachments whose hash is known are listed (the adapter hashes the others first)
    assert [(a.id, a.sha256, a.mime_type) for a in snap.attachments] == [("300", "a" * 64, "text/plain")]
    assert snap.worklogs[0].time_spent_seconds == 3600
    assert snap.created == dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    assert snap.updated == dt.datetime(2024, 5, 2, 9, 30, tzinfo=dt.UTC)


def test_changelog_sorted_oldest_first_with_neutral_names() -> None:
    snap = issue_snapshot(cloud_issue(), base_url="https://x", comments=[])
    assert [c.field for c in snap.changelog] == ["assignee", "customfield_10051", "status"]
    status = snap.changelog[-1]
    assert (status.from_value, status.to_value, status.from_id, status.to_id) == (
        "To Do",
        "In Progress",
        "1",
        "3",
    )
    assert status.author is not None and status.author.account_id == "5b10aaa"


def test_updated_by_is_latest_of_changelog_and_comment_edits() -> None:
    # latest: comment 501 edited at 10:00 by Bob (after Alice's 09:00 transition)
    snap = issue_snapshot(cloud_issue(), base_url="https://x", comments=COMMENTS)
    assert snap.updated_by is not None and snap.updated_by.account_id == "5b10bbb"
    # without comments the transition by Alice is the latest change
    snap = issue_snapshot(cloud_issue(), base_url="https://x", comments=[])
    assert snap.updated_by is not None and snap.updated_by.account_id == "5b10aaa"
    # a new issue without history: its creator
    raw = cloud_issue()
    raw["changelog"] = {"total": 0, "histories": []}
    snap = issue_snapshot(raw, base_url="https://x", comments=[])
    assert snap.updated_by is not None and snap.updated_by.account_id == "5b10bbb"


def test_updated_by_skips_entries_without_a_user() -> None:
    # the newest comment edit names nobody (a deleted user's empty object): its author counts instead;
    # a newer history entry with no author at all does not compete
    edited = dict(COMMENTS[1], updateAuthor={"displayName": "", "emailAddress": "?"}, author=ALICE_CLOUD)
    raw = cloud_issue()
    raw["changelog"]["histories"].append(
        {"id": "9", "author": {}, "created": "2024-05-03T00:00:00.000+0000", "items": []}
    )
    snap = issue_snapshot(raw, base_url="https://x", comments=[COMMENTS[0], edited])
    assert snap.updated_by is not None and snap.updated_by.account_id == "5b10aaa"
    assert snap.updated_by == snap.assignee  # Alice, whichever of her JSON objects mapped her


def test_comments_markers_and_internal_flag() -> None:
    snap = issue_snapshot(cloud_issue(), base_url="https://x", comments=COMMENTS)
    assert [c.id for c in snap.comments] == ["500", "501"]
    assert [c.internal for c in snap.comments] == [False, True]
    assert snap.comment_markers == {"500": "c-1"}
    assert plain_text(snap.comments[0].body) == "first"


def test_comment_internal_sources() -> None:
    base = {"id": "1", "body": "hi"}
    assert comment_of(base)[0].internal is False
    assert comment_of({**base, "visibility": {"type": "role", "value": "Developers"}})[0].internal is True
    assert comment_of({**base, "jsdPublic": False})[0].internal is True
    assert comment_of({**base, "jsdPublic": True})[0].internal is False
    internal_prop = {**base, "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]}
    assert comment_of(internal_prop)[0].internal is True
    public_prop = {**base, "properties": [{"key": "sd.public.comment", "value": {"internal": False}}]}
    assert comment_of(public_prop)[0].internal is False


def test_server_issue_with_wiki_text_and_usernames() -> None:
    raw = {
        "id": "20",
        "key": "SRV-1",
        "fields": {
            "project": {"key": "SRV"},
            "summary": "s",
            "description": "Line one\n\nLine two",
            "status": {"name": "Closed", "statusCategory": {"key": "done"}},
            "resolution": {"name": "Fixed"},
            "resolutiondate": "2024-01-02T03:04:05.000+0000",
            "assignee": ALICE_SERVER,
            "comment": {
                "comments": [
                    {
                        "id": "1",
                        "author": ALICE_SERVER,
                        "body": "wiki *text*",
                        "created": "2024-01-01T00:00:00.000+0000",
                    }
                ]
            },
        },
        "changelog": {
            "histories": [
                {
                    "author": ALICE_SERVER,
                    "created": "2024-01-02T03:04:05.000+0000",
                    "items": [{"field": "Fix Version", "from": None, "to": "10000", "toString": "1.0"}],
                }
            ]
        },
    }
    snap = issue_snapshot(raw, base_url="http://jira.local:8080")
    assert (
        snap.assignee is not None and snap.assignee.username == "alice" and snap.assignee.account_id is None
    )
    assert snap.status is not None and snap.status.category == "done"
    assert snap.resolution == "Fixed"
    assert snap.resolved == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert snap.description is not None and "Line two" in plain_text(snap.description)
    assert [c.id for c in snap.comments] == ["1"]
    assert snap.changelog[0].field == "fix_versions"  # old changelogs have no fieldId


def test_odd_status_category_and_missing_values() -> None:
    raw = {
        "id": "1",
        "key": "A-1",
        "fields": {"status": {"name": "Limbo", "statusCategory": {"key": "undefined"}}},
    }
    snap = issue_snapshot(raw, base_url="http://j")
    assert snap.status is not None and snap.status.category == "new"
    assert snap.project == "A"
    assert snap.description is None
    assert snap.comments == [] and snap.attachments == []


def test_small_helpers() -> None:
    assert user_ref({"emailAddress": '"?"', "displayName": "X"}) == user_ref({"displayName": "X"})
    assert user_ref({}) is None
    assert user_ref(None) is None
    assert parse_time(1550286678321) == dt.datetime(2019, 2, 16, 3, 11, 18, 321000, tzinfo=dt.UTC)
    assert parse_time("garbage") is None
    assert parse_time("2019-02-15T19:11:18.321-0800") == dt.datetime(
        2019, 2, 16, 3, 11, 18, 321000, tzinfo=dt.UTC
    )
    assert neutral_field("fixVersions", "Fix Version") == "fix_versions"
    assert neutral_field(None, "Component") == "components"
    assert neutral_field("customfield_1", "Whatever") == "customfield_1"
    assert neutral_field(None, "Sprint") == "Sprint"
    assert custom_value({"name": "jira-users", "groupId": "x"}) == "jira-users"
    assert custom_value([{"value": "a"}, "b", 3]) == ["a", "b", 3]
    assert change_items({"items": [{"field": "x"}]}) == []  # no timestamp: cannot place it in time
