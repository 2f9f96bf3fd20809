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


def test_protocol_imports_no_io_clock_or_randomness() -> None:
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: import {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
            if isinstance(node, ast.Call):
                fn = node.func
                bad_builtin = isinstance(fn, ast.Name) and fn.id in FORBIDDEN_BUILTINS
                bad_method = isinstance(fn, ast.Attribute) and fn.attr in FORBIDDEN_METHODS
                if bad_builtin or bad_method:
                    name = ast.unparse(fn)
                    offenders.append(f"{path.name}:{node.lineno}: call {name}()")
    assert offenders == []


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    tree = ast.parse("import asyncio\nimport time\nx = time.time()\n")
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Import) and n.names[0].name in FORBIDDEN_MODULES]
    assert len(found) == 2
