"""Intake on its own: a scripted tracker, a recording engine, a real store."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from node.store import Database
from node.sync.intake import CURSOR_POLL, Intake, IntakeSettings
from node.sync.store import get_cursor
from node.trackers.base import WebhookError

from .fakes import FakeTracker, RecordingEngine

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

MakeIntake = Callable[..., Intake]


@pytest.fixture
async def make_intake(db: Database) -> AsyncIterator[MakeIntake]:
    made: list[Intake] = []

    def make(
        tracker: FakeTracker,
        engine: RecordingEngine,
        *,
        webhook_base: str | None = None,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        **settings: object,
    ) -> Intake:
        base: dict[str, object] = {
            "poll_seconds": 3600.0,  # tests poll by hand unless they say otherwise
            "poll_seconds_webhooks": 3600.0,
            "reconcile_seconds": 0.0,
            "retry_base_seconds": 0.01,
            "retry_max_seconds": 0.05,
        }
        base.update(settings)
        intake = Intake(
            tracker,
            engine,
            db,
            IntakeSettings(**base),  # type: ignore[arg-type]
            describe="Fake Tracker at http://fake",
            user="proxy",
            webhook_base=webhook_base,
            registry=registry,
            clock=clock,
        )
        made.append(intake)
        return intake

    yield make
    for intake in made:
        await intake.stop()


async def cursor(db: Database) -> str | None:
    return await db.read(lambda c: get_cursor(c, CURSOR_POLL))


async def until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll a condition set by background tasks (bounded); for state no event exposes."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# -- polling ---------------------------------------------------------------------------------------


async def test_first_poll_starts_a_few_minutes_back_not_at_the_beginning(
    make_intake: MakeIntake, db: Database
) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    tracker.touch("old", T0 - dt.timedelta(days=30))
    tracker.touch("recent", T0 - dt.timedelta(minutes=1))
    intake = make_intake(tracker, engine, clock=lambda: T0.timestamp(), first_poll_window=300.0)
    assert await intake.poll_once() == 1
    assert tracker.since_calls == [T0 - dt.timedelta(minutes=5)]
    assert engine.calls == [("recent", "poll")]
    assert await cursor(db) == (T0 - dt.timedelta(minutes=1)).isoformat()


async def test_cursor_survives_a_restart_and_overlap_is_not_handed_over_twice(
    make_intake: MakeIntake, db: Database
) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    tracker.touch("a", T0)
    tracker.touch("b", T0 + dt.timedelta(seconds=10))
    first = make_intake(tracker, engine, clock=lambda: (T0 + dt.timedelta(seconds=20)).timestamp())
    assert await first.poll_once() == 2
    assert await first.poll_once() == 0  # the tracker's overlap returns a and b again
    assert engine.ids() == ["a", "b"]

    # "restart": a new intake on the same store, an hour later, with one change made meanwhile
    tracker.touch("c", T0 + dt.timedelta(minutes=30))
    second = make_intake(tracker, engine, clock=lambda: (T0 + dt.timedelta(hours=1)).timestamp())
    await second.poll_once()
    assert tracker.since_calls[-1] == T0 + dt.timedelta(seconds=10)  # the stored cursor, not "now - window"
    assert "c" in engine.ids()
    assert await cursor(db) == (T0 + dt.timedelta(minutes=30)).isoformat()


async def test_cursor_does_not_pass_a_change_the_engine_did_not_take(
    make_intake: MakeIntake, db: Database
) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    tracker.touch("a", T0)
    tracker.touch("b", T0 + dt.timedelta(seconds=1))
    tracker.touch("c", T0 + dt.timedelta(seconds=2))
    engine.fail_on = {"b"}
    intake = make_intake(tracker, engine, clock=lambda: (T0 + dt.timedelta(seconds=5)).timestamp())
    with pytest.raises(RuntimeError):
        await intake.poll_once()
    assert await cursor(db) is None  # "a" went over, but the run failed before the cursor moved
    engine.fail_on = set()
    await intake.poll_once()
    assert engine.ids() == ["a", "b", "c"]
    assert await cursor(db) == (T0 + dt.timedelta(seconds=2)).isoformat()


async def test_poll_loop_runs_by_itself_and_survives_a_tracker_outage(make_intake: MakeIntake) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    tracker.touch("a", dt.datetime.now(dt.UTC))
    intake = make_intake(tracker, engine, poll_seconds=0.02)
    await intake.start()
    await engine.wait_calls(1)
    tracker.down = True
    await until(lambda: intake.state == "unreachable")
    tracker.down = False
    tracker.touch("b", dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    await engine.wait_calls(2)
    await until(lambda: intake.state == "ok")
    assert engine.ids("poll") == ["a", "b"]


# -- credentials -----------------------------------------------------------------------------------


async def test_wrong_credentials_one_clear_line_then_background_retries(
    make_intake: MakeIntake, caplog: pytest.LogCaptureFixture
) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    tracker.password_ok = False
    intake = make_intake(tracker, engine, poll_seconds=0.02)
    with caplog.at_level(logging.INFO, logger="tandem.intake"):
        await intake.start()
        await until(lambda: tracker.checks >= 4)  # retried in the background, with backoff
        assert intake.state == "auth_failed"
        assert intake.health()["state"] == "auth_failed"
        assert tracker.since_calls == []  # nothing is polled with bad credentials
        tracker.password_ok = True
        await until(lambda: intake.state == "ok")
    lines = [r.getMessage() for r in caplog.records]
    rejected = [m for m in lines if "rejected" in m]
    assert rejected == [
        "tracker: Fake Tracker at http://fake: the credentials for user 'proxy' were rejected (401)"
    ]  # once, not on every retry
    assert any("connected as 'proxy'" in m for m in lines)


# -- webhooks --------------------------------------------------------------------------------------


async def test_webhook_registration_replaces_the_previous_one_across_restarts(
    make_intake: MakeIntake,
) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    first = make_intake(tracker, engine, webhook_base="http://node.example:8443/")
    await first.start()
    await until(lambda: first.webhook_state == "registered")
    path = first.webhook_path
    assert path is not None and len(path) > 40
    assert list(tracker.webhooks.values()) == ["http://node.example:8443" + path]
    assert first.poll_interval() == 3600.0
    await first.stop()

    second = make_intake(tracker, engine, webhook_base="http://node.example:8443")
    await second.start()
    await until(lambda: second.webhook_state == "registered")
    assert second.webhook_path == path  # the secret path is kept in the store
    assert len(tracker.webhooks) == 1  # the first registration was removed, not piled up
    assert tracker.unregistered == ["1"]

    del tracker.webhooks["2"]  # someone deletes it on the tracker; the next start still works
    third = make_intake(tracker, engine, webhook_base="http://node.example:8443")
    await third.start()
    await until(lambda: third.webhook_state == "registered")
    assert list(tracker.webhooks) == ["3"]


async def test_signing_secret_is_given_to_trackers_that_sign(make_intake: MakeIntake) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    intake = make_intake(tracker, engine, webhook_base="http://n", sign_webhooks=True)
    await intake.start()
    await until(lambda: intake.webhook_state == "registered")
    assert tracker.secrets[0] is not None and len(tracker.secrets[0]) >= 32


async def test_no_registration_when_the_tracker_cannot_reach_the_node(make_intake: MakeIntake) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    intake = make_intake(tracker, engine, webhook_base=None, poll_seconds=0.5, poll_seconds_webhooks=60.0)
    await intake.start()
    await until(lambda: intake.state == "ok")
    assert intake.webhook_state == "unreachable"
    assert tracker.webhooks == {}
    assert intake.poll_interval() == 0.5


async def test_webhook_bursts_coalesce_and_never_run_one_issue_twice_at_once(make_intake: MakeIntake) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    engine.gate = asyncio.Event()
    intake = make_intake(tracker, engine, webhook_base="http://n", workers=4)
    await intake.start()
    assert intake.accept_webhook({}, b"issue:1") == 1
    await until(lambda: "1" in engine.running)  # the first delivery is being handled
    for _ in range(50):
        intake.accept_webhook({}, b"issue:1,2")
    engine.gate.set()
    await asyncio.wait_for(intake.idle(), 5)
    assert sorted(engine.ids("webhook")) == ["1", "1", "2"]  # 101 deliveries of 1 → 2 calls
    assert engine.max_parallel_same == 0


async def test_bad_webhook_bodies_are_refused_and_counted(make_intake: MakeIntake) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    registry = CollectorRegistry()
    intake = make_intake(tracker, engine, webhook_base="http://n", registry=registry)
    await intake.start()
    with pytest.raises(WebhookError):
        intake.accept_webhook({}, b"\xff\x00 not a delivery")
    intake.accept_webhook({}, b"issue:9")
    text = generate_latest(registry).decode()
    assert 'tandem_webhook_rejected_total{reason="invalid"} 1.0' in text
    assert "tandem_webhook_deliveries_total 1.0" in text
    assert intake.path_matches(intake.webhook_path.rsplit("/", 1)[1])  # type: ignore[union-attr]
    assert not intake.path_matches("guess")


# -- reconciliation --------------------------------------------------------------------------------


async def test_reconcile_hands_over_every_linked_twin(make_intake: MakeIntake, db: Database) -> None:
    def seed(c: object) -> None:
        import sqlite3

        assert isinstance(c, sqlite3.Connection)
        for local_id, state in (("10", "linked"), ("11", "linked"), ("12", "unlinked")):
            c.execute(
                "INSERT INTO twins (conn_id, local_id, local_key, state, created_at, updated_at)"
                " VALUES (x'01', ?, ?, ?, 0, 0)",
                (local_id, f"K-{local_id}", state),
            )

    await db.write(seed)
    tracker, engine = FakeTracker(), RecordingEngine()
    intake = make_intake(tracker, engine)
    assert await intake.reconcile() == 2
    assert engine.calls == [("10", "reconcile"), ("11", "reconcile")]


async def test_reconcile_uses_the_engines_own_reconcile_when_it_has_one(make_intake: MakeIntake) -> None:
    class Reconciling(RecordingEngine):
        reconciled = 0

        async def reconcile(self) -> None:
            self.reconciled += 1

    tracker, engine = FakeTracker(), Reconciling()
    intake = make_intake(tracker, engine)
    assert await intake.reconcile() == -1
    assert engine.reconciled == 1 and engine.calls == []


async def test_changes_that_no_webhook_announced_mean_fast_polling_and_a_new_registration(
    make_intake: MakeIntake,
) -> None:
    now = [T0.timestamp()]
    tracker, engine = FakeTracker(), RecordingEngine()
    registry = CollectorRegistry()
    intake = make_intake(
        tracker, engine, webhook_base="http://n", clock=lambda: now[0], registry=registry, poll_seconds=1.0
    )
    await intake.prepare()  # no background loops: this test polls by hand
    await intake.register_webhook()
    assert intake.poll_interval() == 3600.0

    # announced by a webhook: not a miss
    tracker.touch("seen", T0 + dt.timedelta(seconds=100))
    now[0] = T0.timestamp() + 101
    intake.accept_webhook({}, b"issue:seen")
    now[0] = T0.timestamp() + 300
    await intake.poll_once()
    assert intake.webhook_state == "registered"

    # changed at +200 s, found by polling at +300 s, never delivered: missed → register again
    tracker.touch("lost", T0 + dt.timedelta(seconds=200))
    await intake.poll_once()
    assert "tandem_webhook_missed_total 1.0" in generate_latest(registry).decode()
    await until(lambda: intake.webhook_state == "registered" and intake.webhook_id == "2")
    assert list(tracker.webhooks) == ["2"]  # replaced, not added

    # missed again soon after: fast polling, but no second re-registration within reregister_seconds
    tracker.touch("lost-too", T0 + dt.timedelta(seconds=400))
    now[0] = T0.timestamp() + 500
    await intake.poll_once()
    assert intake.webhook_state == "degraded"
    assert intake.poll_interval() == 1.0
    assert list(tracker.webhooks) == ["2"]
    intake.accept_webhook({}, b"issue:other")  # deliveries arrive again
    assert intake.webhook_state == "registered"


async def test_a_poll_beside_working_webhooks_reads_only_what_no_webhook_reported(
    make_intake: MakeIntake, db: Database
) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    at = [T0 + dt.timedelta(seconds=s) for s in (10, 20, 30, 40)]
    tracker.touch("person", at[0])
    tracker.touch("own", at[1])
    tracker.touch("missed", at[2])
    tracker.touch("later", at[3])
    intake = make_intake(tracker, engine, clock=lambda: (T0 + dt.timedelta(minutes=2)).timestamp())
    intake.accept_webhook({}, f"issue:person@{at[0].isoformat()}".encode())  # handed over by webhook
    intake.accept_webhook({}, f"echo:own@{at[1].isoformat()}".encode())  # the node's own write
    # reported, but changed again after the reported change (that webhook was lost)
    intake.accept_webhook({}, f"issue:later@{(at[3] - dt.timedelta(seconds=5)).isoformat()}".encode())
    assert await intake.poll_once() == 2  # (no worker runs: the webhooks' queue is not handed over)
    assert engine.ids("poll") == ["missed", "later"]
    assert tracker.skipped == ["person", "own"]
    assert await cursor(db) == at[3].isoformat()


async def test_a_delivery_the_full_queue_refused_is_still_read_by_the_next_poll(
    make_intake: MakeIntake, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker, engine = FakeTracker(), RecordingEngine()
    tracker.touch("dropped", T0)
    intake = make_intake(tracker, engine, clock=lambda: (T0 + dt.timedelta(minutes=1)).timestamp())
    monkeypatch.setattr(intake, "enqueue", lambda issue_id, reason="webhook": False)
    intake.accept_webhook({}, f"issue:dropped@{T0.isoformat()}".encode())
    monkeypatch.undo()
    assert await intake.poll_once() == 1
    assert engine.ids("poll") == ["dropped"] and tracker.skipped == []
