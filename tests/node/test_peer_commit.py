"""An ack never runs ahead of the store: a fake peer (from protocol/) sends bursts to a real node
over a real WebSocket, and a commit that fails acks nothing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from typing import Any

import aiohttp
import pytest

from node.app import Node
from node.store import rows
from protocol import Ack, Hello, Probe
from tests.node.conftest import MakeNode
from tests.node.test_peer_endpoint import FakePeer

BURST = 200


@pytest.fixture
async def node(make_node: MakeNode) -> Node:
    return await make_node("A", links={"park_seconds": 0})


async def _inbox_seqs(node: Node, name: str) -> list[int]:
    return [m["seq"] for m in await node.manager.inbox(name, 0, 10_000) if m["type"] == "probe"]


async def _read_acks(peer: FakePeer, node: Node, upto: int) -> list[int]:
    """Acks the node sends until it acked ``upto`` (bounded); each is checked against the inbox the
    moment it arrives: everything it covers must already be stored."""
    assert peer.ws is not None
    acks: list[int] = []
    for _ in range(BURST * 2):
        msg = await peer.ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        got = peer.session.receive(msg.data)
        for message in got.control:
            if isinstance(message, Ack):
                stored = await node.db.read(
                    lambda c: c.execute("SELECT COALESCE(MAX(seq), 0) FROM inbox").fetchone()[0]
                )
                assert message.upto <= stored, f"ack {message.upto} ahead of the inbox ({stored})"
                acks.append(message.upto)
        if peer.session.peer_acked >= upto:
            return acks
    raise AssertionError(f"never acked {upto}")


async def test_a_burst_is_acked_only_once_stored(node: Node) -> None:
    code, _ = await node.manager.invite(name="fake")
    peer = FakePeer(node, code)
    async with aiohttp.ClientSession() as http:
        await peer.pair(http)
        assert peer.ws is not None
        first = peer.session.send_next
        envelopes = [peer.session.send(Probe(n=n), os.urandom(24))[1] for n in range(BURST)]  # type: ignore[arg-type]
        for env in envelopes:
            await peer.ws.send_bytes(env)
        last = first + BURST - 1
        acks = await _read_acks(peer, node, last)
        assert acks[-1] == last and acks == sorted(acks)
        assert await _inbox_seqs(node, "fake") == list(range(first, last + 1))
        assert node.manager.get("fake").row.recv_next == last + 1


async def test_a_failed_commit_acks_nothing_and_the_resend_is_stored_once(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _ = await node.manager.invite(name="fake")
    peer = FakePeer(node, code)
    real = rows.inbox_put
    failures = [sqlite3.OperationalError("disk I/O error (injected)")]

    def flaky(*args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        real(*args, **kwargs)

    async with aiohttp.ClientSession() as http:
        await peer.pair(http)
        assert peer.ws is not None
        first = peer.session.send_next
        monkeypatch.setattr(rows, "inbox_put", flaky)
        await peer.send_probe(0)
        await peer.send_probe(1)
        # The node could not store them: it acks nothing and drops the link, so that its next
        # link's Hello asks for them again.
        for _ in range(20):
            msg = await peer.ws.receive(timeout=5)
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            peer.session.receive(msg.data)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert peer.session.peer_acked < first
        assert not failures and await _inbox_seqs(node, "fake") == []

        await peer.open(http)  # a new link: Hellos both ways, then the peer resends what is unacked
        for _, env in peer.session.unacked():
            await peer.ws.send_bytes(env)
        await peer.acked(first + 1)
        assert await _inbox_seqs(node, "fake") == [first, first + 1]
        assert node.manager.get("fake").row.recv_next == first + 2


async def test_a_new_links_hello_asks_from_what_is_committed(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link attached while a received message's inbox commit is still running: its Hello's
    ``recv_next`` is the committed one (the message not stored yet is asked for again)."""
    code, _ = await node.manager.invite(name="fake")
    peer = FakePeer(node, code)
    real = rows.inbox_put
    entered, release = threading.Event(), threading.Event()

    def held(*args: Any, **kwargs: Any) -> None:
        entered.set()
        release.wait(10)  # the writer thread: the commit stays open until the new link said Hello
        real(*args, **kwargs)

    async with aiohttp.ClientSession() as http:
        await peer.pair(http)
        first = peer.session.send_next
        monkeypatch.setattr(rows, "inbox_put", held)
        try:
            await peer.send_probe(0)
            assert await asyncio.to_thread(entered.wait, 5)
            assert node.manager.get("fake").session.recv_next == first + 1  # type: ignore[union-attr]
            await peer.open(http)  # a second link while the first one's commit is blocked
            assert peer.ws is not None
            msg = await peer.ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            hellos = [m for m in peer.session.receive(msg.data).control if isinstance(m, Hello)]
        finally:
            release.set()
        assert [h.recv_next for h in hellos] == [first]
        monkeypatch.setattr(rows, "inbox_put", real)
        for _, env in peer.session.unacked():  # what the Hello asked for; stored once
            await peer.ws.send_bytes(env)
        await peer.acked(first)
        assert await _inbox_seqs(node, "fake") == [first]
