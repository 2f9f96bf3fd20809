"""Run rule scripts in worker processes, with a time limit per run and a memory bound per worker.

A :class:`ScriptPool` owns a few worker processes (``forkserver``, so workers are forked from a
clean, single-threaded server rather than from the asyncio node). Each run sends one JSON job over a
pipe and waits at most ``time_limit`` seconds; a worker that overruns, dies, or answers too much is
killed (SIGKILL) and replaced, so an endless loop or a 10 GB allocation costs the node nothing but
that worker. Memory is bounded inside the worker with ``RLIMIT_AS`` (see :mod:`node.rules._worker`).

Thread-safe and blocking: async callers use ``asyncio.to_thread`` (see ``CompiledRules.*_async``).
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import queue
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from node.rules.errors import RuleError

DEFAULT_TIME_LIMIT = 1.0  # seconds per run
DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024  # bytes a worker may add to its address space
MAX_ANSWER_BYTES = 64 * 1024 * 1024
START_TIMEOUT = 60.0  # seconds for a fresh worker to report ready (first forkserver start is slow)


class ScriptTimeout(RuleError):
    pass


class _Worker:
    def __init__(self, ctx: Any, memory_limit: int) -> None:
        from node.rules import _worker

        parent, child = ctx.Pipe(duplex=True)
        self.conn: Connection = parent
        self.proc: BaseProcess = ctx.Process(
            target=_worker.serve, args=(child, memory_limit), name="tandem-rule-script", daemon=True
        )
        self.proc.start()
        child.close()
        if not self.conn.poll(START_TIMEOUT):
            self.kill()
            raise RuleError("the script worker did not start")
        try:
            self.conn.recv_bytes(1024)
        except (EOFError, OSError):
            self.kill()
            raise RuleError("the script worker failed to start") from None

    def call(self, payload: bytes, time_limit: float) -> dict[str, Any]:
        try:
            self.conn.send_bytes(payload)
        except (OSError, ValueError):
            self.kill()
            raise RuleError("the script worker is gone") from None
        if not self.conn.poll(time_limit):
            self.kill()
            raise ScriptTimeout(
                f"the script ran longer than its time limit ({time_limit:g} s) and was stopped"
            )
        try:
            raw = self.conn.recv_bytes(MAX_ANSWER_BYTES)
        except EOFError:
            code = self.kill()
            why = " (killed: memory limit?)" if code is not None and code < 0 else ""
            raise RuleError(f"the script worker died{why}") from None
        except OSError:
            self.kill()
            raise RuleError("the script produced too much output") from None
        answer = json.loads(raw)
        if not isinstance(answer, dict):
            self.kill()
            raise RuleError("the script worker answered nonsense")
        return answer

    def alive(self) -> bool:
        return self.proc.is_alive() and not self.conn.closed

    def kill(self) -> int | None:
        try:
            self.proc.kill()
            self.proc.join(5)
        except (OSError, ValueError, AssertionError):
            pass
        try:
            self.conn.close()
        except OSError:
            pass
        return self.proc.exitcode


class ScriptPool:
    """A small pool of script workers. ``size`` bounds concurrent runs; workers start lazily."""

    def __init__(
        self,
        size: int = 2,
        *,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        start_method: str = "forkserver",
    ) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self.memory_limit = memory_limit
        self._ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # Only takes effect if the forkserver is not running yet; harmless otherwise.
            self._ctx.set_forkserver_preload(["node.rules._worker"])
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
            return _Worker(self._ctx, self.memory_limit)
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
