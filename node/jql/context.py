"""What a query is evaluated against (:class:`EvalContext`) and what the instance knows about its
fields and values (:class:`JqlSchema`, optional, used for Jira's "does not exist" errors)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from protocol.replica import UserRef

# Lowest first. Jira's default schemes: Lowest..Highest (Cloud) and Trivial..Blocker (older Server).
DEFAULT_PRIORITY_ORDER: tuple[str, ...] = (
    "Lowest",
    "Trivial",
    "Low",
    "Minor",
    "Medium",
    "Major",
    "High",
    "Critical",
    "Highest",
    "Blocker",
)


@dataclass(frozen=True)
class EvalContext:
    """Everything a query's meaning depends on besides the issue.

    ``now`` must be timezone-aware. ``groups`` maps a group name to its members (account ids,
    usernames or emails; matched case-insensitively against a user's identifiers). ``week_start``:
    0 = Monday ... 6 = Sunday. ``priority_order`` lists priority names lowest first (drives
    ``priority > High`` and ``ORDER BY priority``). ``last_login``/``current_login`` answer
    ``lastLogin()``/``currentLogin()`` (default: ``now``)."""

    now: dt.datetime
    current_user: UserRef | None = None
    groups: Mapping[str, Collection[str]] = field(default_factory=dict)
    timezone: dt.tzinfo = dt.UTC
    week_start: int = 0
    priority_order: Sequence[str] = DEFAULT_PRIORITY_ORDER
    last_login: dt.datetime | None = None
    current_login: dt.datetime | None = None
    # Values that depend only on the context (resolved functions and dates), filled lazily so a
    # query evaluated over many issues with one context computes them once.
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("EvalContext.now must be timezone-aware")
        if not 0 <= self.week_start <= 6:
            raise ValueError("EvalContext.week_start must be 0 (Monday) .. 6 (Sunday)")


@dataclass(frozen=True)
class JqlSchema:
    """Optional knowledge of the instance, for validation as Jira does it.

    ``custom_fields`` maps a custom field's display name to its id (``"Story Points" ->
    "customfield_10016"``); with a schema, a name that is neither a system field nor listed here is
    refused ("Field 'x' does not exist ..."). ``values`` lists the known values of a field by its
    canonical name (``{"status": [...], "project": [...]}``); a literal outside the list is refused
    ("The value 'x' does not exist for the field 'status'.")."""

    custom_fields: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Collection[str]] = field(default_factory=dict)
