"""WAS / CHANGED over the changelog, with history predicates."""

from __future__ import annotations

import datetime as dt

import pytest

from node.jql import JqlError, compile_query

from .helpers import ALICE, BOB, NOW, change, ctx, hits, issue

D = dt.timedelta


@pytest.fixture
def story() -> list:
    """ABC-1: Open -(bob, -5d)-> In Progress -(alice, -2d)-> Done. ABC-2: always Open, never changed."""
    created = NOW - D(days=10)
    one = issue(
        n=1,
        status="Done",
        category="done",
        created=created,
        creator=BOB,
        assignee=ALICE,
        changelog=[
            change("status", "Open", "In Progress", NOW - D(days=5), BOB, from_id="1", to_id="3"),
            change("status", "In Progress", "Done", NOW - D(days=2), ALICE, from_id="3", to_id="10001"),
            change("assignee", None, "Alice Able", NOW - D(days=4), BOB, to_id="acc-alice"),
            change("labels", None, "x", NOW - D(days=1), BOB),
            change("priority", "High", "High", NOW - D(days=1), BOB),  # not a real change
        ],
    )
    two = issue(n=2, status="Open", created=created, creator=ALICE)
    return [one, two]


def test_was_includes_the_current_value_and_every_past_value(story: list) -> None:
    assert hits("status was Open", story) == ["ABC-1", "ABC-2"]
    assert hits("status was 'In Progress'", story) == ["ABC-1"]
    assert hits("status was Done", story) == ["ABC-1"]
    assert hits("status was 3", story) == ["ABC-1"]  # by the id the changelog recorded
    assert hits("status was in (Closed, 'In Progress')", story) == ["ABC-1"]
    assert hits("status was Closed", story) == []


def test_was_not(story: list) -> None:
    assert hits("status was not 'In Progress'", story) == ["ABC-2"]
    assert hits("status was not in (Done, 'In Progress')", story) == ["ABC-2"]
    assert hits("status was not Open", story) == []


def test_was_with_time_predicates(story: list) -> None:
    assert hits("status was 'In Progress' before -4d", story) == ["ABC-1"]
    assert hits("status was 'In Progress' before -6d", story) == []
    assert hits("status was 'In Progress' after -3d", story) == ["ABC-1"]
    assert hits("status was 'In Progress' after -1d", story) == []
    assert hits("status was Done after -1d", story) == ["ABC-1"]  # still Done now
    day = (NOW - D(days=3)).strftime("%Y-%m-%d")
    assert hits(f"status was 'In Progress' on {day}", story) == ["ABC-1"]
    assert hits(f"status was Open on {day}", story) == ["ABC-2"]
    assert hits("status was Open during (-9d, -6d)", story) == ["ABC-1", "ABC-2"]
    assert hits("status was Open during (-4d, -1d)", story) == ["ABC-2"]


def test_was_by_means_the_value_was_set_by(story: list) -> None:
    assert hits("status was 'In Progress' by bob", story) == ["ABC-1"]
    assert hits("status was 'In Progress' by alice", story) == []
    assert hits("status was Done by currentUser()", story) == ["ABC-1"]
    assert hits("status was Open by (alice, bob)", story) == ["ABC-1", "ABC-2"]  # set at creation


def test_was_empty_and_user_fields(story: list) -> None:
    assert hits("assignee was empty", story) == ["ABC-1", "ABC-2"]
    assert hits("assignee was alice", story) == ["ABC-1"]
    assert hits("assignee was currentUser() after -3d", story) == ["ABC-1"]


def test_changed_only_counts_real_changes(story: list) -> None:
    assert hits("status changed", story) == ["ABC-1"]
    assert hits("priority changed", story) == []
    assert hits("status changed from Open to 'In Progress'", story) == ["ABC-1"]
    assert hits("status changed from Open to Done", story) == []
    assert hits("status changed to Done by alice", story) == ["ABC-1"]
    assert hits("status changed by currentUser() after -3d", story) == ["ABC-1"]
    assert hits("status changed after -1d", story) == []
    assert hits("status changed before -4d", story) == ["ABC-1"]
    assert hits("status changed during (-6d, -4d)", story) == ["ABC-1"]
    day = (NOW - D(days=2)).strftime("%Y/%m/%d")
    assert hits(f"status changed on '{day}'", story) == ["ABC-1"]
    # the changelog records display name and account id only
    assert hits("assignee changed from empty to acc-alice", story) == ["ABC-1"]
    assert hits("assignee changed to 'Alice Able'", story) == ["ABC-1"]


def test_fix_version_history_is_multi_valued() -> None:
    i = issue(
        n=1,
        fix_versions=["2.0"],
        changelog=[
            change("Fix Version", None, "1.0", NOW - D(days=6)),
            change("Fix Version", None, "2.0", NOW - D(days=5)),
            change("Fix Version", "1.0", None, NOW - D(days=4)),
        ],
    )
    assert hits("fixVersion was 1.0", [i]) == ["ABC-1"]
    assert hits("fixVersion was 1.0 after -3d", [i]) == []
    assert hits("fixVersion was 2.0 before -4d", [i]) == ["ABC-1"]
    assert hits("fixVersion changed to 2.0", [i]) == ["ABC-1"]


HISTORY_ERRORS = [
    ("status was Open from x", 'The WAS operator does not support the use of the from "x" predicate.'),
    ("status changed during 11", "The DURING predicate must be supplied with exactly 2 date values."),
    ("status changed before (11, 12)", "The BEFORE predicate must be supplied with only 1 date value."),
    (
        "status changed after currentUser()",
        "A date for the predicate 'after' provided by the function 'currentUser' is not valid.",
    ),
    (
        'status changed after "20/12/10"',
        "Date value '20/12/10' for predicate 'after' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
        "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.",
    ),
    (
        'status was Reopened by currentUser() AFTER now("invalid")',
        "Function 'now' expected '0' arguments but received '1'.",
    ),
    ("summary changed", "The operator 'changed' is not supported by the 'summary' field."),
    ("created was -1d", "The operator 'was' is not supported by the 'created' field."),
]


@pytest.mark.parametrize(("query", "message"), HISTORY_ERRORS, ids=[h[0] for h in HISTORY_ERRORS])
def test_history_validation(query: str, message: str) -> None:
    with pytest.raises(JqlError) as info:
        compile_query(query)
    assert str(info.value) == message


def test_naive_changelog_times_are_taken_as_utc() -> None:
    i = issue(n=1, status="B", changelog=[change("status", "A", "B", (NOW - D(days=1)).replace(tzinfo=None))])
    assert compile_query("status changed after -2d").matches(i, ctx())
    assert compile_query("status was A before -1d").matches(i, ctx())
