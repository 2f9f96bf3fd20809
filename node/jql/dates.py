"""Date values in JQL: absolute dates, relative periods and the date functions.

Formats Jira accepts for a date value: ``yyyy/MM/dd HH:mm``, ``yyyy-MM-dd HH:mm``, ``yyyy/MM/dd``,
``yyyy-MM-dd`` (in the searcher's time zone), a period relative to now (``-5d``, ``4w 2d``, ``+1h``,
``-1w 2d 3h``; the sign applies to the whole period; units w d h m, 1w = 7d), or a number of
milliseconds since the epoch. Function increments use ``(+/-)n(yMwdhm)`` (``-1M`` = one month back).

Pure: the clock and the time zone always come from the caller.
"""

from __future__ import annotations

import datetime as dt
import re

from dateutil.relativedelta import relativedelta

VALID_FORMATS = (
    "Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', "
    "or a period format e.g. '-5d', '4w 2d'."
)

_ABSOLUTE = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?\Z")
_PERIOD = re.compile(r"([-+])?\s*((?:\d+\s*[wdhm]\s*)+)\Z")
_PERIOD_PART = re.compile(r"(\d+)\s*([wdhm])")
_INCREMENT = re.compile(r"([-+])?(\d+)([yMwdhm])?\Z")
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60}


class DateSpec:
    """A parsed date literal: either a wall-clock time (resolved in the searcher's zone), a period
    relative to now, or an absolute instant. ``has_time`` is False for a bare date."""

    __slots__ = ("has_time", "instant", "naive", "period")

    def __init__(
        self,
        *,
        naive: dt.datetime | None = None,
        period: dt.timedelta | None = None,
        instant: dt.datetime | None = None,
        has_time: bool = True,
    ) -> None:
        self.naive = naive
        self.period = period
        self.instant = instant
        self.has_time = has_time

    def resolve(self, now: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
        if self.naive is not None:
            return self.naive.replace(tzinfo=tz)
        if self.period is not None:
            return now + self.period
        assert self.instant is not None
        return self.instant


def parse_date_literal(text: str, *, is_number: bool = False) -> DateSpec | None:
    """The meaning of a date value as written, or None when it is not a valid date value."""
    s = text.strip()
    if is_number or re.fullmatch(r"-?\d{9,}", s):
        try:
            return DateSpec(instant=dt.datetime.fromtimestamp(int(s) / 1000, dt.UTC))
        except (OverflowError, OSError, ValueError):
            return None
    m = _ABSOLUTE.match(s)
    if m:
        y, mo, d, hh, mm = m.groups()
        try:
            naive = dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0))
        except ValueError:
            return None
        return DateSpec(naive=naive, has_time=hh is not None)
    m = _PERIOD.match(s)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _PERIOD_PART.findall(m.group(2)))
        try:
            return DateSpec(period=dt.timedelta(seconds=sign * seconds))
        except OverflowError:
            return None
    return None


def parse_increment(text: str) -> relativedelta | None:
    """``-1M``, ``+2w``, ``3d``, ``-4h``, ``30m`` (a bare number means days)."""
    m = _INCREMENT.match(text.strip())
    if not m:
        return None
    sign = -1 if m.group(1) == "-" else 1
    n = sign * int(m.group(2))
    if abs(n) > 100_000:
        return None
    unit = m.group(3) or "d"
    return {
        "y": relativedelta(years=n),
        "M": relativedelta(months=n),
        "w": relativedelta(weeks=n),
        "d": relativedelta(days=n),
        "h": relativedelta(hours=n),
        "m": relativedelta(minutes=n),
    }[unit]


def boundary(
    name: str, now: dt.datetime, tz: dt.tzinfo, week_start: int, inc: relativedelta | None
) -> dt.datetime:
    """startOfDay/endOfDay/startOfWeek/endOfWeek/startOfMonth/endOfMonth/startOfYear/endOfYear.

    The increment is applied to the start of the current period, then the boundary of the period it
    lands in is taken (as Jira: ``endOfMonth(-1M)`` is the last moment of last month). Ends are the
    last millisecond of the period."""
    local = now.astimezone(tz)
    unit = name[len("startOf") :] if name.startswith("startOf") else name[len("endOf") :]
    day0 = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "Day":
        start = day0
    elif unit == "Week":
        start = day0 - dt.timedelta(days=(day0.weekday() - week_start) % 7)
    elif unit == "Month":
        start = day0.replace(day=1)
    else:
        start = day0.replace(month=1, day=1)
    if inc is not None:
        start = start + inc
        # re-align to the period the shifted moment falls in (weeks and days stay aligned)
        if unit == "Month":
            start = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        elif unit == "Year":
            start = start.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if name.startswith("startOf"):
        return _wall(start, tz)
    step = {
        "Day": relativedelta(days=1),
        "Week": relativedelta(weeks=1),
        "Month": relativedelta(months=1),
        "Year": relativedelta(years=1),
    }[unit]
    return _wall(start.replace(tzinfo=None) + step, tz) - dt.timedelta(milliseconds=1)


def _wall(moment: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Re-attach the zone to a wall-clock time (so DST shifts do not move midnight)."""
    return moment.replace(tzinfo=None).replace(tzinfo=tz)
