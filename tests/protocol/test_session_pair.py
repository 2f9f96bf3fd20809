"""Two sessions back to back through a hostile in-memory network: drops, duplicates, reordering."""

from __future__ import annotations

import random

import pytest

from protocol import InvalidMessage, ReplicaMessage, Session, SessionError, WindowExceeded
from protocol.messages import Ack, Ping, Unlink
from protocol.replica import EntityRef, Replica

from .helpers import paired_sessions


def replica(i: int) -> ReplicaMessage:
    return ReplicaMessage(
        replica=Replica(entity=EntityRef(id=str(i), key=f"SUP-{i}"), summary=f"issue {i}"), version=1
    )


def test_pairing_gives_both_sides_the_same_verification_string() -> None:
    pair = paired_sessions()
    assert pair.verification[0] == pair.verification[1]
    assert len(pair.verification[0].replace(" ", "")) == 12


def test_in_order_delivery_and_cumulative_ack() -> None:
    pair = paired_sessions()
    envs = [pair.b.send(replica(i), pair.nonces_b())[1] for i in range(5)]
    seen = []
    for env in envs:
        seen += [m.replica.summary for _, m in pair.a.receive(env).delivered]  # type: ignore[union-attr]
    assert seen == [f"issue {i}" for i in range(5)]
    acked = pair.b.receive(pair.a.ack(pair.nonces_a()))
    assert acked.newly_acked == [1, 2, 3, 4, 5]
    assert pair.b.unacked() == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_thousands_of_messages_through_a_lossy_network_arrive_once_in_order(seed: int) -> None:
    rng = random.Random(seed)
    pair = paired_sessions(window=512)
    total = 3000
    sent = 0
    delivered: list[int] = []
    in_flight: list[bytes] = []  # b -> a
    back: list[bytes] = []  # a -> b (acks)
    duplicates = 0
    for _round in range(10_000):
        # b sends a burst of new messages
        for _ in range(rng.randint(0, 20)):
            if sent < total and sent - pair.b.peer_acked < 400:
                in_flight.append(pair.b.send(replica(sent), pair.nonces_b())[1])
                sent += 1
        # every few rounds b "reconnects" and resends everything unacked
        if rng.random() < 0.05:
            in_flight += [env for _, env in pair.b.unacked()]
        rng.shuffle(in_flight)
        next_flight: list[bytes] = []
        for env in in_flight:
            roll = rng.random()
            if roll < 0.15:
                continue  # dropped
            if roll < 0.25:
                next_flight.append(env)  # delayed to a later round
                continue
            copies = 2 if roll > 0.9 else 1  # duplicated
            for _ in range(copies):
                try:
                    got = pair.a.receive(env)
                except WindowExceeded:
                    continue  # too far ahead; the sender resends it later
                duplicates += got.duplicate
                delivered += [int(m.replica.entity.id) for _, m in got.delivered]  # type: ignore[union-attr]
            if rng.random() < 0.3:
                back.append(pair.a.ack(pair.nonces_a()))
        in_flight = next_flight
        rng.shuffle(back)
        for env in back:
            if rng.random() < 0.7:
                pair.b.receive(env)
        back = []
        if len(delivered) == total:
            break
    assert delivered == list(range(total))
    assert duplicates > 0  # the network really did duplicate
    pair.b.receive(pair.a.ack(pair.nonces_a()))
    assert pair.b.unacked() == []


def test_restored_session_resends_exactly_what_was_not_acked() -> None:
    pair = paired_sessions()
    for i in range(10):
        pair.b.send(replica(i), pair.nonces_b())
    pair.b.receive(pair.a.control(Ack(upto=0), pair.nonces_a()))
    # a received only the first 4
    for _, env in pair.b.unacked()[:4]:
        pair.a.receive(env)
    pair.b.receive(pair.a.ack(pair.nonces_a()))
    # b crashes: it rebuilds from its durable outbox
    restored = Session(
        pair.b.keys, send_next=pair.b.send_next, recv_next=pair.b.recv_next, unacked=dict(pair.b.unacked())
    )
    assert [seq for seq, _ in restored.unacked()] == [5, 6, 7, 8, 9, 10]
    # link comes back: a says hello with where it stands; duplicates of 1..4 are dropped
    restored.receive(pair.a.hello(pair.nonces_a()))
    delivered = []
    for _, env in restored.unacked():
        delivered += [seq for seq, _ in pair.a.receive(env).delivered]
    assert delivered == [5, 6, 7, 8, 9, 10]


