"""Pairing in each network situation, with real node processes, then messages both ways."""

from __future__ import annotations

from tests.e2e.harness import Cluster, NodeProc, wait_for


def _exchange(a: NodeProc, a_name: str, b: NodeProc, b_name: str, count: int = 20) -> None:
    ra = a.ok("POST", f"/api/v1/connections/{a_name}/test", {"count": count, "timeout_seconds": 20})
    rb = b.ok("POST", f"/api/v1/connections/{b_name}/test", {"count": count, "timeout_seconds": 20})
    assert ra["acked"] and rb["acked"]
    assert b.probes(b_name) == list(range(count))
    assert a.probes(a_name) == list(range(count))


def _paired(a: NodeProc, b: NodeProc, a_name: str, b_name: str) -> None:
    ca = wait_for(lambda: (c := a.connection(a_name))["state"] == "active" and c, 10, "inviter active")
    cb = wait_for(lambda: (c := b.connection(b_name))["state"] == "active" and c, 10, "acceptor active")
    assert ca["verification"] == cb["verification"] is not None
    info_a, info_b = a.ok("GET", "/api/v1/node"), b.ok("GET", "/api/v1/node")
    assert ca["peer"]["node_id"] == info_b["node_id"]
    assert cb["peer"]["node_id"] == info_a["node_id"]
    assert ca["peer"]["name"] == "B" and cb["peer"]["name"] == "A"


def test_public_inviter_public_acceptor(cluster: Cluster) -> None:
    a = cluster.node("A", public=True)
    b = cluster.node("B", public=True)
    code = a.invite(name="ab")
    result = b.accept(code, name="ba")
    assert result["paired"] is True
    _paired(a, b, "ab", "ba")
    assert a.connection("ab")["reach"] == "public"
    assert b.connection("ba")["reach"] == "private-dials-out"  # the acceptor dials the inviter's URL
    _exchange(a, "ab", b, "ba")


def test_public_inviter_private_acceptor_through_the_cli(cluster: Cluster) -> None:
    a = cluster.node("A", public=True)
    b = cluster.node("B", public=False)
    out = a.cli("invite", "--name", "ab", "--expires", "30m")
    code = out.stdout.strip()
    assert code.startswith("TANDEM1") and "\n" not in code  # only the code on stdout
    accepted = b.cli("accept", "-", "--name", "ba", input=code + "\n")
    verification = a.connection("ab")["verification"]
    assert "connection   ba" in accepted.stdout
    assert f"verification {verification}" in accepted.stdout
    _paired(a, b, "ab", "ba")
    listing = b.cli("connections").stdout
    assert "ba" in listing and "private-dials-out" in listing and verification in listing
    report = b.cli("connection", "test", "ba", "--count", "5").stdout
    assert "5 probes" in report and "acked" in report
    assert a.probes("ab") == list(range(5))


def test_private_inviter_dials_public_acceptor(cluster: Cluster) -> None:
    a = cluster.node("A", public=False)
    b = cluster.node("B", public=True)
    assert b.peer_url is not None
    # A private node without --peer-url or --relay cannot invite.
    status, err = a.api("POST", "/api/v1/invitations", {"name": "ab"})
    assert status == 400 and "private" in err["error"]["message"]
    code = a.invite(name="ab", peer_url=b.peer_url)
    result = b.accept(code, name="ba")
    assert result["paired"] is True
    _paired(a, b, "ab", "ba")
    assert a.connection("ab")["reach"] == "private-dials-out"
    assert b.connection("ba")["reach"] == "public"
    _exchange(a, "ab", b, "ba")


def test_private_acceptor_cannot_take_a_dial_in_invitation(cluster: Cluster) -> None:
    a = cluster.node("A", public=False)
    b = cluster.node("B", public=False)
    code = a.invite(name="ab", peer_url="http://127.0.0.1:9")
    status, err = b.api("POST", "/api/v1/invitations/accept", {"code": code})
    assert status == 400 and "private" in err["error"]["message"]
    assert b.connections() == []


def test_both_private_through_a_relay_and_relay_restart(cluster: Cluster) -> None:
    relay = cluster.relay()
    a = cluster.node("A", public=False)
    b = cluster.node("B", public=False)
    code = a.invite(name="ab", relay=relay.url)
    result = b.accept(code, name="ba")
    assert result["paired"] is True
    _paired(a, b, "ab", "ba")
    assert a.connection("ab")["reach"] == "relay" and b.connection("ba")["reach"] == "relay"
    _exchange(a, "ab", b, "ba")
    # The relay goes away; messages queue; the relay comes back on the same URL; all arrive once.
    relay.stop()
    wait_for(lambda: a.connection("ab")["link"]["state"] == "down", 10, "A sees the relay gone")
    a.ok("POST", "/api/v1/connections/ab/test", {"count": 25, "wait": False})
    relay.start()
    wait_for(lambda: len(b.probes("ba")) >= 45, 30, "probes after the relay restart", 0.2)
    assert b.probes("ba") == list(range(20)) + list(range(25))
    wait_for(lambda: a.connection("ab")["queues"]["outbox_unacked"] == 0, 20, "A's outbox drained")
