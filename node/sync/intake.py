"""Tracker intake: how a node learns that a local issue changed, and tells the sync engine.

Three ways in, one way out (:meth:`ChangeSink.local_change`, implemented by the sync engine):

* **Webhooks.** Where the tracker can reach the node (a public node, or ``tracker.webhook_url``) a
  webhook is registered at start, pointing at ``<base>/webhooks/<secret path>``. The path segment is
  random, kept in the store and compared in constant time; where the tracker signs deliveries the
  adapter also checks the signature. A delivery is parsed at once (bad bodies are a 400, counted)
  and its issues are put on an in-memory queue; the HTTP response never waits for a tracker call.
  A few workers drain the queue; an issue already waiting is not queued twice, and an issue being
  processed is queued again, not run twice at once (bursts coalesce). An event whose actor is the
  proxy user (the node's own write coming back) is counted (``echo_skipped``) and dropped before any
  tracker call: the engine recorded that write's outcome itself (DESIGN.md, intake). Every event
  names the actor of its one change, so a person's edit right after ours is its own event and goes
  through; polling and reconciliation still compare fingerprints.
  Registration is replace-on-start: the id of the previous registration (kept in the store's
  ``cursors`` table) is unregistered and a new one made, so restarts never pile registrations up
  and a webhook deleted by someone on the tracker comes back at the next start.
* **Polling**, always (it is the safety net for missed webhooks): every ``poll_seconds`` (or the
  slower ``poll_seconds_webhooks`` while a webhook is registered) ``adapter.changed_since(cursor)``.
  Each change is handed to the engine directly, and only then does the cursor (in ``cursors``) move
  forward, to the newest ``updated`` seen. On a first start the cursor begins a few minutes back,
  not at the beginning of history (bulk sync is for that).
* **Reconciliation**: every ``reconcile_seconds`` the engine recomputes the replicas of every
  twinned issue (``engine.reconcile()`` when it has one, else ``local_change(reason="reconcile")``
  for each linked twin); the engine decides whether anything changed.

The tracker's credentials are checked at start (:meth:`TrackerAdapter.check`). Wrong credentials
give one clear log line naming the tracker and the user, never the token; the check is retried in
the background with backoff, and everything else of the node (pairing, queues) runs meanwhile. A
state change is logged once, not on every retry. This module never logs request bodies or tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import inspect
import json
import logging
import random
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from node.config import Config
from node.store import Database
from node.sync.store import get_cursor, set_cursor
from node.tasks import cancel_and_wait
from node.trackers.base import (
    TrackerAccount,
    TrackerAdapter,
    TrackerAuthError,
    TrackerError,
    TrackerEvent,
    TrackerNotFound,
    WebhookError,
)
from node.trackers.registry import TrackerHandle, open_tracker, signs_webhooks
from protocol.replica import UserRef

if TYPE_CHECKING:
    from node.connections import ConnectionManager
    from node.sync.engine import SyncEngine

log = logging.getLogger("tandem.intake")

TrackerState = Literal["unknown", "ok", "auth_failed", "unreachable", "error"]
TRACKER_STATES: tuple[TrackerState, ...] = ("unknown", "ok", "auth_failed", "unreachable", "error")
WebhookState = Literal["off", "unreachable", "pending", "registered", "degraded", "failed"]

WEBHOOK_PREFIX = "/webhooks/"
CURSOR_POLL = "intake.poll"  # ISO timestamp: poll from here on the next run
CURSOR_WEBHOOK = "intake.webhook"  # JSON {"id", "url"}: the current registration
CURSOR_PATH = "intake.webhook_path"  # the secret path segment
CURSOR_SIGNING = "intake.webhook_secret"  # the signing secret given to the tracker

MAX_PENDING = 100_000  # issues waiting; beyond this a delivery is dropped (polling catches it)
_REJECT_REASONS = ("unknown_path", "invalid", "signature", "oversized")


class ChangeSink(Protocol):
    """What intake calls: the sync engine (``node.sync.service.SyncService.local_change``)."""

    async def local_change(self, issue_id_or_key: str, *, reason: str = "webhook") -> None: ...


@dataclass(frozen=True)
class IntakeSettings:
    poll_seconds: float = 3.0
    poll_seconds_webhooks: float = 60.0
    reconcile_seconds: float = 300.0  # 0: no reconciliation
    register_webhooks: bool = True  # false: webhooks off, or the tracker cannot reach the node
    sign_webhooks: bool = False
    projects: list[str] = field(default_factory=list)
    first_poll_window: float = 300.0  # first start: poll changes of the last few minutes only
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 300.0
    workers: int = 4
    # a change polling finds this long after it happened, with no delivery for it, was missed
    missed_grace_seconds: float = 60.0
    reregister_seconds: float = 600.0  # at most one re-registration per this, after misses


class IntakeMetrics:
    """Intake's Prometheus series, on the node's own registry."""

    def __init__(self, registry: CollectorRegistry | None, state: Callable[[], TrackerState]) -> None:
        r = registry or CollectorRegistry(auto_describe=True)
        self.webhooks_received = Counter(
            "tandem_webhook_deliveries", "Webhook deliveries accepted from the tracker", registry=r
        )
        self.webhooks_rejected = Counter(
            "tandem_webhook_rejected", "Webhook deliveries refused, by reason", ["reason"], registry=r
        )
        for reason in _REJECT_REASONS:
            self.webhooks_rejected.labels(reason)
        self.missed = Counter(
            "tandem_webhook_missed", "Changes found by polling that no webhook announced", registry=r
        )
        self.polls = Counter("tandem_poll_runs", "Tracker polls, by result", ["result"], registry=r)
        for result in ("ok", "failed"):
            self.polls.labels(result)
        self.changes = Counter(
            "tandem_intake_changes",
            "Local changes handed to the sync engine, by source (echo_skipped: not handed over)",
            ["reason"],
            registry=r,
        )
        self.poll_lag = Gauge(
            "tandem_poll_lag_seconds", "Seconds since the start of the last successful poll", registry=r
        )
        self.queue = Gauge("tandem_intake_queue", "Issues waiting for the sync engine", registry=r)
        self.tracker_state = Gauge(
            "tandem_tracker_state", "1 for the tracker's current state", ["state"], registry=r
        )
        for name in TRACKER_STATES:
            self.tracker_state.labels(name).set_function(_is_state(state, name))


def _is_state(state: Callable[[], TrackerState], name: TrackerState) -> Callable[[], float]:
    return lambda: 1.0 if state() == name else 0.0


def _backoff(attempt: int, base: float, cap: float) -> float:
    """Full jitter, at least a tenth of the ceiling so a failing tracker is not hammered."""
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return random.uniform(ceiling / 10, ceiling)


def same_user(a: UserRef | None, b: UserRef | None) -> bool:
    """The same tracker account: any of account id, username, email equal (case-insensitive).
    Intake and the engine both use it to recognise the proxy user, i.e. the node's own writes."""
    if a is None or b is None:
        return False
    for x, y in ((a.account_id, b.account_id), (a.username, b.username), (a.email, b.email)):
        if x and y and x.casefold() == y.casefold():
            return True
    return False


