"""What every tracker emulator shares: fault injection, request accounting, asynchronous webhook
delivery, the start/stop lifecycle of the aiohttp site, the common ``/_emulator`` control routes and
the foreground loop behind ``tandem emulate``.

Each tracker's emulator subclasses these and adds only what its tracker does differently (its rate
limit rules, its webhook headers, its state). Nothing here knows a tracker's REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import aiohttp
import click
from aiohttp import web

log = logging.getLogger(__name__)

Item = TypeVar("Item")

# ---------------------------------------------------------------------------------------------------
# Faults and stats (driven by ``POST /_emulator/faults``, read by ``GET /_emulator/stats``)


class FaultSpecError(ValueError):
    pass


def spec_number(spec: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    """``spec[key]`` (or ``default``) as a number in ``[lo, hi]``; a clear error otherwise."""
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise FaultSpecError(f"'{key}' must be a number between {lo} and {hi}")
    return float(value)


@dataclass
class BaseFaults:
    """Injected errors and latency for API requests. A subclass adds its tracker's rate limits by
    naming the extra spec keys in ``EXTRA_KEYS`` and overriding :meth:`_read_spec` / :meth:`_extra_dict`."""

    EXTRA_KEYS: ClassVar[frozenset[str]] = frozenset()

    error_rate: float = 0.0  # probability of answering ``status`` instead of serving
    status: int = 503
    latency_ms: float = 0.0
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def from_spec(cls, spec: Any) -> Self:
        if not isinstance(spec, dict):
            raise FaultSpecError("the fault spec must be a JSON object")
        unknown = set(spec) - {"error_rate", "status", "latency_ms", "seed"} - cls.EXTRA_KEYS
        if unknown:
            raise FaultSpecError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        faults = cls(
            error_rate=spec_number(spec, "error_rate", 0.0, 0.0, 1.0),
            status=int(spec_number(spec, "status", 503, 400, 599)),
            latency_ms=spec_number(spec, "latency_ms", 0.0, 0.0, 60000.0),
        )
        seed = spec.get("seed")
        if seed is not None:
            if not isinstance(seed, int) or isinstance(seed, bool):
                raise FaultSpecError("'seed' must be an integer")
            faults.seed = seed
            faults._rng.seed(seed)
        faults._read_spec(spec)
        return faults

    def _read_spec(self, spec: dict[str, Any]) -> None:
        """Read the tracker-specific keys of an already checked spec."""

    def _extra_dict(self) -> dict[str, Any]:
        return {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "error_rate": self.error_rate,
            "status": self.status,
            "latency_ms": self.latency_ms,
            **self._extra_dict(),
            "seed": self.seed,
        }

    def should_fail(self) -> bool:
        return self.error_rate > 0 and self._rng.random() < self.error_rate


@dataclass
class BaseStats:
    total: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    injected_errors: int = 0
    rate_limited: int = 0

    def count(self, route: str) -> None:
        self.total += 1
        self.by_route[route] = self.by_route.get(route, 0) + 1

    def status(self, code: int) -> None:
        key = str(code)
        self.by_status[key] = self.by_status.get(key, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "routes": dict(sorted(self.by_route.items())),
            "statuses": dict(sorted(self.by_status.items())),
            "injectedErrors": self.injected_errors,
            "rateLimited": self.rate_limited,
        }


# ---------------------------------------------------------------------------------------------------
# Webhook delivery


@dataclass
class BaseDeliveryStats:
    queued: int = 0
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "delivered": self.delivered,
            "failed": self.failed,
            "dropped": self.dropped,
            "lastError": self.last_error,
        }


Stats_co = TypeVar("Stats_co", bound=BaseDeliveryStats)


class DeliveryQueue(Generic[Item, Stats_co]):
    """A bounded queue and a few workers that POST each item.

    The API never waits for a receiver: :meth:`enqueue` drops (and counts) an item when the queue
    is full, and each POST has a timeout, so a slow or dead receiver costs only its own deliveries.
    A subclass says what to send (:meth:`request`) and may record the outcome (:meth:`finished`).
    """

    task_name: ClassVar[str] = "emu-webhook"

    def __init__(self, stats: Stats_co, *, max_queue: int, workers: int, timeout: float) -> None:
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=max_queue)
        self._workers = workers
        self._timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.stats = stats

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"{self.task_name}-{i}") for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def put(self, item: Item) -> bool:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            return False
        self.stats.queued += 1
        return True

    async def drain(self, wait: float = 10.0) -> None:
        """Wait until every item queued so far was attempted (tests, shutdown)."""
        await asyncio.wait_for(self._queue.join(), wait)

    def request(self, item: Item) -> tuple[str, bytes, dict[str, str]]:
        """``(url, body, headers)`` to POST for ``item``."""
        raise NotImplementedError

    def finished(self, item: Item, status: int | None, error: BaseException | None) -> None:
        """Called once per attempt: the receiver's status (``None`` without an answer) and the
        error when the delivery failed (also for a status of 300 or more)."""

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._post(item)
            finally:
                self._queue.task_done()

    async def _post(self, item: Item) -> None:
        assert self._session is not None
        url, body, headers = self.request(item)
        status: int | None = None
        try:
            async with self._session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                status = resp.status
                if resp.status >= 300:
                    raise aiohttp.ClientResponseError(
                        resp.request_info, (), status=resp.status, message=f"receiver answered {resp.status}"
                    )
            self.stats.delivered += 1
            self.finished(item, status, None)
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            # Real trackers retry a few times (GitHub does not); the emulator records the failure.
            self.stats.failed += 1
            self.stats.last_error = f"{url}: {err!r}"
            log.info("webhook delivery to %s failed: %r", url, err)
            self.finished(item, status, err)


# ---------------------------------------------------------------------------------------------------
# The application and its lifecycle


class EmulatorApp:
    """State every emulator app keeps (faults, stats, webhook queue, its own URL) and the control
    routes whose JSON is the same for every tracker."""

    faults: BaseFaults
    stats: BaseStats
    dispatcher: DeliveryQueue[Any, Any]
    base_url: str

    def build(self) -> web.Application:
        raise NotImplementedError

    async def ctl_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats.as_dict(), "webhooks": self.dispatcher.stats.as_dict()})

    async def ctl_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.as_dict())

    async def ctl_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response(self.dispatcher.stats.as_dict())


class Emulator:
    """Start an emulator app on a local port, deliver its webhooks, stop cleanly.

    Subclasses set :attr:`app` and may hook :meth:`_started` / :meth:`_stopping` / :meth:`_stopped`.
    """

    app: EmulatorApp
    base_url: str | None = None
    _runner: web.AppRunner | None = None

    def _describe(self) -> str:
        return type(self).__name__

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        runner = web.AppRunner(self.app.build(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = getattr(site._server, "sockets", None)
        assert sockets, "the site did not bind a socket"
        bound = sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        self.base_url = f"http://{shown}:{bound[1]}"
        self.app.base_url = self.base_url
        await self.app.dispatcher.start()
        self._started()
        log.info("%s listening on %s", self._describe(), self.base_url)
        return self.base_url

    async def stop(self) -> None:
        await self._stopping()
        await self.app.dispatcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._stopped()

    def _started(self) -> None:
        """After the site listens and webhook delivery runs."""

    async def _stopping(self) -> None:
        """Before webhook delivery and the site stop."""

    def _stopped(self) -> None:
        """After the site stopped."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class _Startable(Protocol):
    async def start(self, host: str = ..., port: int = ...) -> str: ...

    async def stop(self) -> None: ...


async def serve_foreground(
    emu: _Startable,
    host: str,
    port: int,
    *,
    ready: Callable[[str], str],
    stopped: str = "Emulator stopped",
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Start ``emu``, print the line ``ready(base_url)`` once listening, serve until SIGINT/SIGTERM
    (or ``stop``), stop it and print ``stopped``. A port that cannot be bound is a clear
    :class:`click.ClickException`, not a traceback."""
    try:
        base = await emu.start(host=host, port=port)
    except OSError as err:
        raise click.ClickException(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # not on Windows' loops, nor outside the main thread
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    click.echo(ready(base))
    sys.stdout.flush()
    if on_ready is not None:
        on_ready(base)
    try:
        await stop.wait()
    finally:
        await emu.stop()
        click.echo(stopped)
