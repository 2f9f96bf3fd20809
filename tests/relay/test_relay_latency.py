"""Relay hop latency (deposit → push) and pipelined throughput on loopback, printed for the record.

Run with ``-s`` to see the figures. Only completeness and order are asserted; timings vary by
machine, so they are reported, not tested (the node benchmark measures end to end)."""

from __future__ import annotations

import asyncio
import statistics
import time

from node.transport.relay import RelayServer

from .conftest import ClientFactory, channel, identity, seal

ALICE = identity("alice")
BOB = identity("bob")
COUNT = 1000


async def test_relay_hop_latency_and_throughput(relay: RelayServer, make_client: ClientFactory) -> None:
    keys, bob_keys = channel(ALICE, BOB), channel(BOB, ALICE)
    sent_at: dict[int, float] = {}
    hop: list[float] = []
    order: list[int] = []
    all_in = asyncio.Event()
    expected = 2 * COUNT

    async def on_envelope(envelope: bytes) -> None:
        now = time.perf_counter()
        sequence = bob_keys.open(envelope)[0].sequence
        order.append(sequence)
        if sequence <= COUNT:
            hop.append(now - sent_at[sequence])
        if len(order) == expected:
            all_in.set()

    await make_client(BOB, on_envelope)
    alice = await make_client(ALICE)
    envelopes = [seal(keys, seq, f"payload {seq:04d} " + "x" * 200) for seq in range(1, expected + 1)]

    # one at a time: the hop itself, no queueing
    for seq in range(1, COUNT + 1):
        sent_at[seq] = time.perf_counter()
        await alice.send(envelopes[seq - 1])

    # pipelined: how many envelopes per second one sender gets through the relay
    started = time.perf_counter()
    async with asyncio.timeout(60):
        await asyncio.gather(*(alice.send(env) for env in envelopes[COUNT:]))
        await all_in.wait()
    elapsed = time.perf_counter() - started

    assert order == list(range(1, expected + 1))
    cuts = statistics.quantiles(hop, n=100)
    print(
        f"\nrelay hop deposit→push over {COUNT} envelopes on loopback: "
        f"p50 {cuts[49] * 1000:.2f} ms, p99 {cuts[98] * 1000:.2f} ms, max {max(hop) * 1000:.2f} ms; "
        f"pipelined {COUNT / elapsed:.0f} envelopes/s"
    )
