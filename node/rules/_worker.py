"""The script worker: runs one rule script at a time in its own process, behind RestrictedPython.

Started by :mod:`node.rules.sandbox` as ``python -m node.rules._worker``. At start it bounds its own
address space (``RLIMIT_AS``), forbids creating files and core dumps, then serves jobs read from
stdin as length-prefixed JSON and answers the same way on stdout (never pickle: the parent does not
unpickle anything a script could shape). The
parent kills and replaces it when a run exceeds its time limit or the process dies.

Only stdlib, RestrictedPython and the pure rich-text helpers are imported here, so a fresh worker
starts fast.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections.abc import Callable
from types import CodeType, TracebackType
from typing import Any

from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
    safer_getattr_raise,
)

from node.rules._policy import SCRIPT_FILENAME, PolicyError, check_script
from protocol.richtext import from_plain_text, plain_text

MAX_JOB_BYTES = 64 * 1024 * 1024
_MEMORY_ERROR = "MemoryError: the script used more memory than allowed"
_MEMORY_ANSWER = json.dumps({"ok": False, "error": _MEMORY_ERROR, "line": None, "memory": True}).encode()
_CODE_CACHE: dict[str, CodeType] = {}


class ReadOnlyDict(dict[str, Any]):
    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("this value is read-only (only 'replica' / 'changes' can be changed)")

    __setitem__ = __delitem__ = update = pop = popitem = clear = setdefault = __ior__ = _refuse


class ReadOnlyList(list[Any]):
    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("this value is read-only (only 'replica' / 'changes' can be changed)")

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse


def frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return ReadOnlyDict({k: frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return ReadOnlyList(frozen(v) for v in value)
    return value


class ScriptSkip(BaseException):
    """Raised by ``skip()``; a BaseException so that ``except Exception`` in a script ignores it."""


class ScriptFailure(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def compile_script(source: str) -> CodeType:
    code = _CODE_CACHE.get(source)
    if code is not None:
        return code
    try:
        check_script(source)
    except PolicyError as exc:
        raise ScriptFailure(exc.message, exc.line) from None
    result = compile_restricted_exec(source, filename=SCRIPT_FILENAME)
    if result.errors or result.code is None:
        first = result.errors[0] if result.errors else "the script cannot be compiled"
        line: int | None = None
        if first.startswith("Line ") and ":" in first:
            head, _, rest = first.partition(":")
            try:
                line = int(head.split()[1])
            except (IndexError, ValueError):
                line = None
            first = rest.strip()
        raise ScriptFailure(first, line)
    if len(_CODE_CACHE) > 64:
        _CODE_CACHE.clear()
    _CODE_CACHE[source] = result.code
    return result.code


def _write_guard(ob: Any) -> Any:
    if isinstance(ob, ReadOnlyDict | ReadOnlyList):
        raise TypeError("this value is read-only (only 'replica' / 'changes' can be changed)")
    if type(ob) in (dict, list):
        return ob
    raise TypeError(f"cannot modify a {type(ob).__name__}")


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": lambda a, b: a + b,
    "-=": lambda a, b: a - b,
    "*=": lambda a, b: a * b,
    "/=": lambda a, b: a / b,
    "//=": lambda a, b: a // b,
    "%=": lambda a, b: a % b,
    "**=": lambda a, b: a**b,
    "|=": lambda a, b: a | b,
    "&=": lambda a, b: a & b,
    "^=": lambda a, b: a ^ b,
    "<<=": lambda a, b: a << b,
    ">>=": lambda a, b: a >> b,
}


def _inplace(op: str, a: Any, b: Any) -> Any:
    if isinstance(a, ReadOnlyList | ReadOnlyDict):
        raise TypeError("this value is read-only (only 'replica' / 'changes' can be changed)")
    return _INPLACE[op](a, b)


def _builtins() -> dict[str, Any]:
    allowed = dict(safe_builtins)
    for name in ("__build_class__", "id", "issubclass", "callable", "setattr", "delattr", "BaseException"):
        allowed.pop(name, None)
    extra: dict[str, Any] = {
        "dict": dict, "list": list, "set": set, "frozenset": frozenset, "tuple": tuple,
        "sorted": sorted, "min": min, "max": max, "sum": sum, "any": any, "all": all,
        "enumerate": enumerate, "zip": zip, "reversed": reversed, "map": map, "filter": filter,
        "isinstance": isinstance,
    }  # fmt: skip
    allowed.update(extra)
    return allowed


_BUILTINS = _builtins()


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job; the answer is JSON data: ``{"ok", "result", "skip", "log"}`` or an error."""
    log: list[str] = []
    state: dict[str, Any] = {"skip": None}

    def skip(reason: str = "skipped by the script") -> None:
        state["skip"] = str(reason)
        raise ScriptSkip()

    def warn(message: Any) -> None:
        log.append(str(message))

    def doc(text: Any) -> dict[str, Any]:
        return from_plain_text(str(text))

    class _Print:
        def __init__(self, _getattr_: Any = None) -> None:
            pass

        def _call_print(self, *objects: Any, **kwargs: Any) -> None:
            log.append(" ".join(str(o) for o in objects))

        def __call__(self) -> str:
            return "\n".join(log)

    env: dict[str, Any] = {
        "__builtins__": _BUILTINS,
        "__name__": "rule_script",
        "_getattr_": safer_getattr_raise,
        "_getitem_": lambda ob, index: ob[index],
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": _write_guard,
        "_inplacevar_": _inplace,
        "_print_": _Print,
        "skip": skip,
        "warn": warn,
        "doc": doc,
        "plain_text": lambda d: plain_text(d if isinstance(d, dict) else None),
    }
    direction = job.get("direction")
    if direction == "outgoing":
        env["issue"] = frozen(job.get("issue"))
        env["replica"] = job.get("replica")
        env["context"] = frozen(job.get("context"))
        output_name = "replica"
    else:
        env["replica"] = frozen(job.get("replica"))
        env["previous"] = frozen(job.get("previous"))
        env["issue"] = frozen(job.get("issue"))
        env["changes"] = job.get("changes")
        env["context"] = frozen(job.get("context"))
        output_name = "changes"
    try:
        code = compile_script(str(job.get("source", "")))
        exec(code, env)
    except ScriptFailure as exc:
        return {"ok": False, "error": exc.message, "line": exc.line, "log": log}
    except ScriptSkip:
        pass
    except MemoryError as exc:
        line = _script_line(exc.__traceback__)
        return {"ok": False, "error": _MEMORY_ERROR, "line": line, "log": log, "memory": True}
    except RecursionError as exc:
        return {"ok": False, "error": "RecursionError: too deep", "line": _script_line(exc.__traceback__),
                "log": log}  # fmt: skip
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "line": _script_line(exc.__traceback__),
                "log": log}  # fmt: skip
    if state["skip"] is not None:
        return {"ok": True, "skip": state["skip"], "result": None, "log": log}
    return {"ok": True, "skip": None, "result": env.get(output_name), "log": log}


