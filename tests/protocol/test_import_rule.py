"""protocol/ is sans-I/O: no network, disk, clock or randomness of its own."""

from __future__ import annotations

import ast
from pathlib import Path

PROTOCOL = Path(__file__).resolve().parents[2] / "protocol"
FORBIDDEN_MODULES = {
    "asyncio",
    "aiohttp",
    "aiosqlite",
    "sqlite3",
    "socket",
    "ssl",
    "select",
    "selectors",
    "os",
    "io",
    "pathlib",
    "shutil",
    "subprocess",
    "threading",
    "time",
    "random",
    "secrets",
    "urllib",
    "http",
    "requests",
    "logging",
    "node",
}
FORBIDDEN_BUILTINS = {"open", "input", "print", "__import__", "exec", "eval"}
FORBIDDEN_METHODS = {"now", "utcnow", "today", "urandom", "token_bytes", "random", "generate"}


def _modules() -> list[Path]:
    files = sorted(PROTOCOL.glob("**/*.py"))
    assert len(files) >= 8
    return files


def offenders(source: str, name: str) -> list[str]:
    """What in ``source`` breaks the sans-I/O rule."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [f"{name}: import {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        if isinstance(node, ast.Call):
            fn = node.func
            bad_builtin = isinstance(fn, ast.Name) and fn.id in FORBIDDEN_BUILTINS
            bad_method = isinstance(fn, ast.Attribute) and fn.attr in FORBIDDEN_METHODS
            if bad_builtin or bad_method:
                found.append(f"{name}:{node.lineno}: call {ast.unparse(fn)}()")
    return found


def test_protocol_imports_no_io_clock_or_randomness() -> None:
    assert [o for path in _modules() for o in offenders(path.read_text(), path.name)] == []


def test_the_rule_catches_each_kind_of_violation() -> None:
    source = (
        "import asyncio\nfrom os import path\nimport datetime as dt\n"
        "x = dt.datetime.now()\nkey = secrets.token_bytes(32)\nopen('f')\nself.keys.open(b'')\n"
    )
    assert offenders(source, "m.py") == [
        "m.py: import asyncio",
        "m.py: import os",
        "m.py:4: call dt.datetime.now()",
        "m.py:5: call secrets.token_bytes()",
        "m.py:6: call open()",
    ]
