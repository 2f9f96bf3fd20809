"""The one error the rules engine raises: :class:`RuleError`.

A rule error is our configuration's fault (the admin's rules), never the peer's or the tracker's: it
is not retried, it pauses only the entity (or connection) it concerns, and ``str(err)`` is written
for the admin who wrote the rules, naming the script line (``line 7: NameError: ...``) or the
configuration path (``values.status.unmatched: ...``) where there is one.
"""

from __future__ import annotations


class RuleError(Exception):
    """Rules that cannot be compiled, or that failed on one entity.

    ``line`` is the 1-based script line, ``path`` the dotted path in a Visual document (or in a
    script's output), when known.
    """

    def __init__(self, message: str, *, line: int | None = None, path: str | None = None) -> None:
        self.message = message
        self.line = line
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        if self.line is not None:
            return f"line {self.line}: {self.message}"
        if self.path:
            return f"{self.path}: {self.message}"
        return self.message

    def as_dict(self) -> dict[str, object]:
        return {"message": str(self), "line": self.line, "path": self.path}
