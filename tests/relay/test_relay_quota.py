"""Storage one sender may take (per-sender quota) and how long the relay keeps it (expiry)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from node.transport.relay import (
    DB_NAME,
    REFUSE_SENDER_FULL,
    MailboxStore,
    RelayLimits,
    RelayServer,
    parse_duration,
    relay_command,
)
from node.transport.relay_client import RelayFull
from protocol import read_header

from .conftest import ClientFactory, Inbox, channel, eventually, identity, metrics, raw_login, seal

ALICE = identity("alice")
BOB = identity("bob")
MALLORY = identity("mallory")


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def deposit_raw(ws: aiohttp.ClientWebSocketResponse, envelope: bytes) -> dict[str, object]:
    await ws.send_bytes(envelope)
    answer = json.loads((await ws.receive(timeout=5)).data)
    assert isinstance(answer, dict)
    return answer


@pytest.mark.parametrize(
    "limits",
    [RelayLimits(max_message_bytes=1024, max_bytes_per_sender=2000, max_total_bytes=3000)],
)
async def test_one_sender_cannot_fill_the_relay_for_another(
    relay: RelayServer,
    make_client: ClientFactory,
    http: aiohttp.ClientSession,
    limits: RelayLimits,
) -> None:
    # Mallory authenticates as itself and deposits into made-up connections of made-up recipients
    # until the relay stops it; without a per-sender bound it would reach relay-full first.
    mallory = await raw_login(http, relay, MALLORY)
    answers = []
    for _ in range(20):
        victim = identity(os.urandom(8).hex())
        envelope = seal(channel(MALLORY, victim, connection_id=os.urandom(16)), 1, "x" * 400)
        answers.append(await deposit_raw(mallory, envelope))
        if answers[-1]["type"] != "stored":
            break
    assert answers[-1]["type"] == "refused"
    assert answers[-1]["reason"] == REFUSE_SENDER_FULL
    assert "per sender" in str(answers[-1]["message"])
    stored = [a for a in answers if a["type"] == "stored"]
    assert len(stored) >= 2
    assert relay.store.sender_usage(MALLORY.node_id)[1] <= limits.max_bytes_per_sender
    await mallory.close()

    # Alice's deposit is still stored and reaches Bob.
    alice = await make_client(ALICE)
    await alice.send(seal(channel(ALICE, BOB), 1, "y" * 400))
    inbox = Inbox()
    await make_client(BOB, inbox)
    [envelope] = await inbox.wait_for(1)
    assert channel(BOB, ALICE).open(envelope)[1] == b"y" * 400

    counts = await metrics(http, relay)
    assert counts[f'tandem_relay_rejects_total{{reason="{REFUSE_SENDER_FULL}"}}'] == 1
    assert counts['tandem_relay_rejects_total{reason="relay-full"}'] == 0
    await eventually(lambda: relay.store.total_count == len(stored))  # Bob's ack deleted Alice's
    assert (await metrics(http, relay))["tandem_relay_senders"] == 1


@pytest.mark.parametrize("limits", [RelayLimits(max_message_bytes=1024, max_messages_per_sender=2)])
async def test_sender_quota_counts_all_connections_and_frees_on_collection(
    relay: RelayServer, make_client: ClientFactory, limits: RelayLimits
) -> None:
    alice = await make_client(ALICE)
    await alice.send(seal(channel(ALICE, BOB), 1, "one"))
    await alice.send(seal(channel(ALICE, BOB, connection_id=b"\x01" * 16), 1, "two"))
    with pytest.raises(RelayFull) as refused:  # back-pressure: the node keeps it and retries later
        await alice.send(seal(channel(ALICE, BOB, connection_id=b"\x02" * 16), 1, "three"))
    assert refused.value.reason == REFUSE_SENDER_FULL
    assert relay.store.total_count == 2

    inbox = Inbox()
    await make_client(BOB, inbox)
    await inbox.wait_for(2)
    await eventually(lambda: relay.store.total_count == 0)
    await alice.send(seal(channel(ALICE, BOB, connection_id=b"\x02" * 16), 1, "three"))
    await inbox.wait_for(3)


async def test_expiry_deletes_old_envelopes_and_frees_their_quota(tmp_path: Path) -> None:
    clock = FakeClock()
    store = MailboxStore(tmp_path / DB_NAME, RelayLimits(max_age=100.0), clock=clock)
    await store.open()
    try:
        old = [seal(channel(ALICE, BOB, bytes([i]) * 16), 1, f"old {i}") for i in range(2)]
        old_ids = [await store.deposit(read_header(env), env) for env in old]
        clock.now += 60
        new = seal(channel(MALLORY, BOB), 1, "new")
        new_id = await store.deposit(read_header(new), new)
        assert await store.expire() == 0  # nothing is 100 s old yet

        clock.now += 41  # the first two are 101 s old, the last 41 s
        assert await store.expire() == 2
        assert store.total_count == 1
        assert store.total_bytes == len(new)
        assert store.sender_usage(ALICE.node_id) == (0, 0)
        assert store.sender_usage(MALLORY.node_id) == (1, len(new))
        assert store.mailbox_count == 1
        assert [item.relay_id for item in await store.fetch(BOB.node_id, 0, 10)] == [new_id]

        # an ack for an envelope that expired while pushed deletes nothing and subtracts nothing
        store.delete(old_ids)
        assert await store.expire() == 0  # the writer is FIFO: the delete was handled first
        assert (store.total_count, store.total_bytes) == (1, len(new))
    finally:
        await store.close()

    reopened = MailboxStore(tmp_path / DB_NAME, RelayLimits(max_age=100.0), clock=clock)
    await reopened.open()
    try:
        assert reopened.sender_usage(MALLORY.node_id) == (1, len(new))
        assert reopened.sender_usage(ALICE.node_id) == (0, 0)
    finally:
        await reopened.close()


async def test_relay_sweeps_periodically_and_counts_expired(
    relay_home: Path, make_client: ClientFactory, http: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    server = RelayServer(relay_home / "swept", RelayLimits(max_age=3600.0, expiry_interval=0.02), clock=clock)
    await server.start("127.0.0.1", 0)
    try:
        alice = await make_client(ALICE, url=server.url)
        await alice.send(seal(channel(ALICE, BOB), 1, "never collected"))
        await alice.send(seal(channel(ALICE, BOB), 2, "never collected either"))
        assert server.store.total_count == 2
        clock.now += 3601
        await eventually(lambda: server.store.total_count == 0)
        counts = await metrics(http, server)
        assert counts["tandem_relay_expired_total"] == 2
        assert counts["tandem_relay_stored_bytes"] == 0
        assert server.store.sender_usage(ALICE.node_id) == (0, 0)
    finally:
        await server.stop()


async def test_upgrade_from_schema_1_dates_old_rows_at_the_upgrade(tmp_path: Path) -> None:
    envelope = seal(channel(ALICE, BOB), 1, "from a relay of schema 1")
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.executescript(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, recipient BLOB NOT NULL,"
            " connection BLOB NOT NULL, sender BLOB NOT NULL, size INTEGER NOT NULL,"
            " stored_at REAL NOT NULL, envelope BLOB NOT NULL);"
            "CREATE INDEX messages_by_recipient ON messages (recipient, id); PRAGMA user_version = 1;"
        )
        header = read_header(envelope)
        db.execute(  # stored_at from the monotonic clock schema 1 used: seconds since boot
            "INSERT INTO messages (recipient, connection, sender, size, stored_at, envelope)"
            " VALUES (?, ?, ?, ?, 12.5, ?)",
            (header.recipient, header.connection_id, header.sender, len(envelope), envelope),
        )
    store = MailboxStore(tmp_path / DB_NAME, RelayLimits(max_age=3600.0))
    await store.open()
    try:
        assert await store.expire() == 0  # not mistaken for an envelope from 1970
        assert store.sender_usage(ALICE.node_id) == (1, len(envelope))
        assert [item.envelope for item in await store.fetch(BOB.node_id, 0, 10)] == [envelope]
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("12h", 43200.0), ("30D", 2592000.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "d", "0", "-5h", "soon", "1w", "inf", "nan"])
def test_bad_max_age_is_a_usage_error(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)
    result = CliRunner().invoke(
        relay_command, ["--listen", "127.0.0.1:0", "--home", str(tmp_path), "--max-age", bad]
    )
    assert result.exit_code == 2
    assert "--max-age" in result.output
