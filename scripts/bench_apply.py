"""Apply-path benchmark: the CPU node B spends per incoming replica in its sync engine, store and
tracker adapter, without the link, the peer or intake.

    .venv/bin/python scripts/bench_apply.py [--issues 1000] [--rate 80] [--concurrency N]

What runs where (all on 127.0.0.1, ports picked by the OS):

* a subprocess: ``tandem emulate jira-server`` (project ENG), the tracker node B writes to;
* this process: a real ``SyncEngine`` on a real store (temporary directory, WAL) with a
  ``JiraAdapter``, and a stand-in for the connection manager that hands it replica messages the
  way the manager's listener does (each one also stored in the inbox first, as ``on_frame`` does)
  and keeps what the engine sends (an outbox row per call, as ``manager.send`` writes).

The replicas are ``scripts/bench.py``'s bulk issues as node A's Basic outgoing rules make them
(Jira Cloud, ADF description, ``--comments`` comments each), built before the clock starts. They
arrive ``--rate`` per second, ``--burst`` at a time (node A sends a search page's issues together;
rate 0: all at once), and the run ends when the engine is idle. Every
issue is a create: one ``issue/bulk`` per batch, one ``POST comment`` per comment, one search per
batch of final reads (the comments' properties come from the adapter's memo of what it wrote; a
comment read or two at the start check once that the site keeps them). ``--concurrency`` defaults
to the node's ``sync.apply_concurrency``.

The figures: this process's CPU (every thread: the event loop and the store's writer) per
applied issue, the emulator's CPU per issue (the tracker side of the same calls), and the
tracker calls per issue. Use it for A/B of engine and store changes; the full picture (link,
webhooks, node A) is ``scripts/bench.py``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from node.connections import Runtime  # noqa: E402
from node.rules import OutgoingContext, RuleSet, compile_rules  # noqa: E402
from node.store import Database  # noqa: E402
from node.store.rows import (  # noqa: E402
    ConnectionRow,
    inbox_mark_processed,
    inbox_put,
    insert_connection,
    outbox_put_replies,
)
from node.sync.engine import SyncEngine  # noqa: E402
from node.sync.settings import SyncSettings  # noqa: E402
from node.trackers.jira import JiraAdapter  # noqa: E402
from node.trackers.jira.mapping import issue_snapshot  # noqa: E402
from protocol import NodeIdentity  # noqa: E402
from protocol.messages import Message, ReplicaMessage, decode_message, encode_message  # noqa: E402
from scripts.bench import cpu_seconds  # noqa: E402

CONN_ID = bytes(range(16))
NAME = "to-a"
USER, PASSWORD = "admin", "admin"


def raw_issue(n: int, comments: int) -> dict[str, Any]:
    """Issue ``n`` as Jira Cloud's REST v3 returns it (``scripts/bench.py``'s bulk issue)."""
    from node.richtext.adf import to_adf
    from node.richtext.wiki import from_wiki

    now = "2026-05-01T10:00:00.000+0000"
    jane = {"accountId": "5b10ac8d82e05b22cc7djane", "displayName": "Jane Agent", "active": True}
    description = f"Customer report {n}.\n\nSteps: open the *settings* page, press {{{{Save}}}}."
    return {
        "id": str(20000 + n),
        "key": f"BLK-{n}",
        "self": f"https://a.example/rest/api/3/issue/{20000 + n}",
        "fields": {
            "summary": f"bulk issue {n}",
            "description": to_adf(from_wiki(description)),
            "issuetype": {"id": "10001", "name": ("Task", "Bug", "Story")[n % 3]},
            "priority": {"id": "3", "name": ("High", "Medium", "Low")[n % 3]},
            "labels": ["customer", ("backend", "frontend")[n % 2]],
            "components": [],
            "fixVersions": [],
            "versions": [],
            "status": {"name": "To Do", "statusCategory": {"key": "new", "name": "To Do"}},
            "project": {"key": "BLK", "name": "Bulk", "id": "10000"},
            "created": now,
            "updated": now,
            "reporter": jane,
            "creator": jane,
            "assignee": None,
            "comment": {
                "comments": [
                    {
                        "id": str(100000 + n * 100 + k),
                        "author": jane,
                        "updateAuthor": jane,
                        "body": to_adf(from_wiki(f"Comment {k} on issue {n}: it still fails.")),
                        "created": now,
                        "updated": now,
                        "jsdPublic": True,
                    }
                    for k in range(comments)
                ],
                "total": comments,
                "maxResults": 50,
                "startAt": 0,
            },
        },
    }


def replicas(issues: int, comments: int) -> list[bytes]:
    """The replica messages, encoded (as they arrive; decoded one by one as the link does)."""
    rules = compile_rules(RuleSet(direction="outgoing"))
    ctx = OutgoingContext(connection="bench")
    out = []
    for n in range(issues):
        replica = rules.outgoing_result(
            issue_snapshot(raw_issue(n, comments), base_url="https://a"), ctx
        ).replica
        assert replica is not None
        out.append(encode_message(ReplicaMessage(replica=replica, version=1, reason="bulk")))
    return out


@dataclasses.dataclass
class _Session:
    send_next: int = 1


class StandInManager:
    """What the engine uses of :class:`ConnectionManager`: one active connection, its listener,
    ``send`` (an outbox row per message and the inbox rows it answers marked processed, in one
    transaction per call) and ``mark_processed``."""

    def __init__(self, db: Database, row: ConnectionRow) -> None:
        self.db = db
        self.identity = NodeIdentity.from_seed(bytes(range(64)))
        self.rt = Runtime(row=row, session=_Session())
        self.runtimes = {row.id: self.rt}
        self.listeners: list[Any] = []
        self.sent = 0

    def add_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def get(self, name: str) -> Runtime:
        return self.rt

    async def send(
        self, rt: Runtime, messages: Sequence[Message], processed: Sequence[int] = ()
    ) -> list[int]:
        session = rt.session
        items = []
        for message in messages:
            items.append((session.send_next, message.t, encode_message(message)))
            session.send_next += 1

        await self.db.write(
            lambda c: outbox_put_replies(c, rt.row.id, items, session.send_next, list(processed), time.time())
        )
        self.sent += len(items)
        return [seq for seq, _, _ in items]

    async def mark_processed(self, rt: Runtime, seqs: Sequence[int]) -> int:
        return await self.db.write(lambda c: inbox_mark_processed(c, rt.row.id, list(seqs), time.time()))

    async def deliver(self, seq: int, body: bytes) -> None:
        message = decode_message(body)
        await self.db.write(
            lambda c: inbox_put(c, CONN_ID, [(seq, message.t, body, None)], seq + 1, time.time())
        )
        for listener in self.listeners:
            await listener(NAME, seq, message)


def writer_cpu(db: Database) -> float:
    """CPU seconds of the store's writer thread so far."""
    tid = db._writer._thread.native_id
    return cpu_seconds(os.getpid(), tid) if tid is not None else 0.0


