"""The relay end to end: real relay, real sockets on 127.0.0.1, real identities and sealed envelopes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from node.transport.relay import DB_NAME, RelayLimits, RelayServer, RelayStoreError
from node.transport.relay_client import (
    CLOSE_AUTH_FAILED,
    RelayClient,
    RelayFull,
    RelayRefused,
    RelayUnavailable,
    auth_payload,
    relay_ws_url,
)
from protocol import WrongRecipient
from protocol.identity import b64, unb64

from .conftest import (
    CONNECTION_ID,
    ClientFactory,
    Inbox,
    channel,
    eventually,
    fast_backoff,
    identity,
    metrics,
    raw_login,
    seal,
)

ALICE = identity("alice")
BOB = identity("bob")
MALLORY = identity("mallory")


async def test_two_nodes_exchange_sealed_envelopes(
    relay: RelayServer, make_client: ClientFactory, relay_home: Path
) -> None:
    alice_inbox, bob_inbox = Inbox(), Inbox()
    alice = await make_client(ALICE, alice_inbox)
    bob = await make_client(BOB, bob_inbox)
    a_keys, b_keys = channel(ALICE, BOB), channel(BOB, ALICE)

    relay_ids = []
    for seq in range(1, 21):
        relay_ids.append(await alice.send(seal(a_keys, seq, f"secret from alice #{seq}")))
        await bob.send(seal(b_keys, seq, f"secret from bob #{seq}"))
    assert relay_ids == sorted(relay_ids)

    to_bob = [b_keys.open(env) for env in await bob_inbox.wait_for(20)]
    to_alice = [a_keys.open(env) for env in await alice_inbox.wait_for(20)]
    assert [(h.sequence, p.decode()) for h, p in to_bob] == [
        (i, f"secret from alice #{i}") for i in range(1, 21)
    ]
    assert [(h.sequence, p.decode()) for h, p in to_alice] == [
        (i, f"secret from bob #{i}") for i in range(1, 21)
    ]
    # what Alice sealed for Bob is nothing Alice's own keys can open: the relay routes, it does not re-seal
    with pytest.raises(WrongRecipient):
        a_keys.open(bob_inbox.items[0])

    await eventually(lambda: relay.store.total_count == 0)  # acked → deleted
    assert b"secret from" not in _database_bytes(relay_home)  # the relay only ever held ciphertext


async def test_offline_recipient_gets_everything_in_order_on_connect(
    relay: RelayServer, make_client: ClientFactory, http: aiohttp.ClientSession
) -> None:
    alice = await make_client(ALICE)
    keys = channel(ALICE, BOB)
    for seq in range(1, 51):
        await alice.send(seal(keys, seq, f"m{seq}"))
    before = await metrics(http, relay)
    assert before["tandem_relay_stored_messages"] == 50
    assert before["tandem_relay_mailboxes"] == 1
    assert before["tandem_relay_deposits_total"] == 50
    assert before["tandem_relay_connected_nodes"] == 1

    inbox = Inbox()
    await make_client(BOB, inbox)
    got = await inbox.wait_for(50)
    bob_keys = channel(BOB, ALICE)
    assert [bob_keys.open(env)[1].decode() for env in got] == [f"m{i}" for i in range(1, 51)]
    await eventually(lambda: relay.store.total_count == 0)
    after = await metrics(http, relay)
    assert after["tandem_relay_stored_messages"] == 0
    assert after["tandem_relay_stored_bytes"] == 0
    assert after["tandem_relay_mailboxes"] == 0
    assert after["tandem_relay_deliveries_total"] == 50
    assert after["tandem_relay_acks_total"] == 50


async def test_pushes_arrive_without_polling_while_connected(make_client: ClientFactory) -> None:
    inbox = Inbox()
    await make_client(BOB, inbox)
    alice = await make_client(ALICE)
    keys = channel(ALICE, BOB)
    await alice.send(seal(keys, 1, "now"))
    # pushed well inside any plausible polling interval
    assert len(await inbox.wait_for(1, within=1.0)) == 1


async def test_relay_restart_loses_nothing(relay_home: Path) -> None:
    first = RelayServer(relay_home, RelayLimits())
    await first.start("127.0.0.1", 0)
    port = first.port
    keys = channel(ALICE, BOB)
    alice = RelayClient(first.url, ALICE, Inbox(), backoff=fast_backoff())
    inbox = Inbox()
    bob = RelayClient(first.url, BOB, inbox, backoff=fast_backoff())
    second: RelayServer | None = None
    try:
        await alice.start()
        await alice.wait_connected(5)
        for seq in range(1, 31):
            await alice.send(seal(keys, seq, f"m{seq}"))
        await first.stop()
        await eventually(lambda: not alice.connected)

        second = RelayServer(relay_home, RelayLimits())
        await second.start("127.0.0.1", port)
        assert second.store.total_count == 30
        await alice.wait_connected(5)  # the same client found the relay again by itself
        for seq in range(31, 41):
            await alice.send(seal(keys, seq, f"m{seq}"))
        await bob.start()
        got = await inbox.wait_for(40)
        opened = [channel(BOB, ALICE).open(env)[0].sequence for env in got]
        assert opened == list(range(1, 41))
        assert alice.connects == 2
    finally:
        await alice.close()
        await bob.close()
        if second is not None:
            await second.stop()


async def test_relay_ids_are_never_reused_after_restart(relay_home: Path) -> None:
    relay = RelayServer(relay_home, RelayLimits())
    await relay.start("127.0.0.1", 0)
    inbox = Inbox()
    alice = RelayClient(relay.url, ALICE, Inbox(), backoff=fast_backoff())
    bob = RelayClient(relay.url, BOB, inbox, backoff=fast_backoff())
    try:
        await alice.start()
        await bob.start()
        await alice.wait_connected(5)
        last = await alice.send(seal(channel(ALICE, BOB), 1, "x"))
        await inbox.wait_for(1)
        await eventually(lambda: relay.store.total_count == 0)
    finally:
        await alice.close()
        await bob.close()
        await relay.stop()
    again = RelayServer(relay_home, RelayLimits())
    await again.start("127.0.0.1", 0)
    alice = RelayClient(again.url, ALICE, Inbox(), backoff=fast_backoff())
    try:
        await alice.start()
        await alice.wait_connected(5)
        assert await alice.send(seal(channel(ALICE, BOB), 2, "y")) > last
    finally:
        await alice.close()
        await again.stop()


async def test_forged_sender_is_refused(
    relay: RelayServer, make_client: ClientFactory, http: aiohttp.ClientSession
) -> None:
    inbox = Inbox()
    await make_client(ALICE, inbox)
    mallory = await make_client(MALLORY)
    # Mallory holds a real envelope in Bob's name (say, captured); it must not deposit it as Bob.
    forged = seal(channel(BOB, ALICE), 1, "pay mallory")
    with pytest.raises(RelayRefused) as refused:
        await mallory.send(forged)
    assert refused.value.reason == "forged-sender"
    assert "authenticated as" in str(refused.value)
    assert relay.store.total_count == 0
    assert (await metrics(http, relay))['tandem_relay_rejects_total{reason="forged-sender"}'] == 1
    # Mallory's own envelopes still go through: a refusal does not end the connection
    await mallory.send(seal(channel(MALLORY, ALICE), 1, "hello"))
    assert len(await inbox.wait_for(1)) == 1


@pytest.mark.parametrize(
    "tamper",
    ["wrong-key", "wrong-challenge", "other-url", "garbage-json", "binary-first", "missing-identity"],
)
async def test_bad_authentication_is_refused(
    relay: RelayServer, http: aiohttp.ClientSession, tamper: str
) -> None:
    ws = await http.ws_connect(relay.url)
    challenge = unb64(json.loads((await ws.receive(timeout=5)).data)["challenge"])
    url = relay.url
    signer = ALICE
    frame: dict[str, object] = {"type": "auth", "identity": ALICE.public.to_json(), "url": url}
    if tamper == "wrong-key":
        signer = MALLORY  # signs, but claims Alice's key
    signed_challenge = b"\x00" * 32 if tamper == "wrong-challenge" else challenge
    if tamper == "other-url":
        url = url.replace("127.0.0.1", "relay.example")  # answer made for another relay
        frame["url"] = url
    frame["signature"] = b64(signer.sign(auth_payload(signed_challenge, url)))
    if tamper == "missing-identity":
        del frame["identity"]
    if tamper == "garbage-json":
        await ws.send_str("{not json")
    elif tamper == "binary-first":
        await ws.send_bytes(b"TDM\x01\x01" + b"\x00" * 100)
    else:
        await ws.send_str(json.dumps(frame))
    error = await ws.receive(timeout=5)
    assert error.type == aiohttp.WSMsgType.TEXT
    assert json.loads(error.data)["reason"] == "auth"
    closing = await ws.receive(timeout=5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == CLOSE_AUTH_FAILED
    assert not relay.sessions
    assert (await metrics(http, relay))['tandem_relay_rejects_total{reason="auth"}'] == 1


async def test_client_surfaces_refused_authentication(tmp_path: Path) -> None:
    # A relay that knows its public URL refuses answers signed for any other (as a rogue relay in the
    # middle would have to forward them); the client says why it is not connected.
    relay = RelayServer(tmp_path / "r", RelayLimits(), public_urls=["wss://relay.example/relay/v1/ws"])
    await relay.start("127.0.0.1", 0)
    client = RelayClient(relay.url, ALICE, Inbox(), backoff=fast_backoff())
    try:
        await client.start()
        with pytest.raises(RelayUnavailable, match="refused authentication"):
            await client.wait_connected(0.5)
        assert not relay.sessions
    finally:
        await client.close()
        await relay.stop()


@pytest.mark.parametrize("limits", [RelayLimits(max_message_bytes=1024)])
async def test_oversized_and_garbage_are_refused_and_counted(
    relay: RelayServer, make_client: ClientFactory, http: aiohttp.ClientSession, limits: RelayLimits
) -> None:
    inbox = Inbox()
    await make_client(BOB, inbox)
    alice = await make_client(ALICE)
    assert alice.max_message_bytes == 1024
    keys = channel(MALLORY, BOB)
    ws = await raw_login(http, relay, MALLORY)

    await ws.send_bytes(seal(keys, 1, "x" * 2000))  # over the limit, under the hard frame limit
    await ws.send_bytes(b"GET / HTTP/1.1\r\n\r\n")  # garbage
    await ws.send_bytes(b"TDM\x09" + b"\x00" * 80)  # unknown version
    await ws.send_str("ack everything please")  # garbage text
    await ws.send_bytes(seal(keys, 2, "still fine"))
    frames = [json.loads((await ws.receive(timeout=5)).data) for _ in range(5)]
    # deposits are answered in order; the complaint about the text frame comes on its own
    replies = [f for f in frames if f["type"] in ("stored", "refused")]
    assert [r.get("reason") for r in replies] == ["too-large", "malformed", "malformed", None]
    assert replies[3]["type"] == "stored"
    assert [f["reason"] for f in frames if f["type"] == "error"] == ["bad-frame"]
    assert len(await inbox.wait_for(1)) == 1

    # a client never sends what it knows the relay will refuse
    with pytest.raises(RelayRefused, match="exceeds the relay's limit"):
        await alice.send(seal(channel(ALICE, BOB), 1, "y" * 2000))

    # beyond the WebSocket frame limit the relay hangs up on that client alone
    await ws.send_bytes(b"\x00" * 10_000)
    closed = await ws.receive(timeout=5)
    assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await alice.send(seal(channel(ALICE, BOB), 1, "others unaffected"))
    assert len(await inbox.wait_for(2)) == 2

    await eventually(
        lambda: (
            relay.metrics.registry.get_sample_value("tandem_relay_rejects_total", {"reason": "too-large"})
            == 2
        )
    )
    counts = await metrics(http, relay)
    assert counts['tandem_relay_rejects_total{reason="too-large"}'] == 2
    assert counts['tandem_relay_rejects_total{reason="malformed"}'] == 2
    assert counts['tandem_relay_rejects_total{reason="bad-frame"}'] == 1
    assert counts["tandem_relay_deposits_total"] == 2


@pytest.mark.parametrize(
    "limits",
    [RelayLimits(max_message_bytes=1024, max_messages_per_connection=5, max_bytes_per_connection=100_000)],
)
async def test_mailbox_count_bound_gives_back_pressure(
    relay: RelayServer, make_client: ClientFactory, http: aiohttp.ClientSession, limits: RelayLimits
) -> None:
    alice = await make_client(ALICE)
    keys = channel(ALICE, BOB)
    for seq in range(1, 6):
        await alice.send(seal(keys, seq, f"m{seq}"))
    with pytest.raises(RelayFull) as full:
        await alice.send(seal(keys, 6, "m6"))
    assert full.value.reason == "mailbox-full"
    assert "is full" in str(full.value)
    # the bound is per connection: another connection to the same node still has room
    await alice.send(seal(channel(ALICE, BOB, connection_id=b"\x01" * 16), 1, "other connection"))
    assert (await metrics(http, relay))['tandem_relay_rejects_total{reason="mailbox-full"}'] == 1

    inbox = Inbox()
    await make_client(BOB, inbox)
    await inbox.wait_for(6)
    await eventually(lambda: relay.store.total_count == 0)
    await alice.send(seal(keys, 6, "m6"))  # room again once Bob collected
    got = [channel(BOB, ALICE).open(env)[1] for env in await inbox.wait_for(7) if env[5:21] == CONNECTION_ID]
    assert got == [b"m1", b"m2", b"m3", b"m4", b"m5", b"m6"]


@pytest.mark.parametrize(
    "limits",
    [RelayLimits(max_message_bytes=1024, max_messages_per_connection=100, max_bytes_per_connection=1500)],
)
async def test_mailbox_byte_bound_gives_back_pressure(
    relay: RelayServer, make_client: ClientFactory, limits: RelayLimits
) -> None:
    alice = await make_client(ALICE)
    keys = channel(ALICE, BOB)
    await alice.send(seal(keys, 1, "x" * 600))
    await alice.send(seal(keys, 2, "x" * 600))
    with pytest.raises(RelayFull, match="1500 bytes"):
        await alice.send(seal(keys, 3, "x" * 600))
    assert relay.store.total_count == 2


async def test_handler_failure_means_redelivery_not_loss(make_client: ClientFactory) -> None:
    seen: list[bytes] = []
    failed_once = asyncio.Event()
    done = asyncio.Event()

    async def flaky(envelope: bytes) -> None:
        sequence = channel(BOB, ALICE).open(envelope)[0].sequence
        if sequence == 3 and not failed_once.is_set():
            failed_once.set()
            raise OSError("disk full, say")
        seen.append(envelope)
        if len(seen) >= 5:
            done.set()

    bob = await make_client(BOB, flaky)
    alice = await make_client(ALICE)
    keys = channel(ALICE, BOB)
    for seq in range(1, 6):
        await alice.send(seal(keys, seq, f"m{seq}"))
    async with asyncio.timeout(10):
        await done.wait()
    sequences = [channel(BOB, ALICE).open(env)[0].sequence for env in seen]
    # 1 and 2 were acked before the failure; 3 onwards came again on the new connection, in order
    assert sequences == [1, 2, 3, 4, 5]
    assert bob.connects == 2


async def test_newer_connection_of_a_node_replaces_the_older(
    relay: RelayServer, make_client: ClientFactory
) -> None:
    first_inbox, second_inbox = Inbox(), Inbox()
    first = await make_client(BOB, first_inbox)
    second = await make_client(BOB, second_inbox)
    await eventually(lambda: "replaced" in (first.last_error or ""))
    assert not first.connected
    with pytest.raises(RelayUnavailable, match="replaced"):
        await first.send(seal(channel(BOB, ALICE), 1, "from the old one"))
    with pytest.raises(RelayUnavailable, match="replaced"):
        await first.wait_connected(1)
    assert second.connected and len(relay.sessions) == 1

    alice = await make_client(ALICE)
    await alice.send(seal(channel(ALICE, BOB), 1, "to the newest"))
    assert len(await second_inbox.wait_for(1)) == 1
    assert first_inbox.items == []


async def test_send_without_relay_times_out_as_unavailable(tmp_path: Path) -> None:
    client = RelayClient("ws://127.0.0.1:9/relay/v1/ws", ALICE, Inbox(), backoff=fast_backoff())
    await client.start()
    try:
        with pytest.raises(RelayUnavailable, match="cannot reach relay"):
            await client.wait_connected(0.3)
        with pytest.raises(RelayUnavailable, match="did not confirm"):
            await client.send(b"TDM" + b"\x00" * 100, timeout=0.2)
    finally:
        await client.close()
    with pytest.raises(RelayUnavailable, match="closed"):
        await client.send(b"x")


async def test_http_endpoints(relay: RelayServer, http: aiohttp.ClientSession) -> None:
    base = f"http://127.0.0.1:{relay.port}"
    async with http.get(f"{base}/healthz") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ok"
    async with http.get(f"{base}/relay/v1/ws") as response:  # plain GET on the WebSocket path
        assert response.status == 426
        assert "WebSocket" in (await response.json())["error"]
        assert "Traceback" not in await response.text()


def _database_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.iterdir() if p.name.startswith(DB_NAME))


def _make_newer_database(home: Path) -> None:
    home.mkdir(parents=True)
    with sqlite3.connect(home / DB_NAME) as db:
        db.execute("PRAGMA user_version = 99")


async def test_refuses_a_database_from_a_newer_relay(relay_home: Path) -> None:
    _make_newer_database(relay_home)
    server = RelayServer(relay_home, RelayLimits())
    with pytest.raises(RelayStoreError, match="newer than this relay"):
        await server.start("127.0.0.1", 0)


@pytest.mark.parametrize(
    ("given", "dialled"),
    [
        ("https://relay.example", "wss://relay.example/relay/v1/ws"),
        ("http://127.0.0.1:8765/", "ws://127.0.0.1:8765/relay/v1/ws"),
        ("ws://127.0.0.1:8765/relay/v1/ws", "ws://127.0.0.1:8765/relay/v1/ws"),
        ("wss://relay.example/custom/path", "wss://relay.example/custom/path"),
    ],
)
def test_relay_url_forms(given: str, dialled: str) -> None:
    assert relay_ws_url(given) == dialled


@pytest.mark.parametrize("bad", ["relay.example", "ftp://relay.example", "ws://"])
def test_relay_url_rejects_non_urls(bad: str) -> None:
    with pytest.raises(ValueError, match="not a relay URL"):
        relay_ws_url(bad)


async def test_sends_in_flight_across_a_relay_restart_are_not_lost(relay_home: Path) -> None:
    first = RelayServer(relay_home, RelayLimits())
    await first.start("127.0.0.1", 0)
    keys = channel(ALICE, BOB)
    alice = RelayClient(first.url, ALICE, Inbox(), backoff=fast_backoff())
    second: RelayServer | None = None
    try:
        await alice.start()
        await alice.wait_connected(5)
        sends = [asyncio.ensure_future(alice.send(seal(keys, seq, f"m{seq}"))) for seq in range(1, 201)]
        await sends[0]
        await first.stop()  # the rest are somewhere between written, stored and answered
        second = RelayServer(relay_home, RelayLimits())
        await second.start("127.0.0.1", first.port)
        async with asyncio.timeout(10):
            await asyncio.gather(*sends)
        inbox = Inbox()
        bob = RelayClient(second.url, BOB, inbox, backoff=fast_backoff())
        try:
            await bob.start()
            await eventually(lambda: second is not None and second.store.total_count == 0 and bob.connected)
        finally:
            await bob.close()
        sequences = [channel(BOB, ALICE).open(env)[0].sequence for env in inbox.items]
        first_seen = list(dict.fromkeys(sequences))
        assert first_seen == list(range(1, 201))  # every one, in order; duplicates allowed (at least once)
    finally:
        await alice.close()
        if second is not None:
            await second.stop()
