"""Evaluator semantics per field kind and operator, as Jira documents them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from node.jql import EvalContext, JqlError, JqlSchema, compile_query
from protocol.replica import Attachment, EntityRef, StatusRef, UserRef

from .helpers import ALICE, BOB, CAROL, NOW, ctx, hits, issue, matches


@pytest.fixture
def team() -> list:
    return [
        issue(n=1, status="Open", priority="High", issue_type="Bug", labels=["ui", "Urgent"], assignee=ALICE),
        issue(
            n=2,
            status="In Progress",
            category="indeterminate",
            priority="Low",
            issue_type="Task",
            assignee=BOB,
        ),
        issue(n=3, status="Done", category="done", priority="Medium", issue_type="Bug", resolution="Fixed"),
        issue(n=4, project="XYZ", status="Open", labels=["backend"], assignee=CAROL),
    ]


def test_equality_is_case_insensitive_and_aliases_resolve(team: list) -> None:
    assert hits("project = abc", team) == ["ABC-1", "ABC-2", "ABC-3"]
    assert hits("type = bug", team) == ["ABC-1", "ABC-3"]
    assert hits("issuetype = BUG", team) == ["ABC-1", "ABC-3"]
    assert hits("STATUS = 'in progress'", team) == ["ABC-2"]
    assert hits("key = abc-2", team) == ["ABC-2"]
    assert hits("issuekey in (ABC-1, XYZ-4)", team) == ["ABC-1", "XYZ-4"]
    assert hits("id = 10003", team) == ["ABC-3"]


def test_users_match_any_identifier_and_current_user(team: list) -> None:
    for who in ("acc-alice", "alice", "'ALICE@example.com'", "'Alice Able'"):
        assert hits(f"assignee = {who}", team) == ["ABC-1"], who
    assert hits("assignee = currentUser()", team) == ["ABC-1"]
    assert hits("assignee = currentUser()", team, ctx(current_user=BOB)) == ["ABC-2"]
    assert hits("assignee = currentUser()", team, ctx(current_user=None)) == []
    groups = {"Developers": {"bob", "acc-carol"}}
    assert hits("assignee in membersOf(developers)", team, ctx(groups=groups)) == ["ABC-2", "XYZ-4"]
    assert hits("assignee not in membersOf(nobody)", team, ctx(groups=groups)) == ["ABC-1", "ABC-2", "XYZ-4"]


def test_not_equals_and_not_in_never_match_empty_fields(team: list) -> None:
    # ABC-3 has no assignee: Jira's != leaves it out; NOT (...) is plain negation and keeps it
    assert hits("assignee != alice", team) == ["ABC-2", "XYZ-4"]
    assert hits("assignee not in (alice, bob)", team) == ["XYZ-4"]
    assert hits("not assignee = alice", team) == ["ABC-2", "ABC-3", "XYZ-4"]
    assert hits("assignee != alice or assignee is empty", team) == ["ABC-2", "ABC-3", "XYZ-4"]
    assert hits("labels != ui", team) == ["XYZ-4"]


def test_empty_forms(team: list) -> None:
    assert hits("assignee is EMPTY", team) == ["ABC-3"]
    assert hits("assignee = null", team) == ["ABC-3"]
    assert hits("assignee is not empty", team) == ["ABC-1", "ABC-2", "XYZ-4"]
    assert hits("assignee != EMPTY", team) == ["ABC-1", "ABC-2", "XYZ-4"]
    assert hits("assignee in (bob, EMPTY)", team) == ["ABC-2", "ABC-3"]
    assert hits("labels is EMPTY", team) == ["ABC-2", "ABC-3"]
    assert hits("labels is not EMPTY", team) == ["ABC-1", "XYZ-4"]
    assert hits("resolution = Unresolved", team) == ["ABC-1", "ABC-2", "XYZ-4"]
    assert hits("resolution is empty", team) == ["ABC-1", "ABC-2", "XYZ-4"]
    assert hits("resolution = fixed", team) == ["ABC-3"]


def test_multi_valued_fields_match_if_any_value_matches(team: list) -> None:
    assert hits("labels = urgent", team) == ["ABC-1"]
    assert hits("labels in (backend, nothing)", team) == ["XYZ-4"]
    i = issue(components=["API", "Web"], fix_versions=["1.2", "2.0"], affects_versions=["1.0"])
    assert matches("component = web", i)
    assert matches("fixVersion = 2.0", i)
    assert matches("affectedVersion = '1.0'", i)
    assert not matches("component = db", i)


def test_status_category_by_name_and_key(team: list) -> None:
    assert hits('statusCategory = "To Do"', team) == ["ABC-1", "XYZ-4"]
    assert hits("statusCategory = indeterminate", team) == ["ABC-2"]
    assert hits("statusCategory in (Done, 'In Progress')", team) == ["ABC-2", "ABC-3"]
    assert hits("statusCategory != done", team) == ["ABC-1", "ABC-2", "XYZ-4"]


def test_priority_comparisons_follow_the_priority_order(team: list) -> None:
    assert hits("priority > Medium", team) == ["ABC-1"]
    assert hits("priority >= Medium", team) == ["ABC-1", "ABC-3"]
    assert hits("priority < medium", team) == ["ABC-2"]
    custom = ctx(priority_order=["High", "Medium", "Low"])  # an odd scheme where High is lowest
    assert hits("priority > Medium", team, custom) == ["ABC-2"]


def test_key_and_version_comparisons() -> None:
    issues = [issue(n=n) for n in (2, 9, 10, 11)] + [issue(n=50, project="XYZ")]
    assert hits("key > ABC-9", issues) == ["ABC-10", "ABC-11"]
    assert hits("issuekey <= ABC-9", issues) == ["ABC-2", "ABC-9"]
    v = [
        issue(n=60, fix_versions=["1.9"]),
        issue(n=61, fix_versions=["1.10"]),
        issue(n=62, fix_versions=["2.0"]),
    ]
    assert hits("fixVersion > 1.9", v) == ["ABC-61", "ABC-62"]


def test_text_search_words_prefix_phrase_and_stemming() -> None:
    a = issue(n=1, summary="Windows installer crashes on startup", description="Full screen mode is broken")
    b = issue(n=2, summary="Linux window manager", description="screen is full of errors")
    c = issue(n=3, summary="Docs", comments=["Customized the Windows build", "second comment"])
    issues = [a, b, c]
    assert hits("summary ~ installer", issues) == ["ABC-1"]
    assert hits("summary ~ windows", issues) == ["ABC-1", "ABC-2"]  # stemmed, as Jira: windows ~ window
    assert hits("summary ~ WIN", issues) == []
    assert hits("summary ~ 'win*'", issues) == ["ABC-1", "ABC-2"]
    assert hits("summary ~ 'w?ndow'", issues) == ["ABC-2"]
    assert hits("description ~ 'full screen'", issues) == ["ABC-1", "ABC-2"]
    assert hits('description ~ "\\"full screen\\""', issues) == ["ABC-1"]
    assert hits("summary ~ crash", issues) == ["ABC-1"]  # stemmed: crashes ~ crash
    assert hits("comment ~ customize", issues) == ["ABC-3"]
    assert hits("text ~ build", issues) == ["ABC-3"]
    assert hits("text ~ installer", issues) == ["ABC-1"]
    assert hits("summary ~ 'crash -installer'", issues) == []
    assert hits("summary ~ 'window -installer'", issues) == ["ABC-2"]


def test_not_like_skips_empty_fields() -> None:
    a = issue(n=1, description="has text")
    b = issue(n=2)
    assert hits("description !~ nothing", [a, b]) == ["ABC-1"]
    assert hits("description is empty", [a, b]) == ["ABC-2"]
    assert hits("description ~ empty", [a, b]) == ["ABC-2"]


def test_dates_relative_absolute_and_timezones() -> None:
    old = issue(n=1, created=NOW - dt.timedelta(days=3), updated=NOW - dt.timedelta(hours=2))
    new = issue(n=2, created=NOW - dt.timedelta(hours=6), updated=NOW - dt.timedelta(minutes=5))
    issues = [old, new]
    assert hits("created > -1d", issues) == ["ABC-2"]
    assert hits("created < '-1d'", issues) == ["ABC-1"]
    assert hits("updated >= -1h", issues) == ["ABC-2"]
    assert hits("updated > '-1w 2d'", issues) == ["ABC-1", "ABC-2"]
    assert hits("created >= 2024-03-15", issues) == ["ABC-2"]
    assert hits('created < "2024/03/13 12:01"', issues) == ["ABC-1"]
    # 2024-03-15 06:00 UTC is still 2024-03-15 in UTC but 2024-03-14 evening in Los Angeles
    la = ctx(timezone=ZoneInfo("America/Los_Angeles"))
    assert hits("created >= '2024-03-15'", issues, la) == []
    assert hits("created >= '2024-03-14'", issues, la) == ["ABC-2"]
    assert hits(f"created = '{(NOW - dt.timedelta(hours=6)):%Y-%m-%d %H:%M}'", issues) == ["ABC-2"]


def test_due_date_is_a_day() -> None:
    today = issue(n=1, due_date=dt.date(2024, 3, 15))
    later = issue(n=2, due_date=dt.date(2024, 3, 20))
    none = issue(n=3)
    issues = [today, later, none]
    assert hits("due = 2024-03-15", issues) == ["ABC-1"]
    assert hits("duedate < now()", issues) == ["ABC-1"]
    assert hits("due <= 5d", issues) == ["ABC-1", "ABC-2"]
    assert hits("due is empty", issues) == ["ABC-3"]
    assert hits("due != 2024-03-15", issues) == ["ABC-2"]


def test_numbers_votes_and_watchers() -> None:
    issues = [issue(n=1, votes=0), issue(n=2, votes=3, watchers=[ALICE, BOB])]
    assert hits("votes > 0", issues) == ["ABC-2"]
    assert hits("votes in (0, 5)", issues) == ["ABC-1"]
    assert hits("watchers = 2", issues) == ["ABC-2"]
    assert hits("watcher = bob", issues) == ["ABC-2"]
    with pytest.raises(JqlError, match="not a valid number for the field 'votes'"):
        compile_query("votes > many")


def test_custom_fields_by_id_by_name_and_by_shape() -> None:
    names = {
        "customfield_10016": "Story Points",
        "customfield_10020": "Severity",
        "customfield_10030": "Go live",
    }
    a = issue(
        n=1,
        custom_fields={
            "customfield_10016": 5,
            "customfield_10020": {"value": "Critical", "id": "10100"},
            "customfield_10030": "2024-04-01",
        },
        field_names=names,
    )
    b = issue(n=2, custom_fields={"customfield_10016": 13.0, "customfield_10020": None}, field_names=names)
    issues = [a, b]
    assert hits("cf[10016] > 8", issues) == ["ABC-2"]
    assert hits('"Story Points" = 5', issues) == ["ABC-1"]
    assert hits("'story points' in (5, 13)", issues) == ["ABC-1", "ABC-2"]
    assert hits("customfield_10016 <= 5", issues) == ["ABC-1"]
    assert hits("Severity = critical", issues) == ["ABC-1"]
    assert hits("Severity = 10100", issues) == ["ABC-1"]
    assert hits("Severity is empty", issues) == ["ABC-2"]
    assert hits("Severity != critical", issues) == []
    assert hits('"Go live" > 2024-03-31', issues) == ["ABC-1"]
    assert hits('"Go live" < startOfMonth()', issues) == []
    assert hits("Nonexistent = x", issues) == []


def test_entity_properties_with_paths() -> None:
    a = issue(
        n=1, properties={"tandem.twin": {"connection": "c1", "peers": [{"node": "n1"}, {"node": "n2"}]}}
    )
    b = issue(n=2, properties={"tandem.twin": {"connection": "c2"}})
    c = issue(n=3)
    issues = [a, b, c]
    assert hits("issue.property[tandem.twin].connection = c1", issues) == ["ABC-1"]
    assert hits('issue.property["tandem.twin"].peers.node = n2', issues) == ["ABC-1"]
    assert hits("issue.property[tandem.twin].connection is EMPTY", issues) == ["ABC-3"]
    assert hits("issue.property[tandem.twin].connection != c1", issues) == ["ABC-2"]


def test_parent_attachments_and_environment() -> None:
    att = Attachment(id="1", filename="a.txt", size=1, sha256="0" * 64)
    a = issue(
        n=1,
        parent=EntityRef(id="20001", key="ABC-100"),
        attachments=[att],
        custom_fields={"environment": "prod"},
    )
    b = issue(n=2)
    assert hits("parent = ABC-100", [a, b]) == ["ABC-1"]
    assert hits("parent in (20001)", [a, b]) == ["ABC-1"]
    assert hits("attachments is not empty", [a, b]) == ["ABC-1"]
    assert hits("attachments is empty", [a, b]) == ["ABC-2"]
    assert hits("environment ~ prod", [a, b]) == ["ABC-1"]


VALIDATION_ERRORS = [
    ("summary = test", "The operator '=' is not supported by the 'summary' field."),
    ("summary in test", "Operator 'in' does not support the non-list value '\"test\"' for field 'summary'."),
    ("status in 3", "Operator 'in' does not support the non-list value '3' for field 'status'."),
    (
        "status in EMPTY",
        "Operator 'in' does not support the empty value representation 'EMPTY' for field 'status'.",
    ),
    ("status = (a, b)", "Operator '=' does not support the list value '(\"a\", \"b\")' for field 'status'."),
    (
        "assignee = membersOf(x)",
        "Operator '=' does not support the list value 'membersOf(x)' for field 'assignee'.",
    ),
    (
        "assignee in currentUser()",
        "Operator 'in' does not support the non-list value 'currentUser()' for field 'assignee'.",
    ),
    ("status is Open", "Operator 'is' does not support searching for non-empty values for field 'status'."),
    (
        "created > EMPTY",
        "Operator '>' does not support the empty value representation 'EMPTY' for field 'created'.",
    ),
    ("status > Open", "The operator '>' is not supported by the 'status' field."),
    ("Type ~ bug", "The operator '~' is not supported by the 'Type' field."),
    ("labels was x", "The operator 'was' is not supported by the 'labels' field."),
    ("text !~ x", "The operator '!~' is not supported by the 'text' field."),
    ("assignee changed by bogus()", "Unable to find JQL function 'bogus()'."),
    ("assignee was bogus()", "Unable to find JQL function 'bogus()'."),
    ("issuekey in issueHistory()", "Unable to find JQL function 'issueHistory()'."),
    ("status = x and assignee in fancy(a, 1)", "Unable to find JQL function 'fancy(a, 1)'."),
    ("updated > now('invalid')", "Function 'now' expected '0' arguments but received '1'."),
    ("assignee in membersOf()", "Function 'membersOf' expected '1' arguments but received '0'."),
    (
        "updated > startOfDay(1, 2)",
        "Function 'startOfDay' expected between '0' and '1' arguments but received '2'.",
    ),
    (
        "status changed AFTER startOfDay('invalid')",
        "Duration for function 'startOfDay' should have the format (+/-)n(yMwdm), e.g -1M for 1 month earlier.",  # noqa: E501
    ),
    (
        "created > '20/12/10'",
        "Date value '20/12/10' for field 'created' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
        "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.",
    ),
    (
        "created > currentUser()",
        "A date for the field 'created' provided by the function 'currentUser' is not valid.",
    ),
    ("order by comment", "Field 'comment' does not support sorting."),
    ("universe.property = 1", None),  # a plain (custom) field name without a schema: accepted
]


@pytest.mark.parametrize(("query", "message"), VALIDATION_ERRORS, ids=[v[0] for v in VALIDATION_ERRORS])
def test_validation_errors_are_worded_as_jira(query: str, message: str | None) -> None:
    if message is None:
        compile_query(query)
        return
    with pytest.raises(JqlError) as info:
        compile_query(query)
    assert str(info.value) == message
    assert info.value.kind == "validation"


def test_schema_refuses_unknown_fields_and_values() -> None:
    schema = JqlSchema(
        custom_fields={"Story Points": "customfield_10016"},
        values={"status": ["Open", "Done"], "project": ["ABC"]},
    )
    q = compile_query(
        "'story points' > 3 and cf[10016] < 9 and status in (open, DONE) and project = abc", schema
    )
    assert q.matches(issue(status="Open", custom_fields={"customfield_10016": 5}), ctx())
    cases = {
        "universe = 42": "Field 'universe' does not exist or you do not have permission to view it.",
        "cf[99] = 1": "Field 'cf[99]' does not exist or you do not have permission to view it.",
        "foo.property[x].y = 1": "Field 'foo.property[x].y' does not exist or you do not have permission to view it.",  # noqa: E501
        "status = Reopened": "The value 'Reopened' does not exist for the field 'status'.",
        "status changed from fred": "The value 'fred' does not exist for the field 'status'.",
    }
    for query, message in cases.items():
        with pytest.raises(JqlError) as info:
            compile_query(query, schema)
        assert str(info.value) == message, query
    assert compile_query("status = Reopened").matches(issue(status="Reopened"), ctx())  # no schema: no check


def test_eval_context_requires_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        EvalContext(now=dt.datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="week_start"):
        EvalContext(now=NOW, week_start=7)


def test_empty_query_matches_everything(team: list) -> None:
    assert hits("", team) == ["ABC-1", "ABC-2", "ABC-3", "XYZ-4"]
    assert hits("order by key", team) == ["ABC-1", "ABC-2", "ABC-3", "XYZ-4"]


def test_status_without_status_and_user_without_ids() -> None:
    bare = issue(n=1, status=None, assignee=UserRef())
    assert matches("status is empty", bare)
    assert matches("assignee is empty", bare)
    assert not matches("statusCategory = done", bare)
    assert not matches("status != x or status is empty", issue(status=StatusRef(name="x")))
