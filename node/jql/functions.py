"""JQL functions Tandem evaluates, their argument rules and Jira's messages about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from node.jql.ast import Function
from node.jql.dates import parse_increment
from node.jql.errors import JqlError, validation

Result = Literal["user", "users", "date"]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    min_args: int
    max_args: int
    result: Result

    @property
    def is_list(self) -> bool:
        return self.result == "users"


_DATE_BOUNDARIES = (
    "startOfDay", "endOfDay", "startOfWeek", "endOfWeek",
    "startOfMonth", "endOfMonth", "startOfYear", "endOfYear",
)  # fmt: skip

FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name.lower(): spec
    for spec in (
        FunctionSpec("currentUser", 0, 0, "user"),
        FunctionSpec("membersOf", 1, 1, "users"),
        FunctionSpec("now", 0, 0, "date"),
        FunctionSpec("currentLogin", 0, 0, "date"),
        FunctionSpec("lastLogin", 0, 0, "date"),
        *(FunctionSpec(n, 0, 1, "date") for n in _DATE_BOUNDARIES),
    )
}


def check_function(fn: Function) -> FunctionSpec:
    """The spec of a function call, or Jira's error for an unknown function / bad arguments."""
    spec = FUNCTIONS.get(fn.name.lower())
    if spec is None:
        raise validation(f"Unable to find JQL function '{fn.display()}'.", fn.pos.line, fn.pos.column)
    n = len(fn.args)
    if not spec.min_args <= n <= spec.max_args:
        if spec.min_args == spec.max_args:
            msg = f"Function '{fn.name}' expected '{spec.min_args}' arguments but received '{n}'."
        else:
            msg = (
                f"Function '{fn.name}' expected between '{spec.min_args}' and '{spec.max_args}' "
                f"arguments but received '{n}'."
            )
        raise validation(msg, fn.pos.line, fn.pos.column)
    if spec.name in _DATE_BOUNDARIES and fn.args and parse_increment(fn.args[0]) is None:
        raise validation(
            f"Duration for function '{fn.name}' should have the format (+/-)n(yMwdm), "
            "e.g -1M for 1 month earlier.",
            fn.pos.line,
            fn.pos.column,
        )
    return spec


def is_boundary(spec: FunctionSpec) -> bool:
    return spec.name in _DATE_BOUNDARIES


__all__ = ["FUNCTIONS", "FunctionSpec", "JqlError", "check_function", "is_boundary"]
