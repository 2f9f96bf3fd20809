"""ORDER BY and the default order."""

from __future__ import annotations

import datetime as dt

from node.jql import compile_query

from .helpers import ALICE, BOB, NOW, ctx, issue


def keys(query: str, issues: list) -> list[str]:
    return [i.key for i in compile_query(query).sort(issues, ctx())]


def test_order_by_reports_canonical_names() -> None:
    q = compile_query("order by type, KEY desc, due ASC, cf[10] desc, 'Story Points', resolutiondate")
    assert q.order_by == [
        ("issuetype", "ASC"),
        ("issuekey", "DESC"),
        ("duedate", "ASC"),
        ("cf[10]", "DESC"),
        ("Story Points", "ASC"),
        ("resolved", "ASC"),
    ]
    assert compile_query("project = A").order_by == []


def test_default_order_is_newest_created_first() -> None:
    a = issue(n=1, created=NOW - dt.timedelta(days=3))
    b = issue(n=2, created=NOW - dt.timedelta(days=1))
    c = issue(n=3, created=NOW - dt.timedelta(days=2))
    assert keys("", [a, b, c]) == ["ABC-2", "ABC-3", "ABC-1"]


def test_keys_sort_by_project_then_number() -> None:
    issues = [issue(n=10), issue(n=9), issue(n=100, project="AB"), issue(n=2)]
    assert keys("order by key", issues) == ["AB-100", "ABC-2", "ABC-9", "ABC-10"]
    assert keys("order by key desc", issues) == ["ABC-10", "ABC-9", "ABC-2", "AB-100"]


def test_priority_sorts_by_rank_and_empty_goes_last_ascending() -> None:
    issues = [
        issue(n=1, priority="Low"),
        issue(n=2),
        issue(n=3, priority="Highest"),
        issue(n=4, priority="Medium"),
    ]
    assert keys("order by priority", issues) == ["ABC-1", "ABC-4", "ABC-3", "ABC-2"]
    assert keys("order by priority desc", issues) == ["ABC-2", "ABC-3", "ABC-4", "ABC-1"]


def test_several_keys_with_mixed_directions() -> None:
    issues = [
        issue(n=1, status="Open", updated=NOW - dt.timedelta(hours=1)),
        issue(n=2, status="Done", category="done", updated=NOW - dt.timedelta(hours=3)),
        issue(n=3, status="Open", updated=NOW - dt.timedelta(hours=2)),
        issue(n=4, status="Doing", category="indeterminate", updated=NOW),
    ]
    # status sorts by category (To Do, In Progress, Done) then name
    assert keys("order by status asc, updated desc", issues) == ["ABC-1", "ABC-3", "ABC-4", "ABC-2"]
    assert keys("order by status desc, updated asc", issues) == ["ABC-2", "ABC-4", "ABC-3", "ABC-1"]


def test_users_dates_custom_fields_and_properties() -> None:
    a = issue(
        n=1,
        assignee=BOB,
        due_date=dt.date(2024, 5, 1),
        custom_fields={"customfield_1": 5},
        properties={"p": {"x": "b"}},
    )
    b = issue(
        n=2,
        assignee=ALICE,
        due_date=dt.date(2024, 4, 1),
        custom_fields={"customfield_1": 50},
        properties={"p": {"x": "a"}},
    )
    c = issue(n=3)
    assert keys("order by assignee", [a, b, c]) == ["ABC-2", "ABC-1", "ABC-3"]
    assert keys("order by due", [a, b, c]) == ["ABC-2", "ABC-1", "ABC-3"]
    assert keys("order by cf[1] desc", [a, b, c]) == ["ABC-3", "ABC-2", "ABC-1"]
    assert keys("order by issue.property[p].x", [a, b, c]) == ["ABC-2", "ABC-1", "ABC-3"]
    assert keys("order by summary", [issue(n=5, summary="b"), issue(n=6, summary="A")]) == ["ABC-6", "ABC-5"]


def test_mixed_value_types_in_one_custom_field_do_not_break_sorting() -> None:
    issues = [
        issue(n=1, custom_fields={"customfield_1": "text"}),
        issue(n=2, custom_fields={"customfield_1": 3}),
        issue(n=3, custom_fields={"customfield_1": {"value": "opt"}}),
        issue(n=4, custom_fields={"customfield_1": "2024-01-01"}),
    ]
    assert sorted(keys("order by cf[1]", issues)) == ["ABC-1", "ABC-2", "ABC-3", "ABC-4"]
    assert keys("order by cf[1]", issues)[0] == "ABC-2"  # numbers first
