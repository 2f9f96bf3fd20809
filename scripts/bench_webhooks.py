"""Webhook deliveries per second a node takes in, and the receiving process's CPU per delivery.

    .venv/bin/python scripts/bench_webhooks.py [--deliveries 5000] [--concurrency 8]

This process runs the node's real webhook listener (``node.web.webhooks.make_webhook_app``) with the
real :class:`~node.sync.intake.Intake` and the real Jira adapter (checked against a Jira Server
emulator in this process, which then stays idle); the sync engine is a counter. Another process
posts recorded-shaped deliveries — rendered by the emulator's own webhook code for an issue with 7
comments — over one keep-alive connection per in-flight request. Scenarios: the node's own comment
coming back (``jira:issue_updated``/``issue_commented`` and ``comment_created`` by the proxy user:
echoes intake drops) and a person's comment (handed to the engine). CPU is this process's
``time.process_time`` over the run, so it is the receiving side only. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.store import Database
from node.store.db import create_database
from node.sync.intake import Intake, IntakeSettings
from node.trackers.jira import connect_jira
from node.trackers.jira.emulator import JiraEmulator
from node.trackers.jira.emulator.ops import Event, Site
from node.trackers.jira.emulator.views import View
from node.web.webhooks import make_webhook_app, make_webhook_server


class CountingEngine:
    def __init__(self) -> None:
        self.changes = 0

    async def local_change(self, issue_id_or_key: str, *, reason: str = "webhook") -> None:
        self.changes += 1


class NodeStub:
    """What the webhook handler reads from the node: its intake."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake


def render_deliveries(emu: JiraEmulator) -> dict[str, list[bytes]]:
    """Webhook bodies for each scenario, rendered by the emulator's own webhook code."""
    import orjson

    state = emu.state
    state.add_project("BENCH")
    state.add_user("alice", password="alice", display_name="Alice Person")
    site = Site(state)
    admin, alice = state.users["admin"], state.find_user(name="alice")
    assert alice is not None
    fields = {
        "project": {"key": "BENCH"},
        "issuetype": {"name": "Task"},
        "summary": "A synced issue",
        "description": "Line one\n\nSecond paragraph with *bold*.",
        "labels": ["backend"],
        "priority": {"name": "High"},
    }
    issue = site.create_issue(admin, {"fields": fields}, 2)
    view = View(state, emu.base_url or "http://127.0.0.1", 2)
    out: dict[str, list[bytes]] = {"echo": [], "echo (old comment_* hook)": [], "person": []}
    for n in range(7):
        comment = site.add_comment(admin, issue, {"body": f"Comment {n} with *bold* text."}, 2)
        for event, key in (
            (Event("jira:issue_updated", issue, admin, "issue_commented", comment=comment), "echo"),
            (Event("comment_created", issue, admin, comment=comment), "echo (old comment_* hook)"),
            (Event("jira:issue_updated", issue, alice, "issue_commented", comment=comment), "person"),
        ):
            out[key].append(orjson.dumps(emu.app.webhook_payload(view, event)))
    return out


async def send(url: str, bodies: list[bytes], count: int, concurrency: int) -> float:
    """POST ``count`` deliveries (cycling through ``bodies``); the wall seconds it took."""
    headers = {
        "Content-Type": "application/json; charset=UTF-8",
        "User-Agent": "Atlassian Webhook HTTP Client",
    }
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        todo = iter(range(count))
        failures = 0

        async def worker() -> None:
            nonlocal failures
            for n in todo:
                async with session.post(url, data=bodies[n % len(bodies)], headers=headers) as resp:
                    await resp.read()
                    failures += resp.status != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{failures} deliveries were refused")
    return elapsed


def write_bodies(path: Path, bodies: list[bytes]) -> None:
    path.write_bytes(b"".join(struct.pack(">I", len(b)) + b for b in bodies))


def read_bodies(path: Path) -> list[bytes]:
    data, out, at = path.read_bytes(), [], 0
    while at < len(data):
        (size,) = struct.unpack_from(">I", data, at)
        out.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return out