def _script_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == SCRIPT_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _limit_resources(memory_limit: int) -> None:
    try:
        with open("/proc/self/statm") as fh:
            current = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        current = 0
    limit = current + memory_limit
    for which, value in (
        (resource.RLIMIT_AS, limit),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
    ):
        try:
            _soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, hard))
        except (ValueError, OSError):
            pass


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _write_frame(fd: int, payload: bytes) -> None:
    data = len(payload).to_bytes(4, "big") + payload
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def serve(in_fd: int, out_fd: int, memory_limit: int) -> None:
    """Worker main loop: one framed JSON job in (4-byte length + JSON), one framed answer out."""
    _limit_resources(memory_limit)
    sys.setrecursionlimit(400)
    _write_frame(out_fd, b'{"ready": true}')
    while True:
        head = _read_exact(in_fd, 4)
        if head is None:
            return
        size = int.from_bytes(head, "big")
        if size > MAX_JOB_BYTES:
            return
        raw = _read_exact(in_fd, size)
        if raw is None:
            return
        try:
            answer = run_job(json.loads(raw))
            payload = json.dumps(answer, allow_nan=False).encode()
        except MemoryError:
            payload = _MEMORY_ANSWER
        except (TypeError, ValueError) as exc:
            payload = json.dumps(
                {"ok": False, "error": f"the script left data that is not JSON: {exc}", "line": None}
            ).encode()
        try:
            _write_frame(out_fd, payload)
        except OSError:
            return


def main() -> None:
    """``python -m node.rules._worker MEMORY_LIMIT``: frames on stdin/stdout. Stray writes to
    ``sys.stdout`` go to stderr so they can never corrupt the frame stream."""
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    memory_limit = int(sys.argv[1]) if len(sys.argv) > 1 else 256 * 1024 * 1024
    serve(0, out_fd, memory_limit)


if __name__ == "__main__":
    main()