def _linked_twins(c: sqlite3.Connection) -> list[str]:
    rows = c.execute(
        "SELECT DISTINCT local_id FROM twins"
        " WHERE state = 'linked' AND local_id IS NOT NULL ORDER BY local_id"
    ).fetchall()
    return [str(r[0]) for r in rows]


class Intake:
    """Webhooks in, polling, reconciliation → :meth:`ChangeSink.local_change`.

    ``webhook_base`` is the URL the tracker can reach this node at (``None``: it cannot, poll
    only). ``describe`` names the tracker in log lines (``Jira Cloud at https://…``) and ``user``
    the proxy user, for the credentials message."""

    def __init__(
        self,
        adapter: TrackerAdapter,
        sink: ChangeSink,
        db: Database,
        settings: IntakeSettings,
        *,
        describe: str,
        user: str | None = None,
        webhook_base: str | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.adapter = adapter
        self.sink = sink
        self.db = db
        self.settings = settings
        self.describe = describe
        self.user = user
        self.webhook_base = webhook_base.rstrip("/") if webhook_base else None
        self._clock = clock
        self.metrics = IntakeMetrics(registry, lambda: self.state)
        self._echo_skipped = self.metrics.changes.labels("echo_skipped")  # per delivery: looked up once
        self.state: TrackerState = "unknown"
        self.state_message = "not checked yet"
        self.account: TrackerAccount | None = None
        self.webhook_state: WebhookState = "pending"
        if not settings.register_webhooks:
            self.webhook_state = "off"
        elif self.webhook_base is None:
            self.webhook_state = "unreachable"
        self.webhook_id: str | None = None
        self.last_poll_at: float | None = None
        self._path: str | None = None
        self._pending: dict[str, str] = {}  # issue id -> reason, in arrival order
        self._inflight: set[str] = set()
        self._has_work = asyncio.Event()
        self._poll_now = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._checked = asyncio.Event()
        self._seen: dict[str, dt.datetime] = {}  # issue id -> updated, queued by polling
        self._delivered: dict[str, float] = {}  # issue id -> when a webhook last named it
        # issue id -> the newest change time (the tracker's clock) a webhook reported for it
        self._reported: dict[str, dt.datetime] = {}
        self._registered_at: float | None = None
        self._reregistered_at: float | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self.metrics.poll_lag.set_function(
            lambda: (self._clock() - self.last_poll_at) if self.last_poll_at is not None else -1.0
        )
        self.metrics.queue.set_function(lambda: float(len(self._pending) + len(self._inflight)))

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self.prepare()
        for i in range(max(1, self.settings.workers)):
            self._spawn(self._worker(), f"intake-worker-{i}")
        self._spawn(self._run(), "intake")

    async def prepare(self) -> None:
        """Load (or make) the secret webhook path, and restore the signing secret the tracker was
        given, so signatures are checked from the first delivery after a restart (not only once
        the webhook is registered again); :meth:`start` does this first."""
        if self._path is None:
            self._path = await self.db.write(self._load_path)
        if self.settings.sign_webhooks and self.adapter.webhook_secret is None:
            signing = await self.db.read(lambda c: get_cursor(c, CURSOR_SIGNING))
            if signing:
                self.adapter.webhook_secret = signing

    async def stop(self) -> None:
        """Cancel the loops. The webhook stays registered (the next start replaces it)."""
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    @staticmethod
    def _load_path(c: sqlite3.Connection) -> str:
        path = get_cursor(c, CURSOR_PATH)
        if not path:
            path = secrets.token_urlsafe(32)
            set_cursor(c, CURSOR_PATH, path)
        return path

    # -- state -----------------------------------------------------------------------------------

    def _set_state(self, state: TrackerState, message: str) -> None:
        if state != self.state:
            if state == "ok":
                log.info("tracker: %s: %s", self.describe, message)
            else:
                log.warning("tracker: %s: %s", self.describe, message)
        self.state, self.state_message = state, message

    def health(self) -> dict[str, Any]:
        """For the admin API and ``/healthz`` (the tracker's address is not in it)."""
        lag = None if self.last_poll_at is None else round(self._clock() - self.last_poll_at, 3)
        return {
            "state": self.state,
            "message": self.state_message,
            "webhooks": self.webhook_state,
            "poll_lag_seconds": lag,
            "queued": len(self._pending) + len(self._inflight),
        }

    def _explain(self, exc: BaseException) -> tuple[TrackerState, str]:
        status = getattr(exc, "status", None)
        code = f" ({status})" if status else ""
        if isinstance(exc, TrackerAuthError):
            who = f"for user {self.user!r}" if self.user else "(the token)"
            return "auth_failed", f"the credentials {who} were rejected{code}"
        if isinstance(exc, TrackerError):
            return "unreachable", f"not usable{code}: {exc}"
        if isinstance(exc, OSError | TimeoutError):
            return "unreachable", f"cannot be reached: {exc.__class__.__name__}: {exc}"
        return "error", f"unexpected failure: {exc.__class__.__name__}: {exc}"

    # -- the supervisor: check, register, poll ---------------------------------------------------

    async def _run(self) -> None:
        await self._check_until_ok()
        if self.webhook_state == "pending":
            self._spawn(self._register_until_ok(), "intake-webhook")
        if self.settings.reconcile_seconds > 0:
            self._spawn(self._reconcile_loop(), "intake-reconcile")
        await self._poll_loop()

    async def _check_until_ok(self) -> None:
        attempt = 0
        while True:
            try:
                self.account = await self.adapter.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                state, message = self._explain(exc)
                if state == "error":
                    log.exception("tracker: %s: check failed", self.describe)
                self._set_state(state, message)
                attempt += 1
                await self._sleep(
                    _backoff(attempt, self.settings.retry_base_seconds, self.settings.retry_max_seconds)
                )
                continue
            name = self.account.user.display_name or self.account.user.username or self.user or "?"
            self._set_state("ok", f"connected as {name!r}")
            self._checked.set()
            return

    async def _register_until_ok(self) -> None:
        attempt = 0
        while True:
            try:
                await self.register_webhook()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.webhook_state != "failed":
                    log.warning(
                        "tracker: %s: cannot register the webhook (%s); polling every %gs meanwhile",
                        self.describe,
                        self._explain(exc)[1],
                        self.settings.poll_seconds,
                    )
                self.webhook_state = "failed"
                attempt += 1
                await self._sleep(
                    _backoff(attempt, self.settings.retry_base_seconds, self.settings.retry_max_seconds)
                )

    @property
    def webhook_path(self) -> str | None:
        """``/webhooks/<secret>`` once started."""
        return WEBHOOK_PREFIX + self._path if self._path else None

    async def register_webhook(self) -> str:
        """Replace this node's previous registration (if any) with one for the current URL."""
        if self.webhook_base is None or self._path is None:
            raise RuntimeError("intake has no webhook URL (not started, or the tracker cannot reach it)")
        url = self.webhook_base + WEBHOOK_PREFIX + self._path
        previous, signing = await self.db.read(
            lambda c: (get_cursor(c, CURSOR_WEBHOOK), get_cursor(c, CURSOR_SIGNING))
        )
        if previous:
            old_id = str(json.loads(previous).get("id") or "")
            if old_id:
                try:
                    await self.adapter.unregister_webhook(old_id)
                except TrackerNotFound:
                    pass  # deleted on the tracker meanwhile
        secret: str | None = None
        if self.settings.sign_webhooks:
            secret = signing or secrets.token_urlsafe(32)
        webhook_id = await self.adapter.register_webhook(url, secret=secret)

        def remember(c: sqlite3.Connection) -> None:
            set_cursor(c, CURSOR_WEBHOOK, json.dumps({"id": webhook_id, "url": url}))
            if secret:
                set_cursor(c, CURSOR_SIGNING, secret)

        await self.db.write(remember)
        self.webhook_id = webhook_id
        self._registered_at = self._clock()
        if self.webhook_state != "registered":
            log.info("tracker: %s: webhook %s registered", self.describe, webhook_id)
        self.webhook_state = "registered"
        self._poll_now.set()  # re-arm the poll timer at the slower pace
        return webhook_id

    def poll_interval(self) -> float:
        if self.webhook_state == "registered":
            return max(self.settings.poll_seconds, self.settings.poll_seconds_webhooks)
        return self.settings.poll_seconds

    def poll_now(self) -> None:
        """Run the next poll at once (admin, tests)."""
        self._poll_now.set()

    async def _poll_loop(self) -> None:
        failures = 0
        while True:
            self._poll_now.clear()
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.polls.labels("failed").inc()
                state, message = self._explain(exc)
                if state == "error":
                    log.exception("tracker: %s: poll failed", self.describe)
                self._set_state(state, message)
                failures += 1
                wait = max(
                    self.poll_interval(),
                    _backoff(failures, self.settings.retry_base_seconds, self.settings.retry_max_seconds),
                )
            else:
                failures = 0
                wait = self.poll_interval()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # (not wait_for: see node/tasks.py)
                    await self._poll_now.wait()

    async def poll_once(self) -> int:
        """One poll: every change since the cursor → the engine; then the cursor moves. Returns the
        number of issues handed over."""
        started = self._clock()
        stored = await self.db.read(lambda c: get_cursor(c, CURSOR_POLL))
        if stored:
            since = dt.datetime.fromisoformat(stored)
        else:
            since = dt.datetime.fromtimestamp(started - self.settings.first_poll_window, dt.UTC)
        newest = since
        handed = missed = 0
        try:
            takes_snapshots = "snapshot" in inspect.signature(self.sink.local_change).parameters
        except (TypeError, ValueError):
            takes_snapshots = False
        unsaved = 0
        listed = since  # the newest change the listing showed, handed over or already reported

        def known(issue_id: str, updated: dt.datetime) -> bool:
            """A webhook reported a change of this issue at least as recent (both in the tracker's
            clock): it was handed over then (or dropped as the node's own write); not read again."""
            nonlocal listed
            if updated.tzinfo is None:
                updated = updated.replace(tzinfo=dt.UTC)
            reported = self._reported.get(issue_id)
            if reported is None or reported < updated:
                return False
            listed = max(listed, updated)
            return True

        async for snap in self.adapter.changed_since(
            since, projects=self.settings.projects or None, known=known
        ):
            updated = snap.updated or since
            if updated.tzinfo is None:
                updated = updated.replace(tzinfo=dt.UTC)
            seen = self._seen.get(snap.id)
            if seen is not None and updated <= seen:
                continue  # the overlap the adapter adds at page and clock boundaries
            if takes_snapshots:  # the engine need not read again what polling just read
                await self.sink.local_change(snap.id, reason="poll", snapshot=snap)  # type: ignore[call-arg]
            else:
                await self.sink.local_change(snap.id, reason="poll")
            self.metrics.changes.labels("poll").inc()
            self._seen[snap.id] = updated
            handed += 1
            missed += self._was_missed(snap.id, updated.timestamp())
            if updated > newest:
                newest = updated
                unsaved += 1
                if unsaved >= 50:  # oldest first: everything before ``newest`` is handed over
                    await self._save_cursor(newest)
                    unsaved = 0
        # Only now may the cursor pass the issues the webhooks reported: everything listed before
        # them was handed over (a crash mid-poll re-lists from the last cursor saved above).
        newest = max(newest, listed)
        await self._save_cursor(newest)
        floor = newest - dt.timedelta(hours=1)
        self._seen = {k: v for k, v in self._seen.items() if v >= floor}
        self._reported = {k: v for k, v in self._reported.items() if v >= floor}
        self._delivered = {k: v for k, v in self._delivered.items() if v >= started - 3600}
        if missed:
            self._on_missed(missed)
        self.last_poll_at = started
        self.metrics.polls.labels("ok").inc()
        if self.state != "ok":
            self._set_state("ok", "reachable again")
        return handed

    def _was_missed(self, issue_id: str, updated: float) -> bool:
        """A change made well after the webhook was registered, old enough that its delivery
        should have come, with no delivery naming the issue since: the webhook missed it. The grace
        also absorbs clock skew between the tracker and the node."""
        if self.webhook_state not in ("registered", "degraded") or self._registered_at is None:
            return False
        grace = self.settings.missed_grace_seconds
        if updated <= self._registered_at + grace or updated >= self._clock() - grace:
            return False
        return self._delivered.get(issue_id, float("-inf")) < updated - grace

    def _on_missed(self, count: int) -> None:
        """Webhooks are not arriving (blocked, deleted on the tracker, tracker trouble): poll at
        the fast pace, and register again (not more often than ``reregister_seconds``)."""
        self.metrics.missed.inc(count)
        if self.webhook_state == "registered":
            log.warning(
                "tracker: %s: %d change(s) arrived by polling, not by webhook; polling every %gs",
                self.describe,
                count,
                self.settings.poll_seconds,
            )
            self.webhook_state = "degraded"
        now = self._clock()
        if self._reregistered_at is None or now - self._reregistered_at >= self.settings.reregister_seconds:
            self._reregistered_at = now
            self._spawn(self._register_until_ok(), "intake-webhook")

    async def _save_cursor(self, at: dt.datetime) -> None:
        value = at.astimezone(dt.UTC).isoformat()
        await self.db.write(lambda c: set_cursor(c, CURSOR_POLL, value))

    # -- reconciliation --------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            await self._sleep(self.settings.reconcile_seconds)
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("tracker: %s: reconciliation failed", self.describe)

    async def reconcile(self) -> int:
        """Ask the engine to recompute every twinned issue. Returns the number handed over (-1 when
        the engine reconciles by itself)."""
        own: Callable[[], Awaitable[Any]] | None = getattr(self.sink, "reconcile", None)
        if own is not None:
            await own()
            self.metrics.changes.labels("reconcile").inc()
            return -1
        ids = await self.db.read(_linked_twins)
        for issue_id in ids:
            await self.sink.local_change(issue_id, reason="reconcile")
            self.metrics.changes.labels("reconcile").inc()
        return len(ids)

    # -- webhooks --------------------------------------------------------------------------------

    def path_matches(self, segment: str) -> bool:
        return self._path is not None and hmac.compare_digest(segment.encode(), self._path.encode())

    def reject(self, reason: str) -> None:
        self.metrics.webhooks_rejected.labels(reason).inc()

    def accept_webhook(self, headers: Mapping[str, str], body: bytes) -> int:
        """Parse one delivery and queue its issues. Raises :class:`WebhookError` (counted) for a
        body or signature that cannot be accepted. Never calls the tracker."""
        try:
            events = self.adapter.parse_webhook(headers, body)
        except WebhookError as exc:
            self.reject("signature" if "signature" in str(exc).lower() else "invalid")
            raise
        except Exception as exc:  # a parser bug must not become a 500 with a traceback
            log.exception("tracker: %s: webhook parser failed", self.describe)
            self.reject("invalid")
            raise WebhookError(f"webhook body not understood ({exc.__class__.__name__})") from exc
        self.metrics.webhooks_received.inc()
        if not events:
            return 0
        now = self._clock()
        if self.webhook_state == "degraded":
            self.webhook_state = "registered"
        proxy = self._proxy()
        for event in events:
            self._delivered[event.issue_id] = now
            if same_user(event.actor, proxy):
                # The node's own write coming back: the engine recorded its outcome when it wrote.
                # Each event names the actor of its one change, so a person's edit is never here.
                # Nothing is logged per delivery (a bulk sync echoes every write it makes).
                self._echo_skipped.inc()
                self._report(event)
                continue
            if self.enqueue(event.issue_id, "webhook"):  # a full queue: polling must catch it
                self._report(event)
        return len(events)

    def _report(self, event: TrackerEvent) -> None:
        """Remember the newest change time a webhook reported for the issue (see ``poll_once``)."""
        if event.at is None:
            return
        at = event.at if event.at.tzinfo is not None else event.at.replace(tzinfo=dt.UTC)
        seen = self._reported.get(event.issue_id)
        if seen is None or at > seen:
            self._reported[event.issue_id] = at

    def _proxy(self) -> UserRef | None:
        """The tracker account the node writes as (known once the credentials were checked)."""
        if self.account is not None and not self.account.user.is_empty():
            return self.account.user
        proxy = getattr(self.sink, "proxy", None)
        return proxy if isinstance(proxy, UserRef) and not proxy.is_empty() else None

    def enqueue(self, issue_id: str, reason: str = "webhook") -> bool:
        """Queue one issue for the engine; False when the queue is full (polling will catch it)."""
        if issue_id not in self._pending and len(self._pending) >= MAX_PENDING:
            return False
        self._pending.setdefault(issue_id, reason)
        self._idle.clear()
        self._has_work.set()
        return True

    async def idle(self) -> None:
        """Wait until every queued webhook change has been handed to the engine."""
        await self._idle.wait()

    def _next(self) -> str | None:
        for issue_id in self._pending:
            if issue_id not in self._inflight:
                return issue_id
        return None

    async def _worker(self) -> None:
        while True:
            issue_id = self._next()
            if issue_id is None:
                self._has_work.clear()
                await self._has_work.wait()
                continue
            reason = self._pending.pop(issue_id)
            self._inflight.add(issue_id)
            try:
                await self.sink.local_change(issue_id, reason=reason)
                self.metrics.changes.labels(reason).inc()
            except asyncio.CancelledError:
                raise
            except Exception:
                # polling hands the issue over again; the engine records its own errors
                log.exception("tracker: %s: sync engine refused a change of %s", self.describe, issue_id)
            finally:
                self._inflight.discard(issue_id)
                if self._pending:
                    self._has_work.set()  # e.g. this issue again, queued while it was in flight
                elif not self._inflight:
                    self._idle.set()

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# ---------------------------------------------------------------------------------------------------
# The node's tracker side: adapter + sync engine + intake, with their lifecycle (used by node.app)


class TrackerSide:
    """Everything a node with a ``[tracker]`` runs beside its tracker.

    Order: :meth:`open` (adapter, engine; the engine starts in the background so a tracker that is
    down never holds up the node) → :meth:`start_intake` once the listeners are up (the webhook URL
    is known then) → :meth:`stop` (intake, then engine) → :meth:`close` (adapter)."""

    def __init__(self, config: Config, db: Database, manager: ConnectionManager) -> None:
        if config.tracker is None:
            raise ValueError("no [tracker] section")
        self.config = config
        self.section = config.tracker
        self.db = db
        self.manager = manager
        self.handle: TrackerHandle | None = None
        self.engine: SyncEngine | None = None
        self.intake: Intake | None = None
        self._engine_start: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def adapter(self) -> TrackerAdapter | None:
        return self.handle.adapter if self.handle is not None else None

    def webhook_base(self, peer_url: str | None, webhook_listen_url: str | None) -> str | None:
        """Where the tracker can reach this node, or None (poll only)."""
        t = self.section
        if t.webhooks == "off":
            return None
        if t.webhook_url:
            return t.webhook_url
        return peer_url or webhook_listen_url

    async def open(self, **adapter_options: Any) -> None:
        """Build the adapter and the engine. Raises ConfigError (no token, unusable setting)."""
        from node.sync.engine import SyncEngine

        self.handle = await open_tracker(self.section, **adapter_options)
        log.info(
            "tracker: %s as %s (token from %s)",
            self.handle.describe,
            repr(self.section.user) if self.section.user else "the token's user",
            "config.toml" if self.section.token else f"${self.section.token_env}",
        )
        self.engine = SyncEngine(
            self.db,
            self.manager,
            self.handle.adapter,
            node_name=self.config.node.name,
            settings=self.config.sync,
        )
        self._engine_start = asyncio.create_task(self._start_engine(), name="sync-engine-start")

    async def _start_engine(self) -> None:
        assert self.engine is not None
        try:
            await self.engine.start()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sync: the engine failed to start")

    async def start_intake(self, webhook_base: str | None, registry: CollectorRegistry | None) -> Intake:
        assert self.handle is not None and self.engine is not None, "open() first"
        t = self.section
        settings = IntakeSettings(
            poll_seconds=t.poll_seconds,
            poll_seconds_webhooks=t.poll_seconds_webhooks,
            reconcile_seconds=t.reconcile_seconds,
            register_webhooks=t.webhooks != "off",
            sign_webhooks=signs_webhooks(t),
            projects=list(t.projects),
            retry_max_seconds=t.retry_max_seconds,
        )
        self.intake = Intake(
            self.handle.adapter,
            self.engine,
            self.db,
            settings,
            describe=self.handle.describe,
            user=t.user,
            webhook_base=webhook_base,
            registry=registry,
        )
        await self.intake.start()
        return self.intake

    async def stop(self) -> None:
        """Stop intake, then the engine (before the connection manager stops)."""
        if self._stopped:
            return
        self._stopped = True
        if self.intake is not None:
            await self.intake.stop()
        if self._engine_start is not None and not self._engine_start.done():
            self._engine_start.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._engine_start
        if self.engine is not None:
            await self.engine.stop()

    async def close(self) -> None:
        await self.stop()
        if self.handle is not None:
            await self.handle.close()
            self.handle = None
