"""Benchmark: node-to-node message delivery over a direct link, a private outbound link and a relay.

Starts real `tandem run` processes (and a `tandem relay`) on 127.0.0.1, pairs them, then for each
situation:

* latency: 1,000 probes sent one at a time (each waits for its ack before the next); the one-way
  delivery latency of each is the receiver's commit time minus the sender's send time (same host,
  same clock), reported as p50/p99; the round trip (durable send → ack back) too;
* throughput: 2,000 probes queued at once; messages/s until the last is acked.

``--cpu N`` measures instead what the link costs each node per message, in the bulk sync's
direction (a public node sending to a private node that dialled it): N probes of ``--payload``
bytes (about a replica with seven comments) queued at once, three times; the CPU µs per message
each node process used (``/proc/<pid>/stat``) until the last was acked, best of the three.

Not a test: run it by hand, ``.venv/bin/python scripts/bench_links.py [--count N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench import cpu_seconds  # noqa: E402
from tests.e2e.harness import Cluster, NodeProc, wait_for  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def measure(
    sender: NodeProc, s_name: str, receiver: NodeProc, r_name: str, count: int, burst: int
) -> dict[str, float]:
    before = receiver.ok("GET", f"/api/v1/connections/{r_name}")["sequence"]["recv_next"] - 1
    report = sender.ok(
        "POST",
        f"/api/v1/connections/{s_name}/test",
        {"count": count, "sequential": True, "timeout_seconds": 60},
    )
    assert report["acked"], report
    wait_for(
        lambda: receiver.connection(r_name)["sequence"]["recv_next"] - 1 >= before + count,
        30,
        "delivery",
        0.1,
    )
    latencies: list[float] = []
    after = before
    while len(latencies) < count:
        page = receiver.ok("GET", f"/api/v1/connections/{r_name}/inbox?after={after}&limit=5000")["messages"]
        assert page
        for m in page:
            if m["type"] == "probe":
                sent = json.loads(m["message"]["payload"])["t"]
                latencies.append((m["received_at"] - sent) * 1000)
        after = page[-1]["seq"]
    thr = sender.ok("POST", f"/api/v1/connections/{s_name}/test", {"count": burst, "timeout_seconds": 120})
    assert thr["acked"], thr
    return {
        "p50": statistics.median(latencies),
        "p99": pct(latencies, 0.99),
        "rtt_p50": report["rtt_ms"]["p50"],
        "rtt_p99": report["rtt_ms"]["p99"],
        "rate": thr["messages_per_s"],
    }


def cpu_per_message(count: int, payload: int) -> None:
    """Public A sends ``count`` probes to private B (B dialled A), three times."""
    with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
        cluster = Cluster(Path(tmp))
        try:
            a = cluster.node("A", public=True)
            b = cluster.node("B", public=False)
            assert b.accept(a.invite(name="bulk"), name="bulk")["paired"]
            assert a.proc is not None and b.proc is not None
            best: dict[str, float] = {}
            for _ in range(3):
                before = {"A": cpu_seconds(a.proc.pid), "B": cpu_seconds(b.proc.pid)}
                report = a.ok(
                    "POST",
                    "/api/v1/connections/bulk/test",
                    {"count": count, "payload_bytes": payload, "timeout_seconds": 300},
                )
                assert report["acked"], report
                used = {"A": cpu_seconds(a.proc.pid), "B": cpu_seconds(b.proc.pid)}
                for side in used:
                    us = (used[side] - before[side]) / count * 1e6
                    best[side] = min(best.get(side, us), us)
                best["rate"] = max(best.get("rate", 0.0), report["messages_per_s"])
        finally:
            cluster.close()
    print(f"\n{count} probes of {payload} payload bytes, public A → private B (B dialled A), best of 3\n")
    print(f"{'node A CPU µs/message':28}{best['A']:10.1f}")
    print(f"{'node B CPU µs/message':28}{best['B']:10.1f}")
    print(f"{'messages/s':28}{best['rate']:10.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="probes for the latency run")
    parser.add_argument("--burst", type=int, default=2000, help="probes for the throughput run")
    parser.add_argument("--cpu", type=int, default=0, help="measure CPU per message with this many probes")
    parser.add_argument("--payload", type=int, default=3500, help="probe payload bytes for --cpu")
    args = parser.parse_args()
    if args.cpu:
        cpu_per_message(args.cpu, args.payload)
        return
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
        cluster = Cluster(Path(tmp))
        try:
            a = cluster.node("A", public=True)
            b = cluster.node("B", public=True)
            assert b.accept(a.invite(name="direct"), name="direct")["paired"]
            results["direct (public ← public)"] = measure(a, "direct", b, "direct", args.count, args.burst)

            c = cluster.node("C", public=False)
            assert c.accept(a.invite(name="outbound"), name="outbound")["paired"]
            results["private outbound (private → public)"] = measure(
                c, "outbound", a, "outbound", args.count, args.burst
            )

            relay = cluster.relay()
            d = cluster.node("D", public=False)
            assert d.accept(c.invite(name="relayed", relay=relay.url), name="relayed")["paired"]
            results["relay (private ↔ private)"] = measure(c, "relayed", d, "relayed", args.count, args.burst)
        finally:
            cluster.close()
    print(
        f"\nnode-to-node delivery, {args.count} probes one at a time; throughput with {args.burst} queued\n"
    )
    header = f"{'link':38} {'p50 ms':>8} {'p99 ms':>8} {'rtt p50':>8} {'rtt p99':>8} {'msg/s':>8}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        cells = [r["p50"], r["p99"], r["rtt_p50"], r["rtt_p99"]]
        print(f"{name:38} " + " ".join(f"{v:8.2f}" for v in cells) + f" {r['rate']:8.0f}")


if __name__ == "__main__":
    main()
