"""The one error the JQL engine raises, worded the way Jira words it.

``JqlError.message`` (and ``str(err)``) is the text Jira puts in ``errorMessages``. Syntax errors
start with ``Error in the JQL Query:`` and end with ``(line L, character C)`` when they point at a
token (Jira leaves the position out when the problem is the end of the query); validation errors
(unknown field, operator not supported, unknown function, bad date, ...) are plain sentences.
``line``/``column`` are 1-based and always set, so a UI can place a marker even when the message
does not show them.
"""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal["syntax", "validation", "value"]

SYNTAX_PREFIX = "Error in the JQL Query: "
# Jira's message for a bad operand really is worded without "the" (jql.parse.bad.operand).
OPERAND_PREFIX = "Error in JQL Query: "


class JqlError(ValueError):
    """A query Jira would reject. ``kind``: "syntax" (cannot be parsed), "validation" (parses but is
    not a valid query), "value" (a value that does not exist on this instance; /jql/parse reports
    these as warnings)."""

    def __init__(self, message: str, line: int = 1, column: int = 1, *, kind: ErrorKind = "syntax") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.kind: ErrorKind = kind

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"JqlError({self.message!r}, line={self.line}, column={self.column}, kind={self.kind!r})"


def at(line: int, column: int) -> str:
    return f" (line {line}, character {column})"


def validation(message: str, line: int = 1, column: int = 1) -> JqlError:
    return JqlError(message, line, column, kind="validation")


def syntax_at(message: str, line: int, column: int) -> JqlError:
    """A syntax error pointing at a token: Jira's prefix, ``message``, then where the token is."""
    return JqlError(f"{SYNTAX_PREFIX}{message}{at(line, column)}", line, column)