async def run(args: argparse.Namespace, messages: list[bytes], base: str, emu_pid: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "node.db")
        await db.open()
        now = time.time()
        row = ConnectionRow(
            id=CONN_ID, name=NAME, role="acceptor", state="active", link="dial",
            expires_at=0, created_at=now, updated_at=now, project="ENG", peer_name="A",
            peer_sign=bytes(32),
        )  # fmt: skip
        await db.write(lambda c: insert_connection(c, row))
        manager = StandInManager(db, row)
        adapter = JiraAdapter(base, deployment="server", user=USER, token=PASSWORD)
        settings = SyncSettings(apply_concurrency=args.concurrency)
        engine = SyncEngine(db, manager, adapter, node_name="B", settings=settings)  # type: ignore[arg-type]
        await engine.start()
        gc.collect()
        gc.freeze()  # what the harness set up is not what node B would hold: out of the GC's way
        cpu0, emu0, wall0 = time.process_time(), cpu_seconds(emu_pid), time.perf_counter()
        writer0 = writer_cpu(db)
        for n, body in enumerate(messages):
            if args.rate > 0 and n % args.burst == 0:
                delay = wall0 + n / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await manager.deliver(n + 1, body)
        await engine.idle(timeout=3600)
        cpu, emu_cpu = time.process_time() - cpu0, cpu_seconds(emu_pid) - emu0
        wall = time.perf_counter() - wall0
        writer = writer_cpu(db) - writer0
        await engine.stop()
        twins, unprocessed = await db.read(
            lambda c: c.execute(
                "SELECT (SELECT COUNT(*) FROM twins WHERE state = 'linked'), "
                "(SELECT COUNT(*) FROM inbox WHERE processed_at IS NULL)"
            ).fetchone()
        )
        async with adapter.client.session.get(f"{base}/_emulator/stats") as resp:
            stats = await resp.json()
        await adapter.close()
        await db.close()
    return {
        "cpu": cpu,
        "writer": writer,
        "emu": emu_cpu,
        "wall": wall,
        "twins": twins,
        "unprocessed": unprocessed,
        "stats": stats,
        "sent": manager.sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, default=1000)
    parser.add_argument("--comments", type=int, default=7)
    parser.add_argument("--rate", type=float, default=80.0, help="replicas per second (0: all at once)")
    parser.add_argument("--burst", type=int, default=50, help="replicas arriving together (A sends pages)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=SyncSettings().apply_concurrency,
        help="sync.apply_concurrency (default: the node's)",
    )
    args = parser.parse_args()
    messages = replicas(args.issues, args.comments)
    command = [sys.executable, "-m", "node.cli", "emulate", "jira-server", "--port", "0", "--project", "ENG"]
    emu = subprocess.Popen(
        [*command, "--user", USER, "--password", PASSWORD],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert emu.stdout is not None
        base = emu.stdout.readline().split(" at ", 1)[1].split()[0]
        out = asyncio.run(run(args, messages, base, emu.pid))
    finally:
        emu.terminate()
        emu.wait(10)
    n = args.issues
    routes = {k: v for k, v in out["stats"].get("routes", {}).items() if v}
    print(
        f"\nApply path, {n} issues x {args.comments} comments, {args.rate}/s in bursts of {args.burst}, "
        f"{args.concurrency} lanes"
    )
    print(f"  twins linked              {out['twins']} (inbox rows left unprocessed: {out['unprocessed']})")
    print(f"  wall (s)                  {out['wall']:.1f}")
    print(f"  engine process CPU / issue {out['cpu'] / n * 1e3:.2f} ms")
    print(f"  of which store writer     {out['writer'] / n * 1e3:.2f} ms")
    print(f"  emulator CPU / issue       {out['emu'] / n * 1e3:.2f} ms")
    print(f"  tracker calls / issue      {sum(routes.values()) / n:.2f}")
    print(f"  messages sent              {out['sent']}")
    print(json.dumps(routes, indent=1))


if __name__ == "__main__":
    main()
