"""The sync engine: local changes → replicas to peers; replicas from peers → local changes.

Implements :class:`node.sync.service.SyncService`. See ``docs/sync.md`` for the guarantees; the
rules of this module, in short:

* **Per entity, one at a time.** Outgoing work on a local issue holds the lock ``(connection, local
  id)``; incoming work holds ``(connection, remote id)`` and, once the local issue is known, the
  local lock too (always in that order). A webhook burst, a manual sync and a bulk job on the same
  issue therefore never race, and the echo of our own write waits until its baseline is recorded.
* **Incoming messages in sequence order per connection**, from the manager's listener and, at
  start, from the unprocessed inbox rows. A replica's outcome is recorded, then its ``Result`` is
  queued, and its inbox row is marked processed in the transaction that queues it, so a crash
  re-processes rather than loses (an applied replica is answered again).
* **Concurrent lanes share work** (:class:`_Group`, group commit): messages to the peer, creates and
  final reads of replicas applied at the same time go together, without changing the order of any
  one lane's steps (each waits for its batch to be done). Store writes group by themselves
  (:meth:`Database.write`); store reads are not grouped.
* **Creates are idempotent.** An intent (marker ``tandem:{connection}:{remote id}``) is stored
  before the tracker call; the tracker keeps the marker on the issue; an open intent is settled by
  :meth:`TrackerAdapter.find_issue_by_marker` (adopt, never create twice). Comments carry the same
  kind of marker and are adopted from ``IssueSnapshot.comment_markers``.
* **No echo.** After applying, the outgoing replica the re-read issue would produce is fingerprinted
  (``baseline_fingerprint``): our own write coming back by webhook produces the same fingerprint and
  is not sent. A person's edit during the apply (changelog/comment by anyone but the proxy user)
  prevents the baseline, so it goes out.
* **Errors are recorded, never raised to intake**: rule errors pause one twin; transient tracker
  faults retry with backoff (one error row, count grows, ``retrying`` → ``resolved``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import itertools
import json
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar, cast

from pydantic import ValidationError

from node.connections import ConnectionManager, ManagerError, Runtime, connection_id_text
from node.jql import EvalContext, JqlError, Query, compile_query
from node.rules import (
    ChangeSet,
    CompiledRules,
    IncomingContext,
    OutgoingContext,
    RuleError,
    RuleSet,
    compile_rules,
    test_run,
)
from node.rules.config import DEFAULT_HEADER, field_kind
from node.rules.values import same
from node.store import Database
from node.sync import store as s
from node.sync.intake import same_user
from node.sync.service import (
    BulkJobView,
    ConflictView,
    Direction,
    ErrorView,
    InvalidInput,
    NotFound,
    RuleMode,
    RuleProblem,
    RuleVersionView,
    SyncError,
    SyncOutcome,
    TestRunView,
    TriggerView,
    TwinView,
)
from node.sync.settings import SyncSettings
from node.sync.workflow import Unreachable, walk_to
from node.tasks import cancel_and_wait
from node.trackers.base import (
    IssueSnapshot,
    IssueUpdate,
    SearchPage,
    TrackerAdapter,
    TrackerError,
    TrackerNotFound,
    TrackerTransient,
)
from protocol.messages import (
    Blob,
    BlobRequest,
    Message,
    ReplicaMessage,
    ReplicaResult,
    Result,
    Unlink,
)
from protocol.replica import EntityRef, Replica, UserRef

log = logging.getLogger("tandem.sync")

ENGINE_TYPES = frozenset({"replica", "result", "unlink", "blob", "blob_request"})
_BLOB_BATCH = 8  # Blob messages per manager.send call
_GROUP_SENDS = 64  # peer messages of concurrent lanes queued in one outbox transaction
_TRACKER_BATCH = 50  # issues per batched tracker call (Jira: issue/bulk takes at most 50)
# Longest wait of a batched create for lanes that said they would join it. Final reads do not
# wait (lanes reach them out of step, after their comments; waiting cost more than it saved).
_LINGER = 0.05
_LOAD_AHEAD = 64  # messages waiting by sequence number read back from the inbox in one store call
_IN_MEMORY = 256  # incoming messages kept decoded in a connection's queue; the rest wait in the inbox


_In = TypeVar("_In")
_Out = TypeVar("_Out")


class SimulatedCrash(BaseException):
    """Raised at a crash point (tests): not an Exception, so nothing records or swallows it."""


def _fingerprint(replica: Replica) -> str:
    return hashlib.sha256(replica.fingerprint_payload()).hexdigest()


def _replica_text(replica: Replica) -> str:
    """A replica as the twin row keeps it (JSON; read back with ``Replica.model_validate_json`` or
    ``json.loads``, so key order does not matter: pydantic's own encoder, 4x faster than sorting)."""
    return replica.model_dump_json()


def _same_replica(stored: str | None, replica: Replica) -> bool:
    """Is ``stored`` (a twin row's replica text, whatever encoder wrote it) this replica?"""
    if not stored:
        return False
    try:
        return Replica.model_validate_json(stored) == replica
    except ValidationError:
        return False


def _at(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _ts(value: float | None) -> dt.datetime | None:
    return None if value is None else _at(value)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _issue_marker(snapshot: IssueSnapshot) -> str | None:
    """Tandem's twin marker on an issue, from whichever entity property holds it."""
    for value in snapshot.properties.values():
        if isinstance(value, dict) and isinstance(value.get("marker"), str):
            marker = str(value["marker"])
            if marker.startswith("tandem:"):
                return marker
    return None


class _KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _Expected:
    """A lane's notice to a :class:`_Group` that it will probably call it soon (see ``expect``)."""

    __slots__ = ("_group", "open")

    def __init__(self, group: _Group[Any, Any]) -> None:
        self._group, self.open = group, True
        group.coming += 1

    def close(self) -> None:
        """Called (or decided not to call): the group no longer waits for this lane."""
        if self.open:
            self.open = False
            self._group.coming -= 1
            self._group.poke()


class _Group(Generic[_In, _Out]):
    """Group commit for concurrent lanes: calls that arrive while a batch is being run wait and go
    together in the next one (at most ``size`` per batch, ``in_flight`` batches at once). A lone
    call runs at once (no added latency); under load, batches grow by themselves.

    Lanes that will probably call soon say so (``expect``): a batch waits for them, at most
    ``linger`` seconds, so that lanes working in step (a bulk of new issues) share one call rather
    than each catching its own.

    ``run`` gets the items of a batch and returns one outcome per item, in order: a value, or the
    exception to raise in that item's caller. An exception raised by ``run`` itself is raised in
    every caller of the batch. Batches run in tasks owned by the engine (cancelled by ``stop``)."""

    def __init__(
        self,
        run: Callable[[list[_In]], Awaitable[Sequence[_Out | BaseException]]],
        spawn: Callable[[Any], asyncio.Task[Any]],
        *,
        size: int,
        in_flight: int = 1,
        linger: float = 0.0,
    ) -> None:
        self._run, self._spawn = run, spawn
        self.size, self.in_flight, self.linger = size, in_flight, linger
        self._queue: list[tuple[_In, asyncio.Future[_Out]]] = []
        self._running = 0
        self.coming = 0  # lanes that said they will probably call soon
        self._wake: asyncio.Event | None = None
        self.batches = 0  # batches run (tests, metrics)

    def expect(self) -> _Expected:
        return _Expected(self)

    def poke(self) -> None:
        if self._wake is not None and (self.coming <= 0 or len(self._queue) >= self.size):
            self._wake.set()

    async def __call__(self, item: _In, expected: _Expected | None = None) -> _Out:
        future: asyncio.Future[_Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if expected is not None:
            expected.close()
        self.poke()
        if self._running < self.in_flight:
            self._running += 1
            self._spawn(self._drain())
        return await future

    async def _gather(self) -> None:
        """Wait (at most ``linger`` s) for the lanes that said they would call."""
        if self.linger <= 0 or self.coming <= 0 or len(self._queue) >= self.size:
            return
        self._wake = asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.linger):  # (not wait_for: see node/tasks.py)
                    await self._wake.wait()
        finally:
            self._wake = None

    async def _drain(self) -> None:
        batch: list[tuple[_In, asyncio.Future[_Out]]] = []
        try:
            while self._queue:
                await self._gather()
                batch, self._queue = self._queue[: self.size], self._queue[self.size :]
                batch = [(i, f) for i, f in batch if not f.done()]  # callers gone: not theirs to run
                if not batch:
                    continue
                self.batches += 1
                try:
                    outcomes: Sequence[_Out | BaseException] = await self._run([i for i, _ in batch])
                    if len(outcomes) != len(batch):
                        raise RuntimeError(f"a batch of {len(batch)} gave {len(outcomes)} outcomes")
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
                batch = []
        finally:
            self._running -= 1
            # Cancelled (the engine is stopping): no caller may wait for good, be it a lane or not
            # (intake's local_change), whether its call was in the batch or still queued.
            waiting, self._queue = (batch + self._queue, []) if self._running == 0 else (batch, self._queue)
            for _, future in waiting:
                if not future.done():
                    future.cancel()


@dataclasses.dataclass(frozen=True)
class _CreateItem:
    conn_id: bytes
    remote_id: str
    project: str
    fields: IssueUpdate
    marker: str


class _Stale(Exception):
    pass


class _Applying:
    """A local issue that an incoming replica is being applied to. Changes reported for it meanwhile
    are (mostly) our own writes: they are answered once the apply is over, from the snapshot the
    apply reads at its end when they arrived before that read, else by reading the issue again."""

    __slots__ = ("after", "before", "fresh", "reading")

    def __init__(self) -> None:
        self.reading = False  # the final read was issued: later changes may not be in it
        self.fresh: IssueSnapshot | None = None
        self.before = False  # a change was reported before the final read
        self.after = False  # ... or after it


class SyncEngine:
    """The sync engine of one node (one tracker adapter, every connection)."""

    def __init__(
        self,
        db: Database,
        manager: ConnectionManager,
        adapter: TrackerAdapter,
        *,
        node_name: str,
        settings: SyncSettings | None = None,
    ) -> None:
        self.db = db
        self.manager = manager
        self.adapter = adapter
        self.node_name = node_name
        self.settings = settings or SyncSettings()
        self.proxy: UserRef | None = None
        self.crash_points: set[str] = set()  # test hook: "create_issue", "add_comment", "add_attachment"
        self._locks = _KeyedLocks()
        self._queues: dict[bytes, asyncio.Queue[tuple[int, Message | None]]] = {}
        self._workers: dict[bytes, asyncio.Task[None]] = {}
        self._early: dict[bytes, list[tuple[int, Message]]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retrying: set[tuple[str, str]] = set()
        self._rules: dict[tuple[bytes, str], CompiledRules] = {}
        self._queries: dict[str, Query] = {}
        self._listening = False
        self._stopped = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0
        # Entities that may have a 'retrying' error row (all of them, once loaded at start).
        self._retry_entities: set[str | None] = set()  # None: messages that name no entity (a Blob)
        self._retry_loaded = False
        self._applying: dict[str, _Applying] = {}  # local id and key → apply in progress
        self.in_memory = _IN_MEMORY  # decoded incoming messages kept per connection (tests lower it)
        # Peer messages of concurrent lanes travel together (see _Group): one outbox transaction and
        # one Result message for many replies. (Store writes group by themselves: Database.write.)
        self._sends: _Group[tuple[Runtime, Message, int | None], Any] = _Group(
            self._send_batch, self._spawn, size=_GROUP_SENDS
        )
        # Tracker calls of concurrent lanes made together: creates and the apply's final reads.
        self._creates: _Group[_CreateItem, IssueSnapshot] = _Group(
            self._create_batch, self._spawn, size=_TRACKER_BATCH, linger=_LINGER
        )
        self._fresh_reads: _Group[str, IssueSnapshot] = _Group(
            self._read_batch_issues, self._spawn, size=_TRACKER_BATCH
        )

    # =============================================================================================
    # Lifecycle

    async def start(self) -> None:
        self._stopped = False
        try:
            self.proxy = (await self.adapter.check()).user
        except TrackerError as exc:
            log.warning("sync: cannot identify the proxy user: %s", exc)
            await self._error(None, None, "config", f"cannot identify the tracker account: {exc}")
        self._retry_entities.update(
            await self.db.read(
                lambda c: [
                    r[0]
                    for r in c.execute("SELECT DISTINCT entity FROM sync_errors WHERE state = 'retrying'")
                ]
            )
        )
        self._retry_loaded = True
        self._early = {}
        if not self._listening:
            self.manager.add_listener(self._on_message)
            self._listening = True
        await self._settle_intents()
        for rt in list(self.manager.runtimes.values()):
            conn_id = rt.row.id
            rows = await self.db.read(functools.partial(_unprocessed, conn_id=conn_id))
            queue = self._queue(rt)
            top = 0
            for seq, body in rows:
                message = self._decode(bytes(body))
                if message is not None and message.t in ENGINE_TYPES:
                    self._put(queue, int(seq), message)
                    top = int(seq)
            for seq, message in (self._early or {}).pop(conn_id, []):
                if seq > top:
                    self._put(queue, seq, message)
        early, self._early = self._early or {}, None
        for conn_id, items in early.items():  # connections that appeared during the scan
            rt2 = self.manager.runtimes.get(conn_id)
            if rt2 is not None:
                for item in items:
                    self._put(self._queue(rt2), *item)
        await self._resend_blob_requests()
        for job_id in await self.db.read(
            lambda c: [int(r[0]) for r in c.execute("SELECT id FROM bulk_jobs WHERE state = 'running'")]
        ):
            self._spawn(self._run_bulk(job_id))

    async def stop(self) -> None:
        self._stopped = True
        await cancel_and_wait([*self._workers.values(), *self._tasks])
        self._workers.clear()
        self._queues.clear()
        self._tasks.clear()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def idle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until every queued incoming message was processed (tests, benchmarks)."""

        async def until() -> None:
            while True:
                if all(q.empty() for q in self._queues.values()) and self._busy == 0:
                    return
                self._idle.clear()
                await self._idle.wait()

        await asyncio.wait_for(until(), timeout)

    # =============================================================================================
    # Peer messages, grouped

    async def _send(self, rt: Runtime, message: Message, answers: int | None = None) -> None:
        """Queue one message for the peer; messages of concurrent lanes are queued together (one
        outbox transaction), and their Results travel as one ``Result`` message. ``answers``: the
        inbox row this message replies to, marked processed in that same transaction (never
        before the reply is queued, and without a write of its own)."""
        await self._sends((rt, message, answers))

    async def _send_batch(self, items: list[tuple[Runtime, Message, int | None]]) -> list[Any]:
        by_conn: dict[bytes, list[int]] = {}
        for n, (rt, _, _) in enumerate(items):
            by_conn.setdefault(rt.row.id, []).append(n)
        out: list[Any] = [None] * len(items)
        for indexes in by_conn.values():
            rt = items[indexes[0]][0]
            messages: list[Message] = []
            results: list[ReplicaResult] = []
            seqs: list[int] = []
            for n in indexes:
                _, message, answers = items[n]
                if isinstance(message, Result):
                    results.extend(message.results)
                else:
                    messages.append(message)
                if answers is not None:
                    seqs.append(answers)
            if results:
                messages.append(Result(results=results))
            try:
                await self.manager.send(rt, messages, processed=seqs)
            except ManagerError as exc:
                for n in indexes:
                    out[n] = exc
        return out

    def _crash(self, point: str) -> None:
        if point in self.crash_points:
            raise SimulatedCrash(point)

    # =============================================================================================
    # Connections

    def _rt(self, name: str) -> Runtime:
        try:
            return self.manager.get(name)
        except ManagerError:
            raise NotFound(f"no connection named {name!r}") from None

    def _rt_by_id(self, conn_id: bytes) -> Runtime | None:
        return self.manager.runtimes.get(conn_id)

    def _name_of(self, conn_id: bytes | None) -> str | None:
        if conn_id is None:
            return None
        rt = self.manager.runtimes.get(conn_id)
        if rt is not None:
            return rt.name
        return connection_id_text(conn_id)

    @staticmethod
    def _syncing(rt: Runtime) -> bool:
        """Connections that take replicas (a deactivated one still queues them)."""
        return rt.session is not None and rt.row.state in ("active", "deactivated")

    def _project_for(self, rt: Runtime) -> str | None:
        return self.settings.projects.get(rt.name) or rt.row.project

    # =============================================================================================
    # Rules

    def _basic(self, direction: Direction) -> RuleSet:
        st = self.settings
        doc: dict[str, Any] = {}
        plain = st.unmatched_user == "keep" and st.comment_header == DEFAULT_HEADER
        if direction == "incoming" and not (plain and st.conflict_policy == "later_wins"):
            unmatched: Any = st.unmatched_user
            if st.unmatched_user == "default":
                unmatched = {"default": st.default_user} if st.default_user else "keep"
            doc = {
                "users": {"unmatched": unmatched},
                "comments": {"header": st.comment_header},
                "conflict_policy": st.conflict_policy,
            }
        if not doc:
            return RuleSet(mode="basic", direction=direction, version=0, state="published")
        return RuleSet(
            mode="visual", direction=direction, source=json.dumps(doc), version=0, state="published"
        )

    async def _current_ruleset(self, conn_id: bytes, direction: Direction) -> RuleSet:
        row = await self.db.read(
            lambda c: c.execute(
                "SELECT version, mode, source FROM rulesets WHERE conn_id = ? AND direction = ? "
                "AND state = 'published'",
                (conn_id, direction),
            ).fetchone()
        )
        if row is None:
            return self._basic(direction)
        return RuleSet(
            mode=row[1], direction=direction, source=row[2], version=int(row[0]), state="published"
        )

    async def _compiled(self, conn_id: bytes, direction: Direction) -> CompiledRules:
        key = (conn_id, direction)
        compiled = self._rules.get(key)
        if compiled is None:
            ruleset = await self._current_ruleset(conn_id, direction)
            compiled = await asyncio.to_thread(compile_rules, ruleset)
            self._rules[key] = compiled
        return compiled

    # =============================================================================================
    # Outgoing

    async def local_change(
        self, issue_id_or_key: str, *, reason: str = "webhook", snapshot: IssueSnapshot | None = None
    ) -> None:
        """A local issue changed (webhook, poll, reconcile): send it to every connection in scope.
        ``snapshot``: the issue as the caller just read it (polling), so it is not read again.
        Never raises for tracker or rule faults: they are recorded."""
        applying = self._applying.get(issue_id_or_key)
        if applying is not None:  # answered when the apply is over (see _Applying)
            if applying.reading:
                applying.after = True
            else:
                applying.before = True
            return
        if snapshot is not None:
            # A caller's snapshot may lack what only a full read has (e.g. every entity property,
            # which a trigger may test): it is used only where no trigger is evaluated, when the
            # issue is twinned on every syncing connection.
            conns = {rt.row.id for rt in self.manager.runtimes.values() if self._syncing(rt)}
            local_id = snapshot.id
            twinned = {t.conn_id for t in await self.db.read(lambda c: s.twins_of_issue(c, local_id))}
            if not conns <= twinned:
                snapshot = None
        if snapshot is None:
            try:
                snapshot = await self.adapter.get_issue(issue_id_or_key)
            except TrackerNotFound:
                log.info("sync: %s no longer exists; nothing to send", issue_id_or_key)
                return
            except TrackerTransient as exc:
                await self._retry_later(issue_id_or_key, reason, exc)
                return
            except TrackerError as exc:
                await self._error(None, issue_id_or_key, "tracker", f"cannot read {issue_id_or_key}: {exc}")
                return
        await self._resolve_retrying(None, issue_id_or_key)
        for rt in list(self.manager.runtimes.values()):
            if self._syncing(rt):
                try:
                    await self._send_entity(rt, snapshot, reason, manual=False)
                except SyncError as exc:
                    log.warning("sync: %s on %r: %s", snapshot.key, rt.name, exc)

    async def _retry_later(self, key: str, reason: str, exc: TrackerTransient) -> None:
        await self._error(None, key, "tracker", f"tracker unavailable, retrying: {exc}", state="retrying")
        if (key, reason) in self._retrying or self._stopped:
            return
        self._retrying.add((key, reason))

        async def again() -> None:
            delay = max(self.settings.retry_base_seconds, exc.retry_after or 0.0)
            try:
                await asyncio.sleep(min(delay, self.settings.retry_max_seconds))
            finally:
                self._retrying.discard((key, reason))
            await self.local_change(key, reason=reason)

        self._spawn(again())

    async def _in_scope(self, rt: Runtime, snapshot: IssueSnapshot) -> bool:
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT id, query FROM triggers WHERE conn_id = ? AND active = 1", (rt.row.id,)
            ).fetchall()
        )
        if not rows:
            return False
        ctx = EvalContext(now=dt.datetime.now(dt.UTC), current_user=self.proxy)
        for trigger_id, text in rows:
            try:
                query = self._queries.get(text) or compile_query(text)
                self._queries[text] = query
                if query.matches(snapshot, ctx):
                    return True
            except (JqlError, ValueError) as exc:
                await self._error(
                    rt.row.id, None, "config", f"trigger {trigger_id} cannot be evaluated: {exc}"
                )
        return False

    async def _send_entity(
        self, rt: Runtime, snapshot: IssueSnapshot, reason: str, *, manual: bool, force: bool = False
    ) -> SyncOutcome:
        conn_id, conn_text = rt.row.id, connection_id_text(rt.row.id)

        def outcome(sent: bool, why: str = "", version: int | None = None) -> SyncOutcome:
            return SyncOutcome(key=snapshot.key, connection=rt.name, sent=sent, version=version, reason=why)

        async with self._locks.hold((conn_id, "l", snapshot.id)):
            # One read for the twin and what the outgoing rules need of the store.
            twin, received_c, received_a = await self.db.read(
                lambda c: (
                    s.twin_by_local(c, conn_id, snapshot.id),
                    s.received_comment_ids(c, conn_id, snapshot.id),
                    s.received_attachment_ids(c, conn_id, snapshot.id),
                )
            )
            if twin is not None and twin.state == "paused" and not manual:
                return outcome(False, "paused by an error; retry or resolve it")
            if twin is not None and twin.state == "unlinked" and not manual:
                return outcome(False, "unlinked")
            if (
                twin is not None
                and twin.remote_id
                and twin.last_received_version == 0
                and twin.last_sent_version == 0
            ):
                # Created here from the peer's replica, whose apply has not finished (a crash
                # after the create was recorded): the peer does not know this twin yet, and a
                # replica from us now would make it create a second issue. The unprocessed
                # replica is applied again (and answered) first.
                return outcome(False, "created from the peer's replica (its apply is not finished)")
            if twin is None:
                marker = _issue_marker(snapshot)
                if marker is not None and marker.startswith(f"tandem:{conn_text}:"):
                    # Created by this engine from the peer's replica; its twin is being recorded.
                    return outcome(False, "created from the peer's replica")
                if not manual and not await self._in_scope(rt, snapshot):
                    return outcome(False, "not in scope (no trigger matches)")
            compiled = await self._compiled(conn_id, "outgoing")
            ctx = self._outgoing_ctx(rt, received_c, received_a)
            try:
                result = await compiled.outgoing_async(snapshot, ctx)
            except RuleError as exc:
                await self._pause_outgoing(rt, snapshot, twin, exc)
                return outcome(False, f"rule error: {exc}")
            if result.replica is None:
                return outcome(False, result.skipped or "filtered out by the outgoing rules")
            replica = result.replica
            fp = _fingerprint(replica)
            if (
                twin is not None
                and not force
                and fp in (twin.last_sent_fingerprint, twin.baseline_fingerprint)
            ):
                if twin.state == "unlinked":
                    await self.db.write(lambda c: s.update_twin(c, twin.id, state="linked"))
                return outcome(False, "unchanged since the last replica sent")
            version = (twin.last_sent_version if twin is not None else 0) + 1
            incoming = await self._compiled(conn_id, "incoming")
            sent_values = s.dumps(incoming.local_values(snapshot))
            applied = sent_values if twin is None or twin.last_applied is None else None
            body = _replica_text(replica)

            def reserve(c: sqlite3.Connection) -> int:
                # The version is reserved before sending: a crash before the send costs a version
                # number, never an update (the fingerprint is recorded only once it was sent).
                # The replica itself is kept now: after a crash between the send and the record
                # below, the peer still gets the attachments it names (``_serve_blob``).
                if twin is None:
                    return s.insert_twin(
                        c,
                        conn_id,
                        local_id=snapshot.id,
                        local_key=snapshot.key,
                        state="pending",
                        last_sent_version=version,
                        last_applied=applied,
                        last_sent_replica=body,
                    )
                changes: dict[str, Any] = {
                    "last_sent_version": version,
                    "local_key": snapshot.key,
                    "last_sent_replica": body,
                }
                if twin.state in ("unlinked", "paused"):
                    changes["state"] = "linked" if twin.remote_id else "pending"
                if applied is not None:
                    changes["last_applied"] = applied
                s.update_twin(c, twin.id, **changes)
                return twin.id

            twin_id = await self.db.write(reserve)
            message = ReplicaMessage(replica=replica, version=version, reason=reason)
            try:
                await self._send(rt, message)
            except ManagerError as exc:
                await self._error(
                    conn_id, snapshot.key, "peer", f"cannot queue the replica: {exc}", local_id=snapshot.id
                )
                raise SyncError(f"cannot queue the replica for {rt.name!r}: {exc}") from None
            await self.db.write(
                lambda c: s.update_twin(
                    c,
                    twin_id,
                    last_sent_fingerprint=fp,
                    last_sent_at=s.now(),
                    last_sent_values=sent_values,
                    # The peer now has what was just sent: an older apply baseline must not make
                    # a later return to that state look unchanged (value A → B sent → back to A).
                    baseline_fingerprint=None,
                )
            )
            return outcome(True, "sent", version)

    def _outgoing_ctx(self, rt: Runtime, comments: set[str], attachments: set[str]) -> OutgoingContext:
        return OutgoingContext(
            connection=connection_id_text(rt.row.id),
            node_id=self.manager.identity.public.sign_public.hex(),
            peer_node_id=(rt.row.peer_sign or b"").hex(),
            peer_name=rt.row.peer_name or "",
            received_comment_ids=comments,
            received_attachment_ids=attachments,
        )

    async def _pause_outgoing(
        self, rt: Runtime, snapshot: IssueSnapshot, twin: s.TwinRow | None, exc: RuleError
    ) -> None:
        conn_id = rt.row.id

        def write(c: sqlite3.Connection) -> None:
            if twin is None:
                s.insert_twin(c, conn_id, local_id=snapshot.id, local_key=snapshot.key, state="paused")
            else:
                s.update_twin(c, twin.id, state="paused")
            s.record_error(
                c,
                conn_id=conn_id,
                entity=snapshot.key,
                kind="rule",
                message=f"outgoing rules: {exc}",
                line=exc.line,
                paused=True,
                local_id=snapshot.id,
                direction="outgoing",
            )

        await self.db.write(write)

    # =============================================================================================
    # Incoming: dispatch

    def _decode(self, body: bytes) -> Message | None:
        from protocol.messages import decode_message

        try:
            return decode_message(body)
        except Exception:  # a stored message we cannot read: skip it (it is logged)
            log.warning("sync: an inbox message cannot be decoded; skipped")
            return None

    def _queue(self, rt: Runtime) -> asyncio.Queue[tuple[int, Message | None]]:
        conn_id = rt.row.id
        queue = self._queues.get(conn_id)
        if queue is None:
            queue = asyncio.Queue()
            self._queues[conn_id] = queue
            self._workers[conn_id] = asyncio.create_task(self._worker(rt, queue), name=f"sync {rt.name}")
        return queue

    async def _on_message(self, name: str, seq: int, message: Message) -> None:
        if self._stopped or message.t not in ENGINE_TYPES:
            return
        try:
            rt = self.manager.get(name)
        except ManagerError:
            return
        if self._early is not None:
            self._early.setdefault(rt.row.id, []).append((seq, message))
            return
        self._put(self._queue(rt), seq, message)

    def waiting(self) -> tuple[int, int]:
        """Incoming messages waiting, on every connection: (kept decoded, kept as a sequence
        number only, to be read back from the inbox)."""
        decoded = by_seq = 0
        for queue in self._queues.values():
            for _seq, message in list(queue._queue):  # type: ignore[attr-defined]
                if message is None:
                    by_seq += 1
                else:
                    decoded += 1
        return decoded, by_seq

    def _put(self, queue: asyncio.Queue[tuple[int, Message | None]], seq: int, message: Message) -> None:
        """Queue a message; beyond the first few hundred waiting, only its sequence number (the
        worker reads it back from the inbox): a bulk burst does not sit decoded in memory."""
        queue.put_nowait((seq, message if queue.qsize() < self.in_memory else None))

    async def _load(
        self,
        rt: Runtime,
        seq: int,
        queue: asyncio.Queue[tuple[int, Message | None]],
        loaded: dict[int, Message | None],
    ) -> Message | None:
        """A message queued by sequence number only, read back from the inbox together with the
        next few also waiting by number (one store call for many; at most ``_LOAD_AHEAD`` kept)."""
        if seq in loaded:
            return loaded.pop(seq)
        ahead = itertools.islice(queue._queue, _LOAD_AHEAD)  # type: ignore[attr-defined]
        wanted = [seq, *(n for n, m in ahead if m is None)]
        marks = ",".join("?" * len(wanted))
        rows = await self.db.read(
            lambda c: c.execute(
                f"SELECT seq, body FROM inbox WHERE conn_id = ? AND seq IN ({marks}) "
                "AND processed_at IS NULL",
                (rt.row.id, *wanted),
            ).fetchall()
        )
        bodies = {int(n): bytes(b) for n, b in rows}
        loaded.clear()
        for n in wanted[1:]:
            loaded[n] = self._decode(bodies[n]) if n in bodies else None
        return self._decode(bodies[seq]) if seq in bodies else None

    async def _worker(self, rt: Runtime, queue: asyncio.Queue[tuple[int, Message | None]]) -> None:
        """Take the connection's messages in sequence order. Replicas of different entities are
        applied up to ``apply_concurrency`` at once (each waits for the previous message of its own
        entity: per-entity order is kept); any other message waits until everything taken before it
        is done, and runs alone."""
        slots = asyncio.Semaphore(self.settings.apply_concurrency)
        lanes: dict[str, asyncio.Task[None]] = {}  # entity → its latest message's task
        loaded: dict[int, Message | None] = {}  # read back from the inbox ahead of their turn
        running: set[asyncio.Task[None]] = set()
        worker = asyncio.current_task()
        try:
            while True:
                seq, queued = await queue.get()
                self._busy += 1
                try:
                    message = queued if queued is not None else await self._load(rt, seq, queue, loaded)
                except BaseException:
                    self._busy -= 1
                    self._idle.set()
                    raise
                if message is None:  # processed meanwhile (or unreadable: logged)
                    self._busy -= 1
                    self._idle.set()
                    continue
                if not isinstance(message, ReplicaMessage):
                    try:
                        if running:
                            await asyncio.wait(list(running))
                        await self._process_with_retry(rt, seq, message)
                    finally:
                        self._busy -= 1
                        self._idle.set()
                    continue
                await slots.acquire()
                entity = message.replica.entity.id
                task = asyncio.create_task(
                    self._lane(rt, seq, message, lanes.get(entity), slots, worker),
                    name=f"sync {rt.name} {entity}",
                )
                lanes[entity] = task
                running.add(task)

                def done(t: asyncio.Task[None], entity: str = entity) -> None:
                    running.discard(t)
                    if lanes.get(entity) is t:
                        del lanes[entity]

                task.add_done_callback(done)
        finally:
            for task in list(running):
                task.cancel()

    async def _lane(
        self,
        rt: Runtime,
        seq: int,
        message: Message,
        previous: asyncio.Task[None] | None,
        slots: asyncio.Semaphore,
        worker: asyncio.Task[Any] | None,
    ) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])
            await self._process_with_retry(rt, seq, message)
        except SimulatedCrash:
            if worker is not None:  # a crash stops the whole worker, as it would the process
                worker.cancel()
            raise
        finally:
            slots.release()
            self._busy -= 1
            self._idle.set()

    async def _process_with_retry(self, rt: Runtime, seq: int, message: Message) -> None:
        delay = self.settings.retry_base_seconds
        entity = self._entity_of(message)
        while not self._stopped:
            try:
                await self._process(rt, seq, message)
                await self._resolve_retrying(rt.row.id, entity)
                return
            except TrackerTransient as exc:
                await self._error(
                    rt.row.id, entity, "tracker", f"tracker unavailable, retrying: {exc}", state="retrying"
                )
                await asyncio.sleep(min(max(delay, exc.retry_after or 0.0), self.settings.retry_max_seconds))
                delay = min(delay * 2, self.settings.retry_max_seconds)
            except ManagerError as exc:  # our reply could not be queued: the peer connection is gone
                await self._error(rt.row.id, entity, "peer", f"cannot answer the peer: {exc}")
                await self._mark_processed(rt, seq)
                return
            except (asyncio.CancelledError, SimulatedCrash):
                raise
            except Exception as exc:
                log.exception("sync: message %d of %r failed", seq, rt.name)
                await self._error(rt.row.id, entity, "internal", f"{type(exc).__name__}: {exc}")
                await self._mark_processed(rt, seq)
                return

    @staticmethod
    def _entity_of(message: Message) -> str | None:
        if isinstance(message, ReplicaMessage):
            return message.replica.entity.key or message.replica.entity.id
        return None

    async def _process(self, rt: Runtime, seq: int, message: Message) -> None:
        if isinstance(message, ReplicaMessage):
            await self._on_replica(rt, seq, message)
            return
        if isinstance(message, Result):
            await self._on_result(rt, message)
        elif isinstance(message, Unlink):
            await self._on_unlink(rt, message)
        elif isinstance(message, BlobRequest):
            await self._serve_blob(rt, message)
        elif isinstance(message, Blob):
            await self._on_blob(rt, message)
        await self._mark_processed(rt, seq)

    async def _mark_processed(self, rt: Runtime, seq: int | None) -> None:
        if seq is not None:
            await self.manager.mark_processed(rt, [seq])

    # =============================================================================================
    # Incoming: replicas

    async def _on_replica(
        self, rt: Runtime, seq: int | None, msg: ReplicaMessage, *, retry: bool = False
    ) -> None:
        conn_id = rt.row.id
        replica = msg.replica
        rid = replica.entity.id
        async with self._locks.hold((conn_id, "r", rid)):
            twin = await self.db.read(lambda c: s.twin_by_remote(c, conn_id, rid))
            if twin is not None and not retry:
                if msg.version <= twin.last_received_version:
                    if msg.version == twin.last_received_version and _same_replica(
                        twin.last_received_replica, replica
                    ):
                        # Applied already, but the process died before the reply was queued
                        # (the row stays unprocessed until then): answer again, change nothing.
                        await self._reply(rt, msg, "applied", None, twin, answers=seq)
                        return
                    await self._finish(rt, seq, msg, twin, "ignored", "stale or duplicate replica", None)
                    return
                if twin.state == "unlinked" and msg.reason != "manual":
                    await self._finish(rt, seq, msg, twin, "ignored", "unlinked on this side", None)
                    return
                if twin.state == "paused":
                    await self._finish(
                        rt,
                        seq,
                        msg,
                        twin,
                        "failed",
                        "paused by an error on this side",
                        None,
                        keep_pending=True,
                    )
                    return
            marks: list[tuple[str, str, _Applying]] = []
            # A replica of an issue not twinned yet will probably create one: a batched create
            # waits (briefly) for it to join.
            creating = self._creates.expect() if twin is None or not twin.local_id else None
            try:
                if twin is not None and twin.local_id:
                    async with self._locks.hold((conn_id, "l", twin.local_id)):
                        await self._apply(rt, seq, msg, twin, marks, creating)
                else:
                    await self._apply(rt, seq, msg, twin, marks, creating)
            finally:
                if creating is not None:
                    creating.close()
                for local_id, local_key, mark in marks:
                    for k in (local_id, local_key):
                        if self._applying.get(k) is mark:
                            del self._applying[k]
                    if mark.before or mark.after:
                        self._spawn(self._after_apply(local_id, mark))

    def _mark_applying(self, local: IssueSnapshot, marks: list[tuple[str, str, _Applying]]) -> _Applying:
        mark = _Applying()
        self._applying[local.id] = self._applying[local.key] = mark
        marks.append((local.id, local.key, mark))
        return mark

    async def _after_apply(self, local_id: str, mark: _Applying) -> None:
        """Changes reported during an apply: those reported before its final read are in that
        snapshot (no second read); otherwise the issue is read again, as any change would be."""
        if mark.after or mark.fresh is None:
            await self.local_change(local_id, reason="webhook")
            return
        for rt in list(self.manager.runtimes.values()):
            if self._syncing(rt):
                try:
                    await self._send_entity(rt, mark.fresh, "webhook", manual=False)
                except SyncError as exc:
                    log.warning("sync: %s on %r: %s", mark.fresh.key, rt.name, exc)

    async def _apply(
        self,
        rt: Runtime,
        seq: int | None,
        msg: ReplicaMessage,
        twin: s.TwinRow | None,
        marks: list[tuple[str, str, _Applying]],
        creating: _Expected | None = None,
    ) -> None:
        conn_id, conn_text = rt.row.id, connection_id_text(rt.row.id)
        replica = msg.replica
        rid = replica.entity.id
        entity = replica.entity.key or rid
        local: IssueSnapshot | None = None
        mark: _Applying | None = None
        if twin is not None and twin.local_id:
            try:
                local = await self.adapter.get_issue(twin.local_id)
                mark = self._mark_applying(local, marks)
            except TrackerNotFound:
                await self._error(
                    conn_id, entity, "tracker", f"the local twin {twin.local_key} no longer exists"
                )
                await self._finish(rt, seq, msg, twin, "failed", "the local twin was deleted", None)
                return
        project = self._project_for(rt)
        marker = f"tandem:{conn_text}:{rid}"
        if local is None and project:
            local = await self._adopt_open_intent(conn_id, project, marker)
            if local is not None:
                mark = self._mark_applying(local, marks)
                twin = await self._record_adopted(conn_id, local, replica, twin)
        compiled = await self._compiled(conn_id, "incoming")
        # Attachments still being fetched are left out of the map: the rules list them again and
        # ``_apply_attachments`` asks for them again (an earlier attempt may have recorded the
        # transfer, then hit a transient fault before its request went out).
        maps: tuple[dict[str, str], dict[str, str]] = ({}, {})
        if local is not None:
            local_id = local.id
            maps = await self.db.read(
                lambda c: (
                    s.comment_map(c, conn_id, local_id),
                    {r: la for r, la in s.attachment_map(c, conn_id, local_id).items() if la},
                )
            )
        previous = None
        if twin is not None and twin.last_received_replica:
            previous = _freshen(Replica.model_validate_json(twin.last_received_replica), replica)
        ctx = IncomingContext(
            connection=conn_text,
            node_id=self.manager.identity.public.sign_public.hex(),
            peer_node_id=(rt.row.peer_sign or b"").hex(),
            peer_name=rt.row.peer_name or rt.name,
            project=project or "",
            default_issue_type=self.settings.default_issue_type,
            comment_map=maps[0],
            attachment_map=maps[1],
            last_applied=twin.applied() if twin is not None else None,
            tracker=self.adapter.kind,
        )
        try:
            cs = await compiled.incoming_async(replica, previous, local, ctx)
            if previous is None and ctx.last_applied is not None:
                _drop_unchanged_since_sync_point(cs, ctx.last_applied)
            users = await self._resolve_users(cs)
        except RuleError as exc:
            await self._pause_incoming(rt, seq, msg, twin, exc)
            return
        if cs.action == "ignore":
            await self._finish(
                rt, seq, msg, twin, "ignored", cs.reason or "ignored by the incoming rules", None
            )
            return
        if cs.action == "create" and not (cs.project or project):
            await self._error(
                conn_id,
                entity,
                "config",
                f"no local project for issues created from connection {rt.name!r} "
                "(give --project when inviting/accepting, or sync.projects in the config)",
                remote_id=rid,
                direction="incoming",
            )
            await self._finish(rt, seq, msg, twin, "failed", "no local project to create the issue in", None)
            return
        # Only our own writes may be absorbed into the echo baseline: if the issue already had
        # changes not sent yet (a person's edit whose webhook is still on its way), no baseline.
        pending_local = False
        if local is not None and twin is not None:
            before_fp = await self._outgoing_fp(rt, local)
            pending_local = before_fp is not None and before_fp not in (
                twin.last_sent_fingerprint,
                twin.baseline_fingerprint,
            )
        fields = cs.fields.model_copy()
        for name, value in users.items():
            setattr(fields, name, value)
        stack = contextlib.AsyncExitStack()
        async with stack:
            if cs.action == "create":
                assert local is None
                local = await self._create(rt, replica, cs.project or project or "", fields, marker, creating)
                mark = self._mark_applying(local, marks)
                before = local
                await stack.enter_async_context(self._locks.hold((conn_id, "l", local.id)))
                twin = await self._record_adopted(conn_id, local, replica, twin)
            else:
                assert local is not None
                if creating is not None:
                    creating.close()
                before = local
                if fields.touched():
                    await self.adapter.update_issue(local.key, fields)
            assert local is not None and twin is not None
            warnings = list(cs.warnings)
            if local.status is not None:  # a created issue's status is known from the final read
                await self._walk_status(conn_id, local, cs, replica, warnings)
            # The comments' mappings are recorded with the outcome (one write fewer); if the apply
            # stops before that, at once (a comment not recorded would still be adopted by marker).
            added: list[tuple[str, str]] = []  # (local comment id, remote comment id)
            try:
                await self._apply_comments(conn_id, local, cs, added)
                blobs = await self._apply_attachments(conn_id, local, rid, cs, warnings)
                if mark is not None:
                    mark.reading = True
                fresh = await self._fresh_reads(local.id)
                if local.status is None and await self._walk_status(conn_id, fresh, cs, replica, warnings):
                    fresh = await self.adapter.get_issue(local.id)
                if mark is not None:
                    mark.fresh = fresh
                applied = s.dumps(compiled.local_values(fresh))
                baseline = None
                if not pending_local and not cs.report_back and not self._human_touched(before, fresh):
                    baseline = await self._outgoing_fp(rt, fresh, {cid for cid, _ in added})
                elif mark is not None:
                    # Not all of the issue's state is the peer's: send what it is now, once the
                    # apply is over (intake drops the webhooks of our own writes, so none would).
                    mark.before = True
                reason = "; ".join(warnings) or None
                await self._finish(
                    rt,
                    seq,
                    msg,
                    twin,
                    "applied",
                    reason,
                    fresh,
                    applied=applied,
                    baseline=baseline,
                    conflicts=cs,
                    comments=added,
                )
            except Exception:
                if added:
                    await self.db.write(
                        functools.partial(
                            s.put_comments, conn_id=conn_id, local_issue_id=local.id, pairs=added
                        )
                    )
                raise
            for request in blobs:
                await self.manager.send(rt, [request])

    async def _walk_status(
        self, conn_id: bytes, local: IssueSnapshot, cs: ChangeSet, replica: Replica, warnings: list[str]
    ) -> bool:
        """Move ``local`` to the status the rules ask for; False when no transition was made."""
        if cs.status is None:
            return False
        current = local.status.name if local.status else ""
        if current.casefold() == cs.status.casefold():
            return False
        if await self._preferred_transition(local.key, cs):
            return True
        try:
            taken = await walk_to(
                self.db,
                self.adapter,
                key=local.key,
                project=local.project,
                issue_type=local.issue_type or "",
                current=current,
                current_category=local.status.category if local.status else "new",
                target=cs.status,
                target_category=replica.status.category if replica.status else None,
                max_steps=self.settings.max_transition_steps,
            )
        except Unreachable as exc:
            await self._error(conn_id, local.key, "tracker", str(exc), local_id=local.id)
            warnings.append(str(exc))
            return True  # some steps may have been taken
        return bool(taken)

    async def _preferred_transition(self, key: str, cs: ChangeSet) -> bool:
        """Take the rules' preferred transition to ``cs.status`` when offered (GitHub: close as not
        planned); False: walk the workflow instead."""
        if not cs.transition or cs.status is None:
            return False
        wanted, target = cs.transition.casefold(), cs.status.casefold()
        for t in await self.adapter.transitions(key):
            if wanted in (t.id.casefold(), t.name.casefold()) and t.to.name.casefold() == target:
                await self.adapter.transition(key, t.id)
                return True
        return False

    async def _resolve_users(self, cs: ChangeSet) -> dict[str, UserRef | None]:
        out: dict[str, UserRef | None] = {}
        for change in cs.users:
            resolution = await change.resolve(self.adapter.find_user)
            if resolution.action == "set":
                out[change.field] = resolution.user
        return out

    def _human_touched(self, before: IssueSnapshot, fresh: IssueSnapshot) -> bool:
        """Did anyone but the proxy user change the issue between ``before`` (read when the apply
        started) and ``fresh`` (read after it)? Without a known proxy user, assume so."""
        if self.proxy is None:
            return True
        seen = {(i.field, i.at, i.to_value) for i in before.changelog}
        for item in fresh.changelog:
            if (item.field, item.at, item.to_value) not in seen and not same_user(item.author, self.proxy):
                return True
        old = {c.id: (c.updated, c.body) for c in before.comments}
        for comment in fresh.comments:
            if old.get(comment.id) != (comment.updated, comment.body) and not same_user(
                comment.author, self.proxy
            ):
                return True
        old_attachments = {a.id for a in before.attachments}
        return any(
            a.id not in old_attachments and not same_user(a.author, self.proxy) for a in fresh.attachments
        )

    async def _outgoing_fp(
        self, rt: Runtime, snapshot: IssueSnapshot, received: set[str] | None = None
    ) -> str | None:
        """The fingerprint of the replica the outgoing rules make of ``snapshot`` now. ``received``:
        comments created from the peer's not recorded yet (they are recorded with the outcome)."""
        conn_id = rt.row.id
        received_c, received_a = await self.db.read(
            lambda c: (
                s.received_comment_ids(c, conn_id, snapshot.id),
                s.received_attachment_ids(c, conn_id, snapshot.id),
            )
        )
        if received:
            received_c |= received
        out_rules = await self._compiled(conn_id, "outgoing")
        try:
            out = await out_rules.outgoing_async(snapshot, self._outgoing_ctx(rt, received_c, received_a))
        except RuleError:
            return None
        return _fingerprint(out.replica) if out.replica is not None else None

    async def _create(
        self,
        rt: Runtime,
        replica: Replica,
        project: str,
        fields: IssueUpdate,
        marker: str,
        expected: _Expected | None,
    ) -> IssueSnapshot:
        # The apply reads the issue once, at its end: an adapter that can create without reading
        # the issue back (Jira) saves a call here (the returned snapshot then may lack a status).
        # Creates of concurrent lanes go to the tracker together (_create_batch).
        issue = await self._creates(
            _CreateItem(rt.row.id, replica.entity.id, project, fields, marker), expected
        )
        self._crash("create_issue")
        return issue

    async def _create_batch(self, items: list[_CreateItem]) -> list[IssueSnapshot | BaseException]:
        """Create the issues of several lanes with as few tracker calls as the adapter allows. Each
        keeps its own intent row, all written in one transaction BEFORE the tracker call, and its
        own marker on the issue: after a crash anywhere here, ``_settle_intents`` adopts what was
        created (by marker) and closes the intents of what was not, exactly as for a lone create."""
        now = s.now()
        await self.db.write(
            lambda c: c.executemany(
                "INSERT INTO intents (conn_id, remote_entity_id, marker, project, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(i.conn_id, i.remote_id, i.marker, i.project, now) for i in items],
            )
        )
        out: list[IssueSnapshot | BaseException] = [TrackerError("not created")] * len(items)
        by_project: dict[str, list[int]] = {}
        for n, item in enumerate(items):
            by_project.setdefault(item.project, []).append(n)
        for project, indexes in by_project.items():
            try:
                created = await self.adapter.create_issues_ref(
                    project, [(items[n].fields, items[n].marker) for n in indexes]
                )
            except TrackerError as exc:
                created = [exc] * len(indexes)
            if len(created) != len(indexes):
                created = [TrackerError("the tracker adapter answered a batch create out of step")] * len(
                    indexes
                )
            for n, outcome in zip(indexes, created, strict=True):
                out[n] = outcome
        return out

    async def _read_batch_issues(self, ids: list[str]) -> list[IssueSnapshot | BaseException]:
        got = await self.adapter.get_issues(ids)
        return [got[i] if i in got else TrackerNotFound(f"issue {i} not found") for i in ids]

    async def _adopt_open_intent(self, conn_id: bytes, project: str, marker: str) -> IssueSnapshot | None:
        open_intent = await self.db.read(
            lambda c: c.execute(
                "SELECT project FROM intents WHERE conn_id = ? AND marker = ? AND done = 0", (conn_id, marker)
            ).fetchone()
        )
        if open_intent is None:
            return None
        found = await self.adapter.find_issue_by_marker(str(open_intent[0]), marker)
        if found is None:
            await self.db.write(functools.partial(_close_intent, conn_id=conn_id, marker=marker))
        return found

    async def _record_adopted(
        self, conn_id: bytes, local: IssueSnapshot, replica: Replica, twin: s.TwinRow | None
    ) -> s.TwinRow:
        marker_prefix = f"tandem:{connection_id_text(conn_id)}:{replica.entity.id}"

        def write(c: sqlite3.Connection) -> s.TwinRow:
            existing = twin or s.twin_by_remote(c, conn_id, replica.entity.id)
            fields = {
                "local_id": local.id,
                "local_key": local.key,
                "remote_id": replica.entity.id,
                "remote_key": replica.entity.key,
                "remote_url": replica.entity.url,
                "state": "linked",
            }
            if existing is None:
                twin_id = s.insert_twin(c, conn_id, **fields)
            else:
                twin_id = existing.id
                s.update_twin(c, twin_id, **fields)
            _close_intent(c, conn_id, marker_prefix)
            row = s.twin_by_id(c, twin_id)
            assert row is not None
            return row

        return await self.db.write(write)

    async def _settle_intents(self) -> None:
        """At start: every create that may have reached the tracker is adopted by its marker."""
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT conn_id, remote_entity_id, marker, project FROM intents WHERE done = 0"
            ).fetchall()
        )
        for conn_id, remote_id, marker, project in rows:
            conn_id = bytes(conn_id)
            try:
                found = await self.adapter.find_issue_by_marker(str(project), str(marker))
            except TrackerError as exc:
                log.warning("sync: cannot settle the create intent %s yet: %s", marker, exc)
                continue
            if found is None:
                await self.db.write(functools.partial(_close_intent, conn_id=conn_id, marker=str(marker)))
                continue
            stub = Replica(entity=EntityRef(id=str(remote_id)))
            twin = await self.db.read(
                functools.partial(s.twin_by_remote, conn_id=conn_id, remote_id=str(remote_id))
            )
            await self._record_adopted(conn_id, found, stub, twin)
            log.info("sync: adopted %s, created before a crash (%s)", found.key, marker)

    async def _apply_comments(
        self, conn_id: bytes, local: IssueSnapshot, cs: ChangeSet, added: list[tuple[str, str]]
    ) -> None:
        """Add, edit and delete comments. Appends the (local id, remote id) of each comment added or
        adopted to ``added`` as it goes, for the caller to record (also when this raises): one write
        for all the mappings; a comment added but not recorded (tracker fault or crash half-way)
        carries its marker and is adopted on the next attempt."""
        conn_text = connection_id_text(conn_id)
        by_marker = {m: cid for cid, m in local.comment_markers.items()}
        for add in cs.comments_add:
            marker = f"tandem:{conn_text}:{add.remote_id}"
            local_cid = by_marker.get(marker)
            if local_cid is None:
                comment = await self.adapter.add_comment(
                    local.key, add.body, internal=add.internal, marker=marker
                )
                self._crash("add_comment")
                local_cid = comment.id
            added.append((local_cid, add.remote_id))
        await self._edit_comments(conn_id, local, cs)

    async def _edit_comments(self, conn_id: bytes, local: IssueSnapshot, cs: ChangeSet) -> None:
        for edit in cs.comments_edit:
            try:
                await self.adapter.update_comment(local.key, edit.local_id, edit.body, internal=edit.internal)
            except TrackerNotFound:
                await self.db.write(
                    functools.partial(
                        s.drop_comment,
                        conn_id=conn_id,
                        local_issue_id=local.id,
                        remote_comment_id=edit.remote_id,
                    )
                )
        for delete in cs.comments_delete:
            with contextlib.suppress(TrackerNotFound):
                await self.adapter.delete_comment(local.key, delete.local_id)
            await self.db.write(
                functools.partial(
                    s.drop_comment,
                    conn_id=conn_id,
                    local_issue_id=local.id,
                    remote_comment_id=delete.remote_id,
                )
            )

    async def _apply_attachments(
        self, conn_id: bytes, local: IssueSnapshot, remote_entity: str, cs: ChangeSet, warnings: list[str]
    ) -> list[BlobRequest]:
        """Attachments whose content must be fetched from the peer: record the transfer, return the
        requests (sent after the outcome is recorded; re-sent at start if lost)."""
        requests: list[BlobRequest] = []
        by_sha = {a.sha256: a.id for a in local.attachments}
        limit = self.settings.attachment_max_bytes
        for add in cs.attachments_add:
            remote = add.remote
            if remote.size > limit:
                message = (
                    f"attachment {remote.filename!r} ({remote.size} bytes) is larger than the limit "
                    f"({limit} bytes); not copied"
                )
                warnings.append(message)
                await self._error(conn_id, local.key, "config", message, local_id=local.id)
                continue
            existing = by_sha.get(remote.sha256)
            transfer = s.Transfer(
                local.id, remote.id, remote.sha256, remote.filename, remote.mime_type, remote.size
            )

            def write(c: sqlite3.Connection, t: s.Transfer = transfer, ex: str | None = existing) -> bool:
                known = s.attachment_map(c, conn_id, t.local_issue_id)
                if known.get(t.remote_attachment_id):
                    return False  # copied already
                # Still requested: an earlier attempt of this apply (cut short by a transient fault
                # before its request went out) recorded it; ask again (a duplicate answer is ignored).
                s.put_transfer(c, conn_id, t)
                if ex is not None:
                    s.finish_transfer(
                        c, conn_id, t.local_issue_id, t.remote_attachment_id, local_attachment_id=ex
                    )
                    return False
                return True

            if await self.db.write(write):
                requests.append(
                    BlobRequest(sha256=remote.sha256, entity_id=remote_entity, attachment_id=remote.id)
                )
        for delete in cs.attachments_delete:
            warnings.append(
                f"attachment {delete.local_id} was deleted by the peer; the tracker adapter cannot delete it"
            )
        return requests

    async def _pause_incoming(
        self, rt: Runtime, seq: int | None, msg: ReplicaMessage, twin: s.TwinRow | None, exc: RuleError
    ) -> None:
        conn_id = rt.row.id
        replica = msg.replica
        entity = (
            (twin.local_key if twin and twin.local_key else None) or replica.entity.key or replica.entity.id
        )
        body = _replica_text(replica)

        def write(c: sqlite3.Connection) -> s.TwinRow:
            existing = twin or s.twin_by_remote(c, conn_id, replica.entity.id)
            if existing is None:
                twin_id = s.insert_twin(
                    c,
                    conn_id,
                    remote_id=replica.entity.id,
                    remote_key=replica.entity.key,
                    remote_url=replica.entity.url,
                    state="paused",
                    pending_replica=body,
                    pending_version=msg.version,
                )
            else:
                twin_id = existing.id
                s.update_twin(c, twin_id, state="paused", pending_replica=body, pending_version=msg.version)
            s.record_error(
                c,
                conn_id=conn_id,
                entity=entity,
                kind="rule",
                message=f"incoming rules: {exc}",
                line=exc.line,
                paused=True,
                local_id=existing.local_id if existing else None,
                remote_id=replica.entity.id,
                direction="incoming",
            )
            row = s.twin_by_id(c, twin_id)
            assert row is not None
            return row

        row = await self.db.write(write)
        await self._reply(rt, msg, "failed", f"rule error on the receiving side: {exc}", row, answers=seq)

    async def _finish(
        self,
        rt: Runtime,
        seq: int | None,
        msg: ReplicaMessage,
        twin: s.TwinRow | None,
        outcome: str,
        reason: str | None,
        fresh: IssueSnapshot | None,
        *,
        applied: str | None = None,
        baseline: str | None = None,
        conflicts: ChangeSet | None = None,
        keep_pending: bool = False,
        comments: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Record the outcome in one transaction, then queue the reply and mark the inbox row
        processed in another (the outbox's: the mark never goes without the reply).

        A crash before the reply processes the replica again after the restart: every apply step is
        idempotent, and a replica already applied is answered again (``_on_replica``), so the
        sender's twin always learns the outcome (a lost reply left it ``pending`` for good)."""
        conn_id = rt.row.id
        replica = msg.replica
        body = _replica_text(replica)
        result = outcome if not reason else f"{outcome}: {reason}"

        def write(c: sqlite3.Connection) -> s.TwinRow | None:
            if comments and fresh is not None:  # comments added to the issue ``fresh`` was read of
                s.put_comments(c, conn_id, fresh.id, comments)
            row = s.twin_by_id(c, twin.id) if twin is not None else None
            if row is not None:
                changes: dict[str, Any] = {"last_result": result}
                if outcome == "applied":
                    changes.update(
                        last_received_version=max(msg.version, row.last_received_version),
                        last_received_replica=body,
                        last_received_at=s.now(),
                        last_applied=applied,
                        baseline_fingerprint=baseline,
                        # What we last sent is superseded: the peer now knows the applied state
                        # (the baseline), so a value returning to what we once sent must go out.
                        last_sent_fingerprint=None,
                        pending_replica=None,
                        pending_version=None,
                        state="linked",
                    )
                    if fresh is not None:
                        changes["local_key"] = fresh.key
                    changes["remote_key"] = replica.entity.key or row.remote_key
                    changes["remote_url"] = replica.entity.url or row.remote_url
                elif outcome == "ignored" and msg.version > row.last_received_version:
                    changes["last_received_version"] = msg.version
                elif outcome == "failed" and keep_pending:
                    changes.update(pending_replica=body, pending_version=msg.version)
                elif outcome == "failed":
                    changes.update(pending_replica=body, pending_version=msg.version)
                s.update_twin(c, row.id, **changes)
            if conflicts is not None and conflicts.conflicts:
                entity = (fresh.key if fresh else None) or replica.entity.key or replica.entity.id
                c.executemany(
                    "INSERT INTO conflicts (conn_id, entity, field, local_value, remote_value, winner, "
                    "reason, at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            conn_id,
                            entity,
                            k.field,
                            s.dumps(k.local_value),
                            s.dumps(k.remote_value),
                            k.winner,
                            k.reason,
                            s.now(),
                        )
                        for k in conflicts.conflicts
                    ],
                )
            if outcome == "applied" and row is not None:
                s.resolve_errors(
                    c, conn_id=conn_id, entity=row.local_key, kinds=("rule", "tracker", "internal")
                )
            if row is None or fresh is not None:  # the reply names the twin from ``fresh``
                return None
            return s.twin_by_id(c, row.id)

        row = await self.db.write(write)
        await self._reply(rt, msg, outcome, reason, row, fresh, answers=seq)

    async def _reply(
        self,
        rt: Runtime,
        msg: ReplicaMessage,
        outcome: str,
        reason: str | None,
        twin: s.TwinRow | None,
        fresh: IssueSnapshot | None = None,
        *,
        answers: int | None = None,
    ) -> None:
        """Answer the peer; ``answers``: the inbox row of ``msg``, marked processed with the reply."""
        ref: EntityRef | None = None
        if fresh is not None:
            ref = fresh.ref()
        elif twin is not None and twin.local_id:
            ref = EntityRef(id=twin.local_id, key=twin.local_key)
        result = ReplicaResult(
            entity_id=msg.replica.entity.id,
            version=msg.version,
            outcome=cast(Any, outcome),
            reason=(reason or None) if reason is None or len(reason) < 2000 else reason[:2000],
            twin=ref,
        )
        await self._send(rt, Result(results=[result]), answers)

    # =============================================================================================
    # Incoming: results, unlink

    async def _on_result(self, rt: Runtime, message: Result) -> None:
        conn_id = rt.row.id

        def write_all(c: sqlite3.Connection) -> None:  # one transaction for a Result of many replicas
            for r in message.results:
                write(c, r)

        def write(c: sqlite3.Connection, r: ReplicaResult) -> None:
            twin = s.twin_by_local(c, conn_id, r.entity_id)
            if twin is None:
                return
            changes: dict[str, Any] = {
                "last_result": r.outcome if not r.reason else f"{r.outcome}: {r.reason}"
            }
            if (
                r.outcome == "applied"
                and r.version == twin.last_sent_version
                and twin.last_sent_values is not None
                and (twin.last_received_at or 0) <= (twin.last_sent_at or 0)
            ):
                # The peer now holds what we sent: that is the new sync point for conflicts.
                changes["last_applied"] = twin.last_sent_values
            if r.twin is not None and twin.remote_id in (None, r.twin.id):
                other = s.twin_by_remote(c, conn_id, r.twin.id)
                if other is None or other.id == twin.id:
                    changes.update(remote_id=r.twin.id, remote_key=r.twin.key, remote_url=r.twin.url)
                    if twin.state == "pending":
                        changes["state"] = "linked"
            s.update_twin(c, twin.id, **changes)

        await self.db.write(write_all)

    async def _on_unlink(self, rt: Runtime, message: Unlink) -> None:
        conn_id = rt.row.id

        def write(c: sqlite3.Connection) -> None:
            twin = s.twin_by_remote(c, conn_id, message.entity.id)
            if twin is not None:
                s.update_twin(
                    c, twin.id, state="unlinked", last_result=f"unlinked by the peer{_why(message.reason)}"
                )

        await self.db.write(write)

    # =============================================================================================
    # Attachments

    async def _serve_blob(self, rt: Runtime, req: BlobRequest) -> None:
        """The peer asks for the content of an attachment we shared."""
        conn_id = rt.row.id
        twin = await self.db.read(lambda c: s.twin_by_local(c, conn_id, req.entity_id))
        shared = None
        if twin is not None and twin.last_sent_replica:
            sent = json.loads(twin.last_sent_replica)
            shared = next(
                (
                    a
                    for a in sent.get("attachments", [])
                    if a.get("id") == req.attachment_id and a.get("sha256") == req.sha256
                ),
                None,
            )
        if shared is None:
            await self.manager.send(
                rt,
                [
                    Blob(
                        sha256=req.sha256, offset=0, total=0, data="", error="not shared with this connection"
                    )
                ],
            )
            return
        size = int(shared.get("size") or 0)
        limit = self.settings.attachment_max_bytes
        if size > limit:
            error = (
                f"attachment {shared.get('filename')!r} ({size} bytes) is larger than the sender's "
                f"limit ({limit} bytes)"
            )
            await self.manager.send(
                rt, [Blob(sha256=req.sha256, offset=0, total=size, data="", error=error[:4000])]
            )
            await self._error(
                conn_id, twin.local_key if twin else None, "config", error, local_id=req.entity_id
            )
            return
        try:
            content = await self.adapter.get_attachment_content(req.attachment_id)
        except TrackerTransient:
            raise
        except TrackerError as exc:
            await self.manager.send(
                rt,
                [Blob(sha256=req.sha256, offset=0, total=0, data="", error=f"cannot read it: {exc}"[:500])],
            )
            return
        if hashlib.sha256(content).hexdigest() != req.sha256 or len(content) > limit:
            await self.manager.send(
                rt,
                [
                    Blob(
                        sha256=req.sha256,
                        offset=0,
                        total=len(content),
                        data="",
                        error="the content changed or is too large",
                    )
                ],
            )
            return
        step = self.settings.blob_chunk_bytes
        chunks = [
            Blob(sha256=req.sha256, offset=off, total=len(content), data=_b64(content[off : off + step]))
            for off in range(0, max(len(content), 1), step)
        ]
        for i in range(0, len(chunks), _BLOB_BATCH):
            await self.manager.send(rt, chunks[i : i + _BLOB_BATCH])

    async def _on_blob(self, rt: Runtime, blob: Blob) -> None:
        conn_id = rt.row.id
        transfers = await self.db.read(lambda c: s.transfers_for(c, conn_id, blob.sha256))
        if not transfers:
            return  # already done (a duplicate request was answered twice)
        limit = self.settings.attachment_max_bytes
        problem = blob.error
        data = b""
        if problem is None:
            try:
                data = _unb64(blob.data)
            except ValueError:
                problem = "a chunk is not base64url"
        if problem is None and (blob.total > limit or blob.offset + len(data) > blob.total):
            problem = f"the content is larger than announced or than the limit ({limit} bytes)"
        if problem is not None:
            await self._fail_transfers(
                conn_id, blob.sha256, transfers, f"the peer could not send it: {problem}"
            )
            return
        staged = await self.db.write(lambda c: s.put_chunk(c, conn_id, blob.sha256, blob.offset, data))
        if staged < blob.total:
            return
        content = await self.db.read(lambda c: s.read_chunks(c, conn_id, blob.sha256))
        if len(content) != blob.total or hashlib.sha256(content).hexdigest() != blob.sha256:
            await self._fail_transfers(
                conn_id, blob.sha256, transfers, "the content does not match its sha256"
            )
            return
        for t in transfers:
            async with self._locks.hold((conn_id, "l", t.local_issue_id)):
                issue = await self.adapter.get_issue(t.local_issue_id)
                existing = next((a.id for a in issue.attachments if a.sha256 == t.sha256), None)
                uploaded = existing is None
                if existing is None:
                    added = await self.adapter.add_attachment(
                        issue.key, t.filename, content, mime_type=t.mime_type
                    )
                    self._crash("add_attachment")
                    existing = added.id
                await self.db.write(
                    functools.partial(
                        s.finish_transfer,
                        conn_id=conn_id,
                        local_issue_id=t.local_issue_id,
                        remote_attachment_id=t.remote_attachment_id,
                        local_attachment_id=existing,
                    )
                )
                if uploaded:  # the issue is as it was when the baseline was taken otherwise
                    await self._refresh_baseline(rt, t.local_issue_id)
        await self.db.write(lambda c: s.drop_chunks(c, conn_id, blob.sha256))

    async def _refresh_baseline(self, rt: Runtime, local_id: str) -> None:
        """After our own upload the issue's outgoing replica is unchanged (received attachments are
        never sent back); refresh the baseline anyway so nothing of our write looks new."""
        conn_id = rt.row.id
        twin = await self.db.read(lambda c: s.twin_by_local(c, conn_id, local_id))
        if twin is None or twin.baseline_fingerprint is None:
            return
        fp = await self._outgoing_fp(rt, await self.adapter.get_issue(local_id))
        if fp is not None:
            await self.db.write(lambda c: s.update_twin(c, twin.id, baseline_fingerprint=fp))

    async def _fail_transfers(
        self, conn_id: bytes, sha256: str, transfers: list[s.Transfer], why: str
    ) -> None:
        for t in transfers:
            twin = await self.db.read(
                functools.partial(s.twin_by_local, conn_id=conn_id, local_id=t.local_issue_id)
            )
            entity = twin.local_key if twin else t.local_issue_id
            await self.db.write(
                functools.partial(
                    s.finish_transfer,
                    conn_id=conn_id,
                    local_issue_id=t.local_issue_id,
                    remote_attachment_id=t.remote_attachment_id,
                    local_attachment_id=None,
                    error=why,
                )
            )
            await self._error(
                conn_id, entity, "peer", f"attachment {t.filename!r}: {why}", local_id=t.local_issue_id
            )
        await self.db.write(lambda c: s.drop_chunks(c, conn_id, sha256))

    async def _resend_blob_requests(self) -> None:
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT a.conn_id, a.sha256, a.remote_attachment_id, t.remote_id FROM twin_attachments a "
                "JOIN twins t ON t.conn_id = a.conn_id AND t.local_id = a.local_issue_id "
                "WHERE a.state = 'requested' AND a.direction = 'in'"
            ).fetchall()
        )
        for conn_id, sha, remote_att, remote_id in rows:
            rt = self._rt_by_id(bytes(conn_id))
            if rt is None or not self._syncing(rt) or not remote_id:
                continue
            with contextlib.suppress(ManagerError):
                await self.manager.send(
                    rt,
                    [BlobRequest(sha256=str(sha), entity_id=str(remote_id), attachment_id=str(remote_att))],
                )

    # =============================================================================================
    # Errors

    async def _error(
        self,
        conn_id: bytes | None,
        entity: str | None,
        kind: str,
        message: str,
        *,
        state: str = "open",
        local_id: str | None = None,
        remote_id: str | None = None,
        direction: str | None = None,
    ) -> int:
        if state == "open":
            log.warning("sync error (%s) %s: %s", kind, entity or self._name_of(conn_id) or "", message)
        elif state == "retrying":
            self._retry_entities.add(entity)
        return await self.db.write(
            lambda c: s.record_error(
                c,
                conn_id=conn_id,
                entity=entity,
                kind=kind,
                message=message,
                state=state,
                local_id=local_id,
                remote_id=remote_id,
                direction=direction,
            )
        )

    async def _resolve_retrying(self, conn_id: bytes | None, entity: str | None) -> None:
        """Resolve the retrying errors of ``entity`` (None: of the messages that name none, such as
        a Blob) after a success; on ``conn_id`` only, unless it is None."""
        if self._retry_loaded and entity not in self._retry_entities:
            return  # nothing of it is retrying: no write (this runs after every message)
        await self.db.write(
            lambda c: c.execute(
                "UPDATE sync_errors SET state = 'resolved', last_seen = ? WHERE state = 'retrying' "
                "AND entity IS ? AND (conn_id IS ? OR ? IS NULL)",
                (s.now(), entity, conn_id, conn_id),
            )
        )

    def _error_view(self, row: s.ErrorRow) -> ErrorView:
        kind = (
            row.kind
            if row.kind in ("rule", "tracker", "peer", "config", "conflict", "internal")
            else "internal"
        )
        return ErrorView(
            id=row.id,
            connection=self._name_of(bytes(row.conn_id) if row.conn_id is not None else None),
            entity=row.entity,
            kind=cast(Any, kind),
            message=row.message,
            line=row.line,
            state=cast(Any, row.state),
            paused=bool(row.paused),
            count=row.count,
            first_seen=_at(row.first_seen),
            last_seen=_at(row.last_seen),
        )

    async def errors(self, *, include_resolved: bool = False) -> list[ErrorView]:
        rows = await self.db.read(lambda c: s.list_errors(c, include_resolved))
        return [self._error_view(r) for r in rows]

    async def _get_error(self, error_id: int) -> s.ErrorRow:
        row = await self.db.read(lambda c: s.get_error(c, error_id))
        if row is None:
            raise NotFound(f"no error with id {error_id}")
        return row

    async def retry(self, error_id: int) -> ErrorView:
        row = await self._get_error(error_id)
        conn_id = bytes(row.conn_id) if row.conn_id is not None else None
        rt = self._rt_by_id(conn_id) if conn_id is not None else None
        await self.db.write(
            lambda c: c.execute(
                "UPDATE sync_errors SET state = 'resolved', paused = 0 WHERE id = ?", (error_id,)
            )
        )
        if rt is not None and row.direction == "incoming" and row.remote_id:
            twin = await self.db.read(lambda c: s.twin_by_remote(c, rt.row.id, row.remote_id or ""))
            if twin is not None and twin.pending_replica:
                paused = twin
                message = ReplicaMessage(
                    replica=Replica.model_validate_json(twin.pending_replica),
                    version=max(1, twin.pending_version or 1),
                    reason="retry",
                )
                await self.db.write(
                    lambda c: s.update_twin(c, paused.id, state="linked" if paused.local_id else "pending")
                )
                await self._process_with_retry_direct(rt, message)
        elif rt is not None and (row.local_id or row.entity):
            twin = await self.db.read(lambda c: s.twin_by_local(c, rt.row.id, row.local_id or ""))
            if twin is not None and twin.state == "paused":
                await self.db.write(
                    lambda c: s.update_twin(c, twin.id, state="linked" if twin.remote_id else "pending")
                )
            try:
                snapshot = await self.adapter.get_issue(row.local_id or row.entity or "")
            except TrackerError as exc:
                await self._error(conn_id, row.entity, "tracker", f"retry: cannot read the issue: {exc}")
            else:
                await self._send_entity(rt, snapshot, "retry", manual=True, force=True)
        elif row.entity and rt is None:
            await self.local_change(row.entity, reason="retry")
        return self._error_view(await self._get_error(error_id))

    async def _process_with_retry_direct(self, rt: Runtime, message: ReplicaMessage) -> None:
        try:
            await self._on_replica(rt, None, message, retry=True)
        except TrackerError as exc:
            await self._error(rt.row.id, self._entity_of(message), "tracker", str(exc))

    async def resolve(self, error_id: int) -> ErrorView:
        row = await self._get_error(error_id)
        conn_id = bytes(row.conn_id) if row.conn_id is not None else None

        def write(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE sync_errors SET state = 'resolved', paused = 0, last_seen = ? WHERE id = ?",
                (s.now(), error_id),
            )
            if conn_id is None or not row.paused:
                return
            twin = None
            if row.local_id:
                twin = s.twin_by_local(c, conn_id, row.local_id)
            if twin is None and row.remote_id:
                twin = s.twin_by_remote(c, conn_id, row.remote_id)
            if twin is not None and twin.state == "paused":
                s.update_twin(
                    c,
                    twin.id,
                    state="linked" if twin.remote_id and twin.local_id else "pending",
                    pending_replica=None,
                )

        await self.db.write(write)
        return self._error_view(await self._get_error(error_id))

    async def conflicts(self, connection: str | None = None) -> list[ConflictView]:
        conn_id = self._rt(connection).row.id if connection else None
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT id, conn_id, entity, field, local_value, remote_value, winner, at FROM conflicts "
                "WHERE (? IS NULL OR conn_id = ?) ORDER BY id",
                (conn_id, conn_id),
            ).fetchall()
        )
        return [
            ConflictView(
                id=int(r[0]),
                connection=self._name_of(bytes(r[1])) or "",
                entity=str(r[2]),
                field=str(r[3]),
                local_value=json.loads(r[4]) if r[4] else None,
                remote_value=json.loads(r[5]) if r[5] else None,
                winner=r[6],
                at=_at(r[7]),
            )
            for r in rows
        ]

    # =============================================================================================
    # Triggers

    _TRIGGER_COLS = "id, conn_id, query, note, active, created_at"

    def _trigger_view(self, r: Sequence[Any]) -> TriggerView:
        return TriggerView(
            id=int(r[0]),
            connection=self._name_of(bytes(r[1])) or "",
            query=str(r[2]),
            note=str(r[3]),
            active=bool(r[4]),
            created_at=_at(r[5]),
        )

    async def add_trigger(self, connection: str, query: str, note: str = "") -> TriggerView:
        rt = self._rt(connection)
        if not query.strip():
            raise InvalidInput("a trigger needs a JQL query")
        try:
            compile_query(query)
        except JqlError as exc:
            raise InvalidInput(f"invalid JQL: {exc}") from None
        conn_id = rt.row.id

        def write(c: sqlite3.Connection) -> tuple[Any, ...]:
            cur = c.execute(
                "INSERT INTO triggers (conn_id, query, note, active, created_at) VALUES (?, ?, ?, 1, ?)",
                (conn_id, query, note, s.now()),
            )
            return tuple(
                c.execute(
                    f"SELECT {self._TRIGGER_COLS} FROM triggers WHERE id = ?",
                    (cur.lastrowid,),
                ).fetchone()
            )

        return self._trigger_view(await self.db.write(write))

    async def list_triggers(self, connection: str | None = None) -> list[TriggerView]:
        conn_id = self._rt(connection).row.id if connection else None
        rows = await self.db.read(
            lambda c: c.execute(
                f"SELECT {self._TRIGGER_COLS} FROM triggers WHERE (? IS NULL OR conn_id = ?) ORDER BY id",
                (conn_id, conn_id),
            ).fetchall()
        )
        return [self._trigger_view(r) for r in rows]

    async def set_trigger_active(self, trigger_id: int, active: bool) -> TriggerView:
        def write(c: sqlite3.Connection) -> tuple[Any, ...] | None:
            c.execute("UPDATE triggers SET active = ? WHERE id = ?", (int(active), trigger_id))
            row = c.execute(
                f"SELECT {self._TRIGGER_COLS} FROM triggers WHERE id = ?",
                (trigger_id,),
            ).fetchone()
            return None if row is None else tuple(row)

        row = await self.db.write(write)
        if row is None:
            raise NotFound(f"no trigger with id {trigger_id}")
        return self._trigger_view(row)

    async def remove_trigger(self, trigger_id: int) -> None:
        gone = await self.db.write(
            lambda c: c.execute("DELETE FROM triggers WHERE id = ?", (trigger_id,)).rowcount
        )
        if not gone:
            raise NotFound(f"no trigger with id {trigger_id}")

    # =============================================================================================
    # Manual sync, bulk, unlink, status

    async def _snapshot(self, key: str) -> IssueSnapshot:
        try:
            return await self.adapter.get_issue(key)
        except TrackerNotFound:
            raise NotFound(f"no issue {key!r} on this node's tracker") from None
        except TrackerError as exc:
            raise SyncError(f"cannot read {key!r} from the tracker: {exc}") from None

    async def sync(self, key: str, connection: str) -> SyncOutcome:
        rt = self._rt(connection)
        if not self._syncing(rt):
            raise InvalidInput(f"connection {connection!r} is {rt.row.state}; it cannot sync")
        snapshot = await self._snapshot(key)
        return await self._send_entity(rt, snapshot, "manual", manual=True)

    async def start_bulk(self, connection: str, query: str) -> BulkJobView:
        rt = self._rt(connection)
        if not self._syncing(rt):
            raise InvalidInput(f"connection {connection!r} is {rt.row.state}; it cannot sync")
        try:
            compile_query(query)
        except JqlError as exc:
            raise InvalidInput(f"invalid JQL: {exc}") from None
        job_id = await self.db.write(
            lambda c: int(
                c.execute(
                    "INSERT INTO bulk_jobs (conn_id, query, state, started_at) VALUES (?, ?, 'running', ?)",
                    (rt.row.id, query, s.now()),
                ).lastrowid
                or 0
            )
        )
        self._spawn(self._run_bulk(job_id))
        return await self.bulk_job(job_id)

    async def _run_bulk(self, job_id: int) -> None:
        row = await self.db.read(
            lambda c: c.execute(
                "SELECT conn_id, query, listed, page_token FROM bulk_jobs WHERE id = ?", (job_id,)
            ).fetchone()
        )
        if row is None:
            return
        conn_id, query, listed, token = bytes(row[0]), str(row[1]), bool(row[2]), row[3]
        rt = self._rt_by_id(conn_id)
        if rt is None:
            await self._end_bulk(job_id, "failed", "the connection no longer exists")
            return
        try:
            # Issues are read by search pages (full snapshots: one call per page, not one per issue)
            # and sent as each page arrives, while the next page is being fetched. Resumable: a
            # page's keys and the token of the page after it are stored together BEFORE its issues
            # are sent; after a crash, items still 'todo' are read again (get_issues) and sent,
            # then listing goes on from the stored token.
            todo = await self.db.read(
                lambda c: [
                    str(r[0])
                    for r in c.execute(
                        "SELECT issue_key FROM bulk_items WHERE job_id = ? AND state = 'todo' ORDER BY "
                        "issue_key",
                        (job_id,),
                    )
                ]
            )
            step = self.settings.reconcile_batch
            for i in range(0, len(todo), step):
                keys = todo[i : i + step]
                found = await self.adapter.get_issues(keys)
                await self._bulk_send(rt, job_id, [found.get(k) or k for k in keys])
            next_page: asyncio.Task[SearchPage] | None = None
            if not listed:
                next_page = asyncio.create_task(self.adapter.search(query, page_token=token, page_size=step))
            try:
                while next_page is not None:
                    page = await next_page
                    next_page = None
                    token = page.next_page_token
                    listed = token is None or not page.issues
                    keys = [i.key for i in page.issues]

                    def write(
                        c: sqlite3.Connection, keys: list[str] = keys, tok: Any = token, done: bool = listed
                    ) -> set[str]:
                        c.executemany(
                            "INSERT OR IGNORE INTO bulk_items (job_id, issue_key) VALUES (?, ?)",
                            [(job_id, k) for k in keys],
                        )
                        c.execute(
                            "UPDATE bulk_jobs SET page_token = ?, listed = ? WHERE id = ?",
                            (tok, int(done), job_id),
                        )
                        if done:
                            c.execute(
                                "UPDATE bulk_jobs SET total = (SELECT COUNT(*) FROM bulk_items WHERE "
                                "job_id = ?) WHERE id = ?",
                                (job_id, job_id),
                            )
                        marks = ",".join("?" * len(keys))
                        return {
                            str(r[0])
                            for r in c.execute(
                                f"SELECT issue_key FROM bulk_items WHERE job_id = ? AND state = 'todo' "
                                f"AND issue_key IN ({marks})",
                                (job_id, *keys),
                            )
                        }

                    still = await self.db.write(write)
                    if not listed:
                        next_page = asyncio.create_task(
                            self.adapter.search(query, page_token=token, page_size=step)
                        )
                    # an issue listed on an earlier page too (the order moved) is sent once
                    await self._bulk_send(rt, job_id, [i for i in page.issues if i.key in still])
            finally:
                if next_page is not None:
                    await cancel_and_wait([next_page])
            await self._end_bulk(job_id, "done", None)
        except TrackerError as exc:
            await self._end_bulk(job_id, "failed", f"the tracker refused the query or failed: {exc}")

    async def _bulk_send(self, rt: Runtime, job_id: int, issues: Sequence[IssueSnapshot | str]) -> None:
        """Send a page of a bulk job, ``apply_concurrency`` at a time, recording each item's outcome
        and the job's counts as it is done (the writes of items done together share a transaction).
        A key alone: the issue no longer exists."""
        limit = asyncio.Semaphore(self.settings.apply_concurrency)

        async def one(issue: IssueSnapshot | str) -> None:
            async with limit:
                key, error = (
                    (issue, f"{issue} no longer exists") if isinstance(issue, str) else (issue.key, None)
                )
                if not isinstance(issue, str):
                    try:
                        await self._send_entity(rt, issue, "bulk", manual=True)
                    except (TrackerError, SyncError) as exc:
                        error = str(exc)
                state = "failed" if error else "done"
                await self.db.write(
                    lambda c: (
                        c.execute(
                            "UPDATE bulk_items SET state = ?, error = ? WHERE job_id = ? AND issue_key = ?",
                            (state, error, job_id, key),
                        ),
                        c.execute(f"UPDATE bulk_jobs SET {state} = {state} + 1 WHERE id = ?", (job_id,)),
                    )
                )

        await asyncio.gather(*(one(i) for i in issues))

    async def _end_bulk(self, job_id: int, state: str, error: str | None) -> None:
        await self.db.write(
            lambda c: c.execute(
                "UPDATE bulk_jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                (state, error, s.now(), job_id),
            )
        )

    def _bulk_view(self, r: Sequence[Any]) -> BulkJobView:
        return BulkJobView(
            id=int(r[0]),
            connection=self._name_of(bytes(r[1])) or "",
            query=str(r[2]),
            state=r[3],
            total=r[4],
            done=int(r[5]),
            failed=int(r[6]),
            started_at=_at(r[7]),
            finished_at=_ts(r[8]),
            error=r[9],
        )

    _BULK_COLS = "id, conn_id, query, state, total, done, failed, started_at, finished_at, error"

    async def bulk_job(self, job_id: int) -> BulkJobView:
        row = await self.db.read(
            lambda c: c.execute(f"SELECT {self._BULK_COLS} FROM bulk_jobs WHERE id = ?", (job_id,)).fetchone()
        )
        if row is None:
            raise NotFound(f"no bulk job with id {job_id}")
        return self._bulk_view(row)

    async def list_bulk_jobs(self) -> list[BulkJobView]:
        rows = await self.db.read(
            lambda c: c.execute(f"SELECT {self._BULK_COLS} FROM bulk_jobs ORDER BY id").fetchall()
        )
        return [self._bulk_view(r) for r in rows]

    async def unlink(self, key: str, connection: str) -> TwinView:
        rt = self._rt(connection)
        twins = [t for t in await self.db.read(lambda c: s.twins_of_issue(c, key)) if t.conn_id == rt.row.id]
        if not twins or twins[0].local_id is None:
            raise NotFound(f"{key!r} is not synced on connection {connection!r}")
        twin = twins[0]
        local_id = twin.local_id or ""
        async with self._locks.hold((rt.row.id, "l", local_id)):
            try:
                await self.manager.send(
                    rt,
                    [
                        Unlink(
                            entity=EntityRef(id=local_id, key=twin.local_key), reason="unlinked by the admin"
                        )
                    ],
                )
            except ManagerError as exc:
                raise SyncError(f"cannot tell the peer: {exc}") from None
            await self.db.write(lambda c: s.update_twin(c, twin.id, state="unlinked", last_result="unlinked"))
        views = await self.status(key)
        return next(v for v in views if v.connection == rt.name)

    async def status(self, key: str) -> list[TwinView]:
        rows = await self.db.read(lambda c: s.twins_of_issue(c, key))
        out: list[TwinView] = []
        for t in rows:
            if t.local_id is None:
                continue
            out.append(
                TwinView(
                    connection=self._name_of(t.conn_id) or "",
                    local_key=t.local_key or t.local_id,
                    local_id=t.local_id,
                    remote_key=t.remote_key,
                    remote_url=t.remote_url,
                    state=cast(Any, t.state),
                    last_sent_at=_ts(t.last_sent_at),
                    last_sent_version=t.last_sent_version or None,
                    last_received_at=_ts(t.last_received_at),
                    last_received_version=t.last_received_version or None,
                    last_result=t.last_result,
                    local_replica=json.loads(t.last_sent_replica) if t.last_sent_replica else None,
                    remote_replica=t.received(),
                )
            )
        return out

    # =============================================================================================
    # Rules storage: draft → test → publish → rollback (RuleHistory semantics, persisted)

    @staticmethod
    def _check_direction(direction: str) -> Direction:
        if direction not in ("outgoing", "incoming"):
            raise InvalidInput(f"direction must be 'outgoing' or 'incoming', not {direction!r}")
        return cast(Direction, direction)

    def _rule_view(self, rt: Runtime, direction: Direction, r: Sequence[Any]) -> RuleVersionView:
        return RuleVersionView(
            connection=rt.name,
            direction=direction,
            version=int(r[0]),
            mode=r[1],
            source=str(r[2]),
            state=r[3],
            created_at=_at(r[4]),
        )

    async def rules(self, connection: str, direction: Direction) -> list[RuleVersionView]:
        rt = self._rt(connection)
        direction = self._check_direction(direction)
        rows = await self.db.read(
            lambda c: c.execute(
                "SELECT version, mode, source, state, created_at FROM rulesets WHERE conn_id = ? AND "
                "direction = ? "
                "ORDER BY version, state",
                (rt.row.id, direction),
            ).fetchall()
        )
        views = [self._rule_view(rt, direction, r) for r in rows]
        if not any(v.state == "published" for v in views):
            basic = self._basic(direction)
            views.insert(
                0,
                RuleVersionView(
                    connection=rt.name,
                    direction=direction,
                    version=0,
                    mode="basic",
                    source=basic.source,
                    state="published",
                    created_at=_at(rt.row.created_at),
                ),
            )
        return views

    async def save_draft(
        self, connection: str, direction: Direction, mode: RuleMode, source: str
    ) -> RuleVersionView:
        rt = self._rt(connection)
        direction = self._check_direction(direction)
        if mode not in ("basic", "visual", "script"):
            raise InvalidInput(f"mode must be basic, visual or script, not {mode!r}")
        conn_id = rt.row.id

        def write(c: sqlite3.Connection) -> tuple[Any, ...]:
            c.execute(
                "DELETE FROM rulesets WHERE conn_id = ? AND direction = ? AND state = 'draft'",
                (conn_id, direction),
            )
            version = _next_version(c, conn_id, direction)
            c.execute(
                "INSERT INTO rulesets (conn_id, direction, version, mode, source, state, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'draft', ?)",
                (conn_id, direction, version, mode, source, s.now()),
            )
            return (version, mode, source, "draft", s.now())

        return self._rule_view(rt, direction, await self.db.write(write))

    async def _draft(self, conn_id: bytes, direction: Direction) -> RuleSet | None:
        row = await self.db.read(
            lambda c: c.execute(
                "SELECT version, mode, source FROM rulesets WHERE conn_id = ? AND direction = ? AND state "
                "= 'draft'",
                (conn_id, direction),
            ).fetchone()
        )
        if row is None:
            return None
        return RuleSet(mode=row[1], direction=direction, source=row[2], version=int(row[0]), state="draft")

    async def publish(self, connection: str, direction: Direction) -> RuleVersionView:
        rt = self._rt(connection)
        direction = self._check_direction(direction)
        conn_id = rt.row.id
        draft = await self._draft(conn_id, direction)
        if draft is None:
            raise RuleProblem("there is no draft to publish (save one first)")
        try:
            compiled = await asyncio.to_thread(compile_rules, draft)
        except RuleError as exc:
            raise RuleProblem(str(exc), line=exc.line, path=exc.path) from None

        def write(c: sqlite3.Connection) -> tuple[Any, ...]:
            current = c.execute(
                "SELECT version FROM rulesets WHERE conn_id = ? AND direction = ? AND state = 'published'",
                (conn_id, direction),
            ).fetchone()
            c.execute(
                "UPDATE rulesets SET state = 'superseded' WHERE conn_id = ? AND direction = ? AND state = "
                "'published'",
                (conn_id, direction),
            )
            c.execute(
                "DELETE FROM rulesets WHERE conn_id = ? AND direction = ? AND state = 'draft'",
                (conn_id, direction),
            )
            version = _next_version(c, conn_id, direction)
            t = s.now()
            c.execute(
                "INSERT INTO rulesets (conn_id, direction, version, mode, source, state, prev, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'published', ?, ?)",
                (conn_id, direction, version, draft.mode, draft.source, current[0] if current else None, t),
            )
            return (version, draft.mode, draft.source, "published", t)

        row = await self.db.write(write)
        self._rules[(conn_id, direction)] = compiled
        return self._rule_view(rt, direction, row)

    async def rollback(self, connection: str, direction: Direction) -> RuleVersionView:
        rt = self._rt(connection)
        direction = self._check_direction(direction)
        conn_id = rt.row.id

        def write(c: sqlite3.Connection) -> tuple[Any, ...]:
            current = c.execute(
                "SELECT version, prev FROM rulesets WHERE conn_id = ? AND direction = ? AND state = "
                "'published'",
                (conn_id, direction),
            ).fetchone()
            if current is None or current[1] is None:
                raise RuleProblem("there is no earlier published version to roll back to")
            target = c.execute(
                "SELECT version, mode, source, prev FROM rulesets WHERE conn_id = ? AND direction = ? AND "
                "version = ? "
                "AND state != 'draft'",
                (conn_id, direction, current[1]),
            ).fetchone()
            c.execute(
                "UPDATE rulesets SET state = 'superseded' WHERE conn_id = ? AND direction = ? AND state = "
                "'published'",
                (conn_id, direction),
            )
            version = _next_version(c, conn_id, direction)
            t = s.now()
            c.execute(
                "INSERT INTO rulesets (conn_id, direction, version, mode, source, state, prev, note, "
                "created_at) "
                "VALUES (?, ?, ?, ?, ?, 'published', ?, ?, ?)",
                (
                    conn_id,
                    direction,
                    version,
                    target[1],
                    target[2],
                    target[3],
                    f"rollback to v{target[0]}",
                    t,
                ),
            )
            c.execute(
                "UPDATE rulesets SET version = ? WHERE conn_id = ? AND direction = ? AND state = 'draft'",
                (version + 1, conn_id, direction),
            )
            return (version, target[1], target[2], "published", t)

        row = await self.db.write(write)
        self._rules.pop((conn_id, direction), None)
        return self._rule_view(rt, direction, row)

    async def test_rules(
        self,
        connection: str,
        direction: Direction,
        *,
        key: str | None = None,
        replica: dict[str, Any] | None = None,
        draft: bool = True,
    ) -> TestRunView:
        rt = self._rt(connection)
        direction = self._check_direction(direction)
        conn_id = rt.row.id
        ruleset = (await self._draft(conn_id, direction) if draft else None) or await self._current_ruleset(
            conn_id, direction
        )
        if direction == "outgoing":
            if not key:
                raise InvalidInput("an outgoing test run needs a local issue key")
            snapshot = await self._snapshot(key)
            received = await self.db.read(
                lambda c: (
                    s.received_comment_ids(c, conn_id, snapshot.id),
                    s.received_attachment_ids(c, conn_id, snapshot.id),
                )
            )
            result = await asyncio.to_thread(
                test_run, ruleset, snapshot=snapshot, outgoing_ctx=self._outgoing_ctx(rt, *received)
            )
        else:
            twin = None
            local = None
            if key:
                local = await self._snapshot(key)
                twin = await self.db.read(lambda c: s.twin_by_local(c, conn_id, local.id if local else ""))
            previous = None
            if replica is not None:
                try:
                    parsed = Replica.model_validate(replica)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(str(p) for p in first["loc"])
                    raise InvalidInput(f"not a replica: {where}: {first['msg']}") from None
                if twin is not None and twin.last_received_replica:
                    previous = Replica.model_validate_json(twin.last_received_replica)
            elif twin is not None and twin.last_received_replica:
                parsed = Replica.model_validate_json(twin.last_received_replica)
            else:
                raise InvalidInput(
                    "an incoming test run needs a replica (pasted, or stored for a synced issue KEY)"
                )
            maps = await self.db.read(
                lambda c: (
                    (s.comment_map(c, conn_id, local.id), s.attachment_map(c, conn_id, local.id))
                    if local
                    else ({}, {})
                )
            )
            ctx = IncomingContext(
                connection=connection_id_text(conn_id),
                project=self._project_for(rt) or "",
                default_issue_type=self.settings.default_issue_type,
                comment_map=maps[0],
                attachment_map=maps[1],
                last_applied=twin.applied() if twin else None,
                tracker=self.adapter.kind,
                peer_name=rt.row.peer_name or rt.name,
            )
            result = await asyncio.to_thread(
                test_run, ruleset, replica=parsed, previous=previous, local=local, incoming_ctx=ctx
            )
        if result.error is not None:
            raise RuleProblem(result.error, line=result.line, path=result.path)
        warnings = list(result.warnings)
        if result.skipped:
            warnings.insert(0, f"skipped: {result.skipped}")
        return TestRunView(
            direction=direction,
            replica=result.result if direction == "outgoing" else None,
            changes=result.result if direction == "incoming" else None,
            warnings=warnings,
        )