async def run_sender(url: str, path: Path, count: int, concurrency: int) -> float:
    """Run the sender in its own process; the wall seconds it measured."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--send",
        url,
        str(path),
        "--deliveries",
        str(count),
        "--concurrency",
        str(concurrency),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"sender failed: {out.decode()}")
    return float(out.decode().strip())


async def receiver(args: argparse.Namespace) -> None:
    emu = JiraEmulator(mode="server")
    base = await emu.start()
    deliveries = render_deliveries(emu)
    tmp = Path(tempfile.mkdtemp(prefix="tandem-bench-webhooks-"))
    create_database(tmp / "tandem.db")
    db = Database(tmp / "tandem.db")
    await db.open()
    adapter = await connect_jira(base, user="admin", token="admin")
    engine = CountingEngine()
    settings = IntakeSettings(
        poll_seconds=3600, poll_seconds_webhooks=3600, reconcile_seconds=0, register_webhooks=False
    )
    intake = Intake(adapter, engine, db, settings, describe="Jira Server emulator", user="admin")
    await intake.start()
    runners: dict[str, web.BaseRunner[web.BaseRequest]] = {}
    urls: dict[str, str] = {}
    listeners = ("server", "app") if args.listener == "both" else (args.listener,)
    for listener in listeners:
        if listener == "app":  # the route as the peer app of a public node mounts it
            stub: Any = NodeStub(intake)
            runners[listener] = web.AppRunner(make_webhook_app(stub), access_log=None)
        else:  # the webhook-only listener of a private node (node.app)
            runners[listener] = web.ServerRunner(make_webhook_server(NodeStub(intake)))  # type: ignore[arg-type]
        await runners[listener].setup()
        site = web.TCPSite(runners[listener], "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        urls[listener] = f"http://127.0.0.1:{port}/webhooks/{intake._path}"
    # (listener, scenario) -> per round: (wall s, CPU s, handed to the engine)
    runs: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    try:
        for _ in range(200):  # the credentials check and first poll run before anything is measured
            if intake.last_poll_at is not None:
                break
            await asyncio.sleep(0.05)
        warm_up = tmp / "warm-up"
        write_bodies(warm_up, [b for bodies in deliveries.values() for b in bodies])
        for url in urls.values():
            await run_sender(url, warm_up, min(1000, args.deliveries), args.concurrency)
        await intake.idle()
        for _ in range(args.rounds):  # listeners interleaved: a busy machine slows both alike
            for name, bodies in deliveries.items():
                path = tmp / "bodies"
                write_bodies(path, bodies)
                for listener, url in urls.items():
                    before = engine.changes
                    cpu = time.process_time()
                    wall = await run_sender(url, path, args.deliveries, args.concurrency)
                    await intake.idle()
                    cpu = time.process_time() - cpu
                    runs.setdefault((listener, name), []).append((wall, cpu, engine.changes - before))
    finally:
        await intake.stop()
        for runner in runners.values():
            await runner.cleanup()
        await adapter.close()
        await db.close()
        await emu.stop()
    n = args.deliveries
    print(
        f"{n} deliveries per scenario and round, {args.rounds} round(s) (medians),"
        f" {args.concurrency} in flight (keep-alive)"
    )
    print(f"{'listener':8} {'scenario':28} {'bytes':>6} {'deliv/s':>8} {'CPU us/deliv':>12} {'to engine':>9}")
    for (listener, name), results in runs.items():
        wall = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        handed = results[-1][2]
        size = len(deliveries[name][0])
        print(f"{listener:8} {name:28} {size:6d} {n / wall:8.0f} {cpu / n * 1e6:12.1f} {handed:9d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--listener",
        choices=("server", "app", "both"),
        default="both",
        help="the webhook-only listener, the route inside the peer app, or both (interleaved)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat every measurement; medians shown")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats of the receiver here")
    parser.add_argument("--send", nargs=2, metavar=("URL", "BODIES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        url, path = args.send
        elapsed = asyncio.run(send(url, read_bodies(Path(path)), args.deliveries, args.concurrency))
        print(elapsed)
        return
    if args.profile:
        import cProfile

        cProfile.runctx("asyncio.run(receiver(args))", globals(), {"args": args}, args.profile)
        return
    asyncio.run(receiver(args))


if __name__ == "__main__":
    main()
