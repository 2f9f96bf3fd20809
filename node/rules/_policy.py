"""What a rule script may contain: an AST whitelist checked before any script runs.

This is the first of three walls (then RestrictedPython's compiler and runtime guards, then a
separate worker process with a memory bound and a time limit). It exists to refuse early, with the
script line, anything a rule has no business doing: imports, class definitions, private or dunder
names and attributes, frame/code introspection, ``str.format`` (which reaches attributes through its
format string), and the builtins that open doors (``eval``, ``exec``, ``open``, ``getattr`` …).

Stdlib only (it is imported by the worker process too). No I/O.
"""

from __future__ import annotations

import ast

SCRIPT_FILENAME = "<rule script>"
MAX_SCRIPT_CHARS = 64 * 1024

_ALLOWED: frozenset[type[ast.AST]] = frozenset(
    {
        ast.Module, ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.While, ast.If,
        ast.Break, ast.Continue, ast.Pass, ast.Return, ast.FunctionDef, ast.Lambda, ast.arguments,
        ast.arg, ast.keyword, ast.Try, ast.ExceptHandler, ast.Raise, ast.Assert, ast.Delete,
        ast.Name, ast.Load, ast.Store, ast.Del, ast.Constant, ast.Attribute, ast.Subscript, ast.Slice,
        ast.List, ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.SetComp, ast.DictComp,
        ast.GeneratorExp, ast.comprehension, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.Add,
        ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift, ast.RShift,
        ast.BitOr, ast.BitXor, ast.BitAnd, ast.UnaryOp, ast.UAdd, ast.USub, ast.Not, ast.Invert,
        ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In,
        ast.NotIn, ast.Call, ast.IfExp, ast.JoinedStr, ast.FormattedValue, ast.Starred,
        ast.NamedExpr,
    }
)  # fmt: skip

_REFUSED: dict[type[ast.AST], str] = {
    ast.Import: "imports are not allowed",
    ast.ImportFrom: "imports are not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.Global: "'global' is not allowed",
    ast.Nonlocal: "'nonlocal' is not allowed",
    ast.With: "'with' is not allowed",
    ast.AsyncWith: "async code is not allowed",
    ast.AsyncFor: "async code is not allowed",
    ast.AsyncFunctionDef: "async code is not allowed",
    ast.Await: "async code is not allowed",
    ast.Yield: "generators ('yield') are not allowed",
    ast.YieldFrom: "generators ('yield') are not allowed",
    ast.Match: "'match' statements are not supported",
}

FORBIDDEN_NAMES = frozenset(
    {
        "eval", "exec", "open", "compile", "getattr", "setattr", "delattr", "hasattr", "globals",
        "locals", "vars", "dir", "type", "object", "super", "input", "breakpoint", "help",
        "memoryview", "classmethod", "staticmethod", "property", "exit", "quit", "id", "bytearray",
        "issubclass", "callable", "BaseException", "GeneratorExit", "KeyboardInterrupt", "SystemExit",
    }
)  # fmt: skip

#: Attributes that reach frames, code or the formatter machinery (their names have no underscore).
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "format", "format_map", "mro", "gi_frame", "gi_code", "gi_yieldfrom", "gi_running",
        "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "ag_await", "f_back", "f_builtins",
        "f_code", "f_globals", "f_locals", "f_trace", "f_generator", "tb_frame", "tb_next", "co_code",
        "with_traceback",
    }
)  # fmt: skip


class PolicyError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def check_script(source: str) -> ast.Module:
    """Parse and police a script; raises PolicyError(message, line) at the first problem."""
    if len(source) > MAX_SCRIPT_CHARS:
        raise PolicyError(f"the script is longer than {MAX_SCRIPT_CHARS // 1024} KiB", None)
    try:
        tree = ast.parse(source, filename=SCRIPT_FILENAME, mode="exec")
    except SyntaxError as exc:
        raise PolicyError(f"SyntaxError: {exc.msg}", exc.lineno) from None
    except (ValueError, MemoryError, RecursionError) as exc:  # NUL bytes, absurd nesting
        raise PolicyError(f"the script cannot be parsed: {type(exc).__name__}", None) from None
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        kind = type(node)
        if kind not in _ALLOWED:
            raise PolicyError(_REFUSED.get(kind, f"{kind.__name__} is not allowed"), line)
        if isinstance(node, ast.Name):
            _check_name(node.id, line)
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                raise PolicyError(f"attribute {node.attr!r} is not allowed (names starting with '_')", line)
            if node.attr in ("format", "format_map"):
                raise PolicyError("str.format is not allowed; use an f-string", line)
            if node.attr in FORBIDDEN_ATTRIBUTES:
                raise PolicyError(f"attribute {node.attr!r} is not allowed", line)
        elif isinstance(node, ast.FunctionDef | ast.Lambda):
            if isinstance(node, ast.FunctionDef):
                _check_name(node.name, line)
                if node.decorator_list:
                    raise PolicyError("decorators are not allowed", line)
            for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                _check_name(a.arg, line)
            for extra in (node.args.vararg, node.args.kwarg):
                if extra is not None:
                    _check_name(extra.arg, line)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            _check_name(node.name, line)
        elif isinstance(node, ast.keyword) and node.arg and node.arg.startswith("_"):
            raise PolicyError(f"keyword {node.arg!r} is not allowed (names starting with '_')", line)
    return tree


def _check_name(name: str, line: int | None) -> None:
    if name.startswith("_"):
        raise PolicyError(f"name {name!r} is not allowed (names starting with '_')", line)
    if name in FORBIDDEN_NAMES:
        raise PolicyError(f"{name!r} is not allowed", line)