def test_piggybacked_ack_frees_the_outbox() -> None:
    pair = paired_sessions()
    env = pair.b.send(replica(1), pair.nonces_b())[1]
    pair.a.receive(env)
    reply = pair.a.send(Unlink(entity=EntityRef(id="1")), pair.nonces_a())[1]
    got = pair.b.receive(reply)
    assert got.newly_acked == [1]


def test_ack_for_unsent_sequence_is_a_session_error_and_changes_nothing() -> None:
    pair = paired_sessions()
    pair.b.send(replica(1), pair.nonces_b())
    with pytest.raises(SessionError):
        pair.b.receive(pair.a.control(Ack(upto=5), pair.nonces_a()))
    assert [s for s, _ in pair.b.unacked()] == [1]


def test_control_and_sequenced_kinds_cannot_be_swapped() -> None:
    pair = paired_sessions()
    with pytest.raises(ValueError):
        pair.a.send(Ping(), pair.nonces_a())
    with pytest.raises(ValueError):
        pair.a.control(replica(1), pair.nonces_a())
    # a peer that seals a replica with sequence 0 is rejected
    bad = pair.b.keys.seal(0, b'{"t":"unlink","entity":{"id":"x"}}', pair.nonces_b())
    with pytest.raises(InvalidMessage):
        pair.a.receive(bad)


def test_replayed_envelope_is_never_delivered_twice() -> None:
    pair = paired_sessions()
    env = pair.b.send(replica(1), pair.nonces_b())[1]
    assert len(pair.a.receive(env).delivered) == 1
    again = pair.a.receive(env)
    assert again.delivered == [] and again.duplicate


def test_a_hello_says_only_what_the_caller_says_it_has_persisted() -> None:
    pair = paired_sessions()
    for n in (1, 2, 3):
        pair.a.receive(pair.b.send(replica(n), pair.nonces_b())[1])
    assert pair.a.delivered_upto == 3
    # The receiver stored only the first two so far: its Hello may not cover the third.
    got = pair.b.receive(pair.a.hello(pair.nonces_a(), recv_next=3))
    assert got.newly_acked == [1, 2] and [seq for seq, _ in pair.b.unacked()] == [3]
    # Defaults: everything delivered.
    assert pair.b.receive(pair.a.hello(pair.nonces_a())).newly_acked == [3]


def test_an_ack_beyond_what_was_delivered_is_refused_before_sealing() -> None:
    pair = paired_sessions()
    pair.a.receive(pair.b.send(replica(1), pair.nonces_b())[1])
    send_next = pair.a.send_next
    for recv_next in (3, 0):
        with pytest.raises(ValueError, match="delivered up to 1"):
            pair.a.hello(pair.nonces_a(), recv_next=recv_next)
    assert pair.a.send_next == send_next


def test_a_resent_sequence_number_is_dropped_as_a_duplicate_without_reading_it_again() -> None:
    pair = paired_sessions()
    pair.a.receive(pair.b.send(replica(1), pair.nonces_b())[1])
    # Authentic (sealed with the peer's key) but already delivered: whatever it holds, it is dropped.
    again = pair.a.receive(pair.b.keys.seal(1, b"not even JSON", pair.nonces_b()))
    assert again.duplicate and again.delivered == [] and pair.a.recv_next == 2
    with pytest.raises(InvalidMessage):  # the same bytes as a new sequence number are refused
        pair.a.receive(pair.b.keys.seal(2, b"not even JSON", pair.nonces_b()))