def _drop_unchanged_since_sync_point(cs: ChangeSet, last_applied: dict[str, Any]) -> None:
    """First replica from the peer of a twin WE created: there is no ``previous`` to tell which
    fields the peer changed, so the rules see every difference as a candidate (and a conflict).
    A remote value equal to the sync point (what we sent at creation, as the peer applied it) was
    not changed by the peer: never write it back over a local edit, and do not call it a conflict."""
    kept = []
    for conflict in cs.conflicts:
        name = conflict.field
        if name not in last_applied or not same(field_kind(name), conflict.remote_value, last_applied[name]):
            kept.append(conflict)
            continue
        if conflict.winner == "remote":
            if name == "status":
                cs.status = None
            elif field_kind(name) == "user":
                cs.users = [u for u in cs.users if u.field != name]
            elif field_kind(name) == "any" and cs.fields.custom_fields:
                cs.fields.custom_fields.pop(name, None)
            else:
                cs.fields.model_fields_set.discard(name)
    cs.conflicts = kept


def _freshen(previous: Replica, replica: Replica) -> Replica:
    """``previous`` with every field the sender changed SINCE it removed: a field that changed and
    came back to its old value (Open → Closed by us, echo not sent → reopened by a person) is a
    candidate again, because its change time moved even though its value did not."""
    updates: dict[str, Any] = {}
    custom = dict(previous.custom_fields)
    for key, when in replica.field_changed_at.items():
        before = previous.field_changed_at.get(key)
        if before is None or when <= before:
            continue
        if key.startswith("custom_fields."):
            custom.pop(key.removeprefix("custom_fields."), None)
        elif key in Replica.model_fields and key not in ("entity", "custom_fields", "extras"):
            updates[key] = None
    if not updates and custom == previous.custom_fields:
        return previous
    updates["custom_fields"] = custom
    return previous.model_copy(update=updates)


def _unprocessed(c: sqlite3.Connection, conn_id: bytes) -> list[tuple[int, bytes]]:
    cur = c.execute(
        "SELECT seq, body FROM inbox WHERE conn_id = ? AND processed_at IS NULL ORDER BY seq", (conn_id,)
    )
    return [(int(seq), bytes(body)) for seq, body in cur.fetchall()]


def _close_intent(c: sqlite3.Connection, conn_id: bytes, marker: str) -> None:
    # A closed intent is deleted: only open ones are ever read (``done`` stays for stores written
    # before migration 3). "done = 0" lets SQLite use the partial index intents_open.
    c.execute("DELETE FROM intents WHERE conn_id = ? AND marker = ? AND done = 0", (conn_id, marker))


def _next_version(c: sqlite3.Connection, conn_id: bytes, direction: str) -> int:
    row = c.execute(
        "SELECT MAX(version) FROM rulesets WHERE conn_id = ? AND direction = ? AND state != 'draft'",
        (conn_id, direction),
    ).fetchone()
    return int(row[0] or 0) + 1


def _why(reason: str) -> str:
    return f": {reason}" if reason else ""
