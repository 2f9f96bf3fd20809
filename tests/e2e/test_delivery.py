"""Durable, exactly-once, in-order delivery across deactivation and kill -9."""

from __future__ import annotations

from tests.e2e.harness import Cluster, NodeProc, wait_for

N = 1000


def _pair(cluster: Cluster, inviter_public: bool = True) -> tuple[NodeProc, NodeProc]:
    a = cluster.node("A", public=True)
    b = cluster.node("B", public=inviter_public is False)
    code = a.invite(name="ab")
    assert b.accept(code, name="ba")["paired"]
    return a, b


def _all_delivered(receiver: NodeProc, name: str, count: int, timeout: float = 60) -> None:
    wait_for(lambda: len(receiver.probes(name)) >= count, timeout, f"{count} probes at {receiver.name}", 0.2)
    assert receiver.probes(name) == list(range(count))  # exactly once, in order


def test_deactivate_queues_and_reactivate_delivers(cluster: Cluster) -> None:
    a, b = _pair(cluster)
    a.ok("POST", "/api/v1/connections/ab/deactivate")
    assert a.connection("ab")["state"] == "deactivated"
    wait_for(lambda: b.connection("ba")["link"]["state"] == "down", 10, "B sees the link down")
    # Both sides queue while deactivated.
    ra = a.ok("POST", "/api/v1/connections/ab/test", {"count": 30, "wait": False})
    rb = b.ok("POST", "/api/v1/connections/ba/test", {"count": 40, "wait": False})
    assert ra["sent"] == 30 and rb["sent"] == 40
    assert a.connection("ab")["queues"]["outbox_unacked"] == 30
    wait_for(lambda: b.connection("ba")["link"]["last_error"], 10, "B's dial refused")
    assert "deactivated" in b.connection("ba")["link"]["last_error"]
    assert a.probes("ab") == [] and b.probes("ba") == []
    assert a.metric("tandem_outbox_unacked", connection="ab") == 30
    a.ok("POST", "/api/v1/connections/ab/activate")
    _all_delivered(b, "ba", 30, 20)
    _all_delivered(a, "ab", 40, 20)
    wait_for(lambda: a.connection("ab")["queues"]["outbox_unacked"] == 0, 10, "A's outbox drained")
    wait_for(lambda: b.connection("ba")["queues"]["outbox_unacked"] == 0, 10, "B's outbox drained")


def _kill_mid_stream(cluster: Cluster, kill_sender: bool) -> None:
    a, b = _pair(cluster)
    sender, receiver, s_name, r_name = (b, a, "ba", "ab")
    victim = sender if kill_sender else receiver
    report = sender.ok("POST", f"/api/v1/connections/{s_name}/test", {"count": N, "wait": False})
    assert report["sent"] == N
    if kill_sender:
        victim.kill9()  # at once: the probes are durable in its outbox, the stream is under way
        got = len(receiver.probes(r_name))
    else:
        got = wait_for(lambda: len(receiver.probes(r_name)), 30, "the stream to start", 0.01)
        victim.kill9()
    victim.start()
    _all_delivered(receiver, r_name, N)
    wait_for(
        lambda: sender.connection(s_name)["queues"]["outbox_unacked"] == 0, 20, "sender's outbox drained"
    )
    print(f"killed {victim.name} after {got} of {N} probes were delivered")


def test_kill9_of_the_receiver_mid_stream(cluster: Cluster) -> None:
    _kill_mid_stream(cluster, kill_sender=False)


def test_kill9_of_the_sender_mid_stream(cluster: Cluster) -> None:
    _kill_mid_stream(cluster, kill_sender=True)


def test_restart_keeps_connections_and_sequence(cluster: Cluster) -> None:
    a, b = _pair(cluster)
    b.ok("POST", "/api/v1/connections/ba/test", {"count": 10})
    a.stop()
    b.ok("POST", "/api/v1/connections/ba/test", {"count": 10, "wait": False})
    a.start()
    wait_for(lambda: len(a.probes("ab")) >= 20, 20, "20 probes at A", 0.2)
    assert a.probes("ab") == list(range(10)) * 2  # two test runs, each numbered from 0
    assert a.connection("ab")["state"] == "active"
    wait_for(lambda: b.connection("ba")["link"]["state"] == "up", 10, "link back up")
    assert a.metric("tandem_messages_received_total", connection="ab") == 10


def test_delete_says_bye_and_refuses_the_connection_afterwards(cluster: Cluster) -> None:
    a, b = _pair(cluster)
    b.ok("POST", "/api/v1/connections/ba/test", {"count": 3})
    a.ok("DELETE", "/api/v1/connections/ab")
    assert [c["name"] for c in a.connections()] == []
    got = wait_for(lambda: (c := b.connection("ba"))["state"] == "error" and c, 10, "B learns of the delete")
    assert "deleted" in got["error"]
    assert got["link"]["state"] == "off"
    # Reactivating on B makes it dial again; A refuses: it has no such connection any more.
    b.ok("POST", "/api/v1/connections/ba/activate")
    wait_for(lambda: b.connection("ba")["link"]["last_error"], 10, "B's dial refused")
    assert "unknown_connection" in b.connection("ba")["link"]["last_error"]
    assert a.metric("tandem_peer_rejected_total", reason="unknown_connection") >= 1
