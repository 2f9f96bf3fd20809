"""Store micro benchmark: what one ``Database.read`` / ``Database.write`` costs the node.

    .venv/bin/python scripts/bench_store.py [--ops 20000] [--concurrency 16]

A temporary database (WAL, ``synchronous=NORMAL`` like a node) with one table of 10,000 rows. Each
row of the table is one kind of call, issued ``--ops`` times either one after the other (``seq``)
or from ``--concurrency`` tasks at once (``conc``, how the sync engine calls the store):

* point read: ``SELECT v FROM kv WHERE k = ?`` (an indexed row, like ``twin_by_local``);
* small write: ``INSERT OR REPLACE`` of one row in its own transaction;
* scan read: 2,000 rows in one read (a listing; the kind of read that must not stall the loop).

CPU µs/op is the process's user + system time (every thread) divided by the calls: the figure
that matters on a machine whose cores are saturated. Wall ops/s is for a single process alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from node.store import Database, Migration

ROWS = 10_000
_SCHEMA = Migration(1, "bench table", "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB NOT NULL);")


def _seed(c: sqlite3.Connection) -> None:
    c.executemany("INSERT INTO kv (k, v) VALUES (?, ?)", ((f"K-{i}", os.urandom(64)) for i in range(ROWS)))


async def _measure(n: int, concurrency: int, call: Callable[[int], Awaitable[object]]) -> tuple[float, float]:
    """Returns (ops per wall second, CPU µs per op)."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if concurrency == 1:
        for i in range(n):
            await call(i)
    else:
        per = n // concurrency

        async def worker(w: int) -> None:
            for i in range(per):
                await call(w * per + i)

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        n = per * concurrency
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return n / wall, cpu / n * 1e6


async def run(ops: int, concurrency: int) -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "bench.db", migrations=(_SCHEMA,))
        await db.open()
        try:
            await db.write(_seed)

            def point(i: int) -> Awaitable[object]:
                key = f"K-{(i * 7919) % ROWS}"
                return db.read(lambda c: c.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone())

            def write(i: int) -> Awaitable[object]:
                key, value = f"W-{i % 5000}", b"x" * 64
                return db.write(
                    lambda c: c.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))
                )

            def scan(i: int) -> Awaitable[object]:
                return db.read(lambda c: c.execute("SELECT k, v FROM kv LIMIT 2000").fetchall())

            out = []
            for name, call, n in (
                ("point read", point, ops),
                ("small write", write, ops),
                ("scan read", scan, 200),
            ):
                await call(0)  # warm the statement cache
                for label, conc in (("seq", 1), ("conc", concurrency)):
                    rate, cpu = await _measure(n, conc, call)
                    out.append((f"{name} ({label})", rate, cpu))
            return out
        finally:
            await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    rows = asyncio.run(run(args.ops, args.concurrency))
    print(f"\nStore micro benchmark ({args.ops} ops, concurrency {args.concurrency})\n")
    print(f"{'call':<26}{'ops/s':>12}{'CPU µs/op':>12}")
    print("-" * 50)
    for name, rate, cpu in rows:
        print(f"{name:<26}{rate:>12,.0f}{cpu:>12.1f}")


if __name__ == "__main__":
    main()
