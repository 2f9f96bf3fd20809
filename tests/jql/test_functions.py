"""Date functions with an injected clock, time zone and week start."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from node.jql.context import EvalContext
from node.jql.dates import boundary, parse_date_literal, parse_increment

from .helpers import NOW, ctx, hits, issue

UTC = dt.UTC


def b(name: str, inc: str | None = None, tz: dt.tzinfo = UTC, week_start: int = 0) -> dt.datetime:
    return boundary(name, NOW, tz, week_start, parse_increment(inc) if inc else None)


def test_boundaries_in_utc() -> None:
    # NOW is Friday 2024-03-15 12:00 UTC
    assert b("startOfDay") == dt.datetime(2024, 3, 15, tzinfo=UTC)
    assert b("endOfDay") == dt.datetime(2024, 3, 15, 23, 59, 59, 999000, tzinfo=UTC)
    assert b("startOfDay", "-1d") == dt.datetime(2024, 3, 14, tzinfo=UTC)
    assert b("startOfWeek") == dt.datetime(2024, 3, 11, tzinfo=UTC)  # Monday
    assert b("startOfWeek", week_start=6) == dt.datetime(2024, 3, 10, tzinfo=UTC)  # Sunday
    assert b("endOfWeek") == dt.datetime(2024, 3, 17, 23, 59, 59, 999000, tzinfo=UTC)
    assert b("startOfWeek", "-1w") == dt.datetime(2024, 3, 4, tzinfo=UTC)
    assert b("startOfMonth") == dt.datetime(2024, 3, 1, tzinfo=UTC)
    assert b("startOfMonth", "-1M") == dt.datetime(2024, 2, 1, tzinfo=UTC)
    assert b("endOfMonth", "-1M") == dt.datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)
    assert b("startOfYear") == dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert b("endOfYear", "+1y") == dt.datetime(2025, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert b("startOfDay", "+8h") == dt.datetime(2024, 3, 15, 8, tzinfo=UTC)


def test_boundaries_follow_the_time_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")  # NOW is 21:00 in Tokyo, same day
    assert b("startOfDay", tz=tokyo) == dt.datetime(2024, 3, 15, tzinfo=tokyo)
    la = ZoneInfo("America/Los_Angeles")  # NOW is 05:00 in LA
    assert b("startOfDay", tz=la) == dt.datetime(2024, 3, 15, tzinfo=la)
    assert b("startOfDay", tz=la).astimezone(UTC) == dt.datetime(2024, 3, 15, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-1d", NOW - dt.timedelta(days=1)),
        ("4w 2d", NOW + dt.timedelta(days=30)),
        ("-1w 2d", NOW - dt.timedelta(days=9)),
        ("+3h", NOW + dt.timedelta(hours=3)),
        ("-90m", NOW - dt.timedelta(minutes=90)),
        ("2024-01-31", dt.datetime(2024, 1, 31, tzinfo=UTC)),
        ("2024/01/31 10:05", dt.datetime(2024, 1, 31, 10, 5, tzinfo=UTC)),
        ("1710504000000", dt.datetime(2024, 3, 15, 12, tzinfo=UTC)),
    ],
)
def test_date_literals(text: str, expected: dt.datetime) -> None:
    spec = parse_date_literal(text)
    assert spec is not None
    assert spec.resolve(NOW, UTC) == expected


@pytest.mark.parametrize("text", ["20/12/10", "yesterday", "2024-13-01", "2024-02-30", "5x", "-", ""])
def test_invalid_date_literals(text: str) -> None:
    assert parse_date_literal(text) is None


def test_functions_in_queries_use_the_context_clock() -> None:
    today = issue(n=1, created=dt.datetime(2024, 3, 15, 1, tzinfo=UTC))
    yesterday = issue(n=2, created=dt.datetime(2024, 3, 14, 23, tzinfo=UTC))
    last_month = issue(n=3, created=dt.datetime(2024, 2, 10, tzinfo=UTC))
    issues = [today, yesterday, last_month]
    assert hits("created >= startOfDay()", issues) == ["ABC-1"]
    assert hits("created >= startOfDay(-1d) and created < startOfDay()", issues) == ["ABC-2"]
    assert hits("created >= startOfMonth(-1M) and created <= endOfMonth(-1M)", issues) == ["ABC-3"]
    assert hits("created >= startOfWeek()", issues) == ["ABC-1", "ABC-2"]
    assert hits("created < now()", issues) == ["ABC-1", "ABC-2", "ABC-3"]
    later = EvalContext(now=dt.datetime(2024, 4, 2, tzinfo=UTC))
    assert hits("created >= startOfMonth(-1M)", issues, later) == ["ABC-1", "ABC-2"]
    logins = ctx(last_login=dt.datetime(2024, 3, 15, tzinfo=UTC))
    assert hits("created > lastLogin()", issues, logins) == ["ABC-1"]
    assert hits("created > currentLogin()", issues) == []


def test_function_names_are_case_insensitive() -> None:
    i = issue(n=1, created=NOW)
    assert hits("created >= STARTOFDAY()", [i]) == ["ABC-1"]
