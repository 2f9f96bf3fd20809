"""Run rule scripts in worker processes, with a time limit per run and a memory bound per worker.

A :class:`ScriptPool` owns a few worker processes (``python -m node.rules._worker``: a fresh
interpreter, nothing inherited from the asyncio node). Each run sends one JSON job over a pipe and
waits at most ``time_limit`` seconds; a worker that overruns, dies, or answers too much is
killed (SIGKILL) and replaced, so an endless loop or a 10 GB allocation costs the node nothing but
that worker. Memory is bounded inside the worker with ``RLIMIT_AS`` (see :mod:`node.rules._worker`).

Thread-safe and blocking: async callers use ``asyncio.to_thread`` (see ``CompiledRules.*_async``).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from node.rules.errors import RuleError

DEFAULT_TIME_LIMIT = 1.0  # seconds per run
DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024  # bytes a worker may add to its address space
MAX_ANSWER_BYTES = 64 * 1024 * 1024
START_TIMEOUT = 30.0  # seconds for a fresh worker to start and report ready
_ROOT = str(Path(__file__).resolve().parents[2])  # so the worker imports this very ``node`` package


_WORKER_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")


class ScriptTimeout(RuleError):
    pass


class _Worker:
    """One ``python -m node.rules._worker`` process speaking length-prefixed JSON on stdin/stdout.

    A plain subprocess (not multiprocessing): nothing of the node — not even its ``__main__`` — is
    imported into the worker, and nothing is pickled either way."""

    def __init__(self, memory_limit: int) -> None:
        # Only what Python needs: the node's environment holds secrets (the tracker token may come
        # from $TANDEM_TRACKER_TOKEN) that a script must never be able to reach, sandbox or not.
        env = {k: os.environ[k] for k in _WORKER_ENV if k in os.environ}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-s", "-m", "node.rules._worker", str(memory_limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        try:
            self._read_frame(time.monotonic() + START_TIMEOUT, 1024)
        except RuleError:
            self.kill()
            raise RuleError("the script worker failed to start") from None

    def _read_exact(self, n: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        while n > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._out], [], [], remaining)[0]:
                raise _Overtime()
            chunk = os.read(self._out, min(n, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _read_frame(self, deadline: float, limit: int) -> bytes:
        try:
            size = int.from_bytes(self._read_exact(4, deadline), "big")
            if size > limit:
                raise RuleError("the script produced too much output")
            return self._read_exact(size, deadline)
        except (EOFError, OSError):
            raise RuleError("the script worker stopped") from None
        except _Overtime:
            raise RuleError("the script worker did not answer") from None

    def call(self, payload: bytes, time_limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + time_limit
        try:
            os.write(self._in, len(payload).to_bytes(4, "big"))
            view = memoryview(payload)
            while view:
                view = view[os.write(self._in, view) :]
        except OSError:
            self.kill()
            raise RuleError("the script worker is gone") from None
        try:
            size = int.from_bytes(self._read_exact(4, deadline), "big")
            if size > MAX_ANSWER_BYTES:
                self.kill()
                raise RuleError("the script produced too much output")
            raw = self._read_exact(size, deadline + 5.0)  # the answer is on its way: let it arrive
        except _Overtime:
            self.kill()
            raise ScriptTimeout(
                f"the script ran longer than its time limit ({time_limit:g} s) and was stopped"
            ) from None
        except (EOFError, OSError):
            code = self.kill()
            why = " (killed: memory limit?)" if code is not None and code < 0 else ""
            raise RuleError(f"the script worker died{why}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            self.kill()
            raise RuleError("the script worker answered nonsense")
        return answer

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> int | None:
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        return self.proc.returncode


class _Overtime(Exception):
    pass


class ScriptPool:
    """A small pool of script workers. ``size`` bounds concurrent runs; workers start lazily."""

    def __init__(self, size: int = 2, *, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self.memory_limit = memory_limit
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._started = 0
        self._closed = False
        self.runs = 0
        self.restarts = 0

    def run(self, job: dict[str, Any], time_limit: float = DEFAULT_TIME_LIMIT) -> dict[str, Any]:
        """Run one job; returns the worker's JSON answer. Raises RuleError (ScriptTimeout on time)."""
        payload = json.dumps(job, allow_nan=False).encode()
        worker = self._acquire(wait=max(30.0, time_limit * 4))
        ok = False
        try:
            answer = worker.call(payload, time_limit)
            ok = not answer.get("memory")  # a worker that hit its memory bound is recycled
            return answer
        finally:
            self.runs += 1
            self._release(worker, ok)

    def _acquire(self, wait: float) -> _Worker:
        deadline = time.monotonic() + wait
        while True:
            with self._lock:
                if self._closed:
                    raise RuleError("the script pool is closed")
                try:
                    return self._idle.get_nowait()
                except queue.Empty:
                    pass
                if self._started < self.size:
                    self._started += 1
                    break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuleError("no script worker became free in time")
            try:
                worker = self._idle.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            return worker
        try:
            return _Worker(self.memory_limit)
        except BaseException:
            with self._lock:
                self._started -= 1
            raise

    def _release(self, worker: _Worker, ok: bool) -> None:
        if ok and worker.alive() and not self._closed:
            self._idle.put(worker)
            return
        worker.kill()
        with self._lock:
            self._started -= 1
            self.restarts += 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                self._idle.get_nowait().kill()
            except queue.Empty:
                break


_default: ScriptPool | None = None
_default_lock = threading.Lock()


def default_pool() -> ScriptPool:
    """The process-wide pool (2 workers, 256 MiB each), created on first use, closed at exit."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = ScriptPool()
            atexit.register(_default.close)
        return _default
