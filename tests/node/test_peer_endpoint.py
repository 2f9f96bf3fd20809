"""The internet-facing peer endpoint, attacked by a hand-driven fake peer built from protocol/."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from typing import Any

import aiohttp
import pytest

from node.app import Node
from node.transport.link import PEER_PATH, make_opening, parse_challenge, parse_refusal
from protocol import (
    ChannelKeys,
    NodeIdentity,
    Probe,
    Reach,
    Session,
    Welcome,
    decode_invitation,
    make_accept,
)
from tests.node.conftest import MakeNode

LIMIT = 64 * 1024


def ident(label: str) -> NodeIdentity:
    return NodeIdentity.from_seed(hashlib.sha512(label.encode()).digest())


class FakePeer:
    """An acceptor speaking the link protocol by hand."""

    def __init__(self, node: Node, code: str) -> None:
        self.node = node
        self.identity = ident("fake")
        self.invitation = decode_invitation(code, now=int(time.time()))
        inv = self.invitation
        keys = ChannelKeys.derive(
            self.identity, inv.connection_id, inv.inviter.sign_public, inv.inviter.box_public
        )
        self.session = Session(keys)
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self, http: aiohttp.ClientSession) -> bytes:
        assert self.node.peer_url is not None
        self.ws = await http.ws_connect(self.node.peer_url + PEER_PATH)
        first = await self.ws.receive(timeout=5)
        return parse_challenge(first.data)

    async def pair(self, http: aiohttp.ClientSession) -> None:
        await self.connect(http)
        assert self.ws is not None
        await self.ws.send_bytes(
            make_accept(self.identity, self.invitation, "Fake", Reach("private"), os.urandom(24))
        )
        await self.ws.send_bytes(self.session.hello(os.urandom(24)))
        got = await self.until(lambda d: any(isinstance(m, Welcome) for _, m in d))
        assert got

    async def open(self, http: aiohttp.ClientSession) -> None:
        challenge = await self.connect(http)
        assert self.ws is not None
        await self.ws.send_bytes(make_opening(self.identity, challenge, self.invitation.connection_id))
        await self.ws.send_bytes(self.session.hello(os.urandom(24)))

    async def until(self, predicate: Any, limit: int = 50) -> list[Any]:
        """Read frames until ``predicate(delivered so far)`` holds (bounded)."""
        assert self.ws is not None
        delivered: list[Any] = []
        for _ in range(limit):
            msg = await self.ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            delivered.extend(self.session.receive(msg.data).delivered)
            if predicate(delivered):
                return delivered
        raise AssertionError("predicate never held")

    async def send_probe(self, n: int) -> bytes:
        _, env = self.session.send(Probe(n=n), os.urandom(24))  # type: ignore[arg-type]
        assert self.ws is not None
        await self.ws.send_bytes(env)
        return env

    async def acked(self, seq: int) -> None:
        await self.until(lambda _: self.session.peer_acked >= seq)


async def _metrics(url: str, http: aiohttp.ClientSession) -> dict[str, float]:
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    out = {}
    for line in text.splitlines():
        if line.startswith("tandem_peer_rejected_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


@pytest.fixture
async def node(make_node: MakeNode) -> Node:
    return await make_node("A", peer={"max_message_bytes": LIMIT}, links={"park_seconds": 0})


async def test_bad_frames_are_counted_and_the_connection_carries_on(node: Node) -> None:
    code, _ = await node.manager.invite(name="fake")
    peer = FakePeer(node, code)
    async with aiohttp.ClientSession() as http:
        await peer.pair(http)
        assert node.manager.get("fake").row.state == "active"
        first = await peer.send_probe(0)
        await peer.acked(1)
        assert peer.ws is not None

        await peer.ws.send_bytes(b"garbage, not an envelope")
        tampered = bytearray(first)
        tampered[-1] ^= 1
        await peer.ws.send_bytes(bytes(tampered))  # same seq, broken tag
        await peer.ws.send_bytes(first)  # a replay of an already delivered message
        other = ChannelKeys.derive(
            peer.identity, bytes(16), peer.invitation.inviter.sign_public, peer.invitation.inviter.box_public
        )
        await peer.ws.send_bytes(other.seal(5, b"{}", os.urandom(24)))  # another connection
        await peer.ws.send_str("hello?")
        # The link is still up and delivers the next message.
        await peer.send_probe(1)
        await peer.acked(2)
        inbox = await node.manager.inbox("fake", 0, 100)
        assert [m["message"]["n"] for m in inbox if m["type"] == "probe"] == [0, 1]

        for url in (node.admin_url,):  # (the peer listener serves no /metrics by default)
            assert url is not None
            counts = await _metrics(url, http)
            assert counts["garbage"] == 2  # binary garbage + text frame
            assert counts["authentication"] == 1
            assert counts["replayed"] == 1
            assert counts["wrong_recipient"] == 1

        # Oversized: this socket is closed (1009) and counted; the connection is untouched.
        await peer.ws.send_bytes(b"x" * (LIMIT + 1))
        msg = await peer.ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert (await _metrics(node.admin_url or "", http))["oversized"] == 1
        assert node.manager.get("fake").row.state == "active"
        await peer.ws.close()
        await peer.open(http)  # a new link with a signed opening
        await peer.send_probe(2)
        await peer.acked(3)
        inbox = await node.manager.inbox("fake", 0, 100)
        assert [m["message"]["n"] for m in inbox if m["type"] == "probe"] == [0, 1, 2]


async def _refusal(node: Node, http: aiohttp.ClientSession, frame: bytes | None) -> tuple[str, str]:
    assert node.peer_url is not None
    async with http.ws_connect(node.peer_url + PEER_PATH) as ws:
        challenge = parse_challenge((await ws.receive(timeout=5)).data)
        await ws.send_bytes(frame if frame is not None else challenge)
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT
        return parse_refusal(msg.data)


async def test_bad_openings_are_refused_and_counted(node: Node) -> None:
    code, _ = await node.manager.invite(name="fake")
    peer = FakePeer(node, code)
    async with aiohttp.ClientSession() as http:
        await peer.pair(http)
        conn = peer.invitation.connection_id
        # Unknown connection.
        assert node.peer_url is not None
        async with http.ws_connect(node.peer_url + PEER_PATH) as ws:
            challenge = parse_challenge((await ws.receive(timeout=5)).data)
            await ws.send_bytes(make_opening(peer.identity, challenge, os.urandom(16)))
            msg = await ws.receive(timeout=5)
            assert parse_refusal(msg.data)[0] == "unknown_connection"
        # Signed by someone else.
        async with http.ws_connect(node.peer_url + PEER_PATH) as ws:
            challenge = parse_challenge((await ws.receive(timeout=5)).data)
            await ws.send_bytes(make_opening(ident("mallory"), challenge, conn))
            assert parse_refusal((await ws.receive(timeout=5)).data)[0] == "bad_signature"
        # A recorded opening replayed on a new socket (different challenge).
        async with http.ws_connect(node.peer_url + PEER_PATH) as ws:
            parse_challenge((await ws.receive(timeout=5)).data)
            await ws.send_bytes(make_opening(peer.identity, os.urandom(32), conn))
            assert parse_refusal((await ws.receive(timeout=5)).data)[0] == "bad_signature"
        # Garbage first frame.
        assert (await _refusal(node, http, b"GET / HTTP/1.1"))[0] == "malformed"
        # A second, different accept of the used code.
        other = FakePeer(node, code)
        other.identity = ident("other")
        pair = make_accept(other.identity, other.invitation, "Other", Reach("private"), os.urandom(24))
        used = await _refusal(node, http, pair)
        assert used[0] == "invitation_used" and "already used" in used[1]
        counts = await _metrics(node.admin_url or "", http)
        assert counts["unknown_connection"] == 1
        assert counts["bad_signature"] == 2
        assert counts["garbage"] == 1
        assert counts["refused"] == 1
        # Not a WebSocket at all.
        async with http.get(node.peer_url + PEER_PATH) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "not_a_websocket"
        async with http.get(node.peer_url + "/healthz") as r:
            assert (await r.json()) == {"status": "ok", "links_up": 1, "connections": 1}
        # The good link is still there.
        await peer.send_probe(0)
        await peer.acked(1)


async def test_identical_accept_retransmission_gets_the_same_welcome(node: Node) -> None:
    code, _ = await node.manager.invite(name="fake")
    peer = FakePeer(node, code)
    pair = make_accept(peer.identity, peer.invitation, "Fake", Reach("private"), os.urandom(24))
    async with aiohttp.ClientSession() as http:
        await peer.connect(http)
        assert peer.ws is not None
        await peer.ws.send_bytes(pair)
        await peer.ws.close()  # lost before the welcome arrived
        # The same accept again (a fresh nonce: the request inside is identical).
        fresh = FakePeer(node, code)
        again = make_accept(fresh.identity, fresh.invitation, "Fake", Reach("private"), os.urandom(24))
        await fresh.connect(http)
        assert fresh.ws is not None
        await fresh.ws.send_bytes(again)
        await fresh.ws.send_bytes(fresh.session.hello(os.urandom(24)))
        delivered = await fresh.until(lambda d: any(isinstance(m, Welcome) for _, m in d))
        welcomes = [(seq, m) for seq, m in delivered if isinstance(m, Welcome)]
        assert [seq for seq, _ in welcomes] == [1]
        assert node.manager.get("fake").row.state == "active"
        await fresh.ws.close()


async def test_an_ack_alone_frees_the_outbox_rows_it_acks(node: Node) -> None:
    code, _ = await node.manager.invite(name="fake")
    peer = FakePeer(node, code)
    async with aiohttp.ClientSession() as http:
        await peer.pair(http)  # the node's Welcome (its sequence 1) is in its outbox until acked
        rt = node.manager.get("fake")
        assert rt.session is not None and [seq for seq, _ in rt.session.unacked()] == [1]
        assert peer.ws is not None
        await peer.ws.send_bytes(peer.session.ack(os.urandom(24)))  # a control frame, nothing else
        assert await node.manager.wait_acked(rt, 1, 5)
        assert rt.session.unacked() == []
    await node.stop()  # waits for the background delete
    conn = sqlite3.connect(node.home.db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    finally:
        conn.close()
