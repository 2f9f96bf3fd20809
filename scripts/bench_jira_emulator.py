"""Requests per second of the Jira emulator: get-issue and JQL search over ~5,000 issues (a query
that names 50 issues by id/key, as the node's batched reads do, too; ``--full-scan`` measures it as
the emulator answered it before the lookup); with
``--webhooks``, the cost of webhook delivery instead.

    .venv/bin/python scripts/bench_jira_emulator.py [--issues 5000] [--requests 2000] [--concurrency 16]
    .venv/bin/python scripts/bench_jira_emulator.py --webhooks [--mode server] [--comments 3000]
    .venv/bin/python scripts/bench_jira_emulator.py --deliveries 5000
    .venv/bin/python scripts/bench_jira_emulator.py --reads [--mode server] [--issues 300] [--batch 10]

Issues are created through the emulator's own rules (so they carry history like API-created ones),
then an aiohttp client with a bounded number of in-flight requests measures each operation.

``--webhooks`` adds comments through ``POST …/comment`` (7 per issue, like scripts/bench.py), first
with no webhook registered, then with one admin webhook (the events Tandem registers for, or
``--events``) pointing at a trivial receiver in another process. The emulator and the client share
this process, so the CPU a delivered event costs is the difference between the two runs divided by
the events delivered.

``--deliveries N`` measures the delivery alone: N pre-built 6 KB bodies through the emulators'
``DeliveryQueue`` (4 workers) to the same receiver, once with the lean ``http://`` client and once
through aiohttp (as https URLs would go); CPU of this process per delivery.

``--reads`` measures what node B asks of its site per synced issue, in the bulk's order: 7 comments
written through ``POST …/comment`` (marker property, one webhook registered for Tandem's events,
delivered to a receiver in another process), then the final reads ``POST /rest/api/2/search``
(``id in (…)`` of ``--batch`` issues, ``fields=*all``, ``expand=names,changelog``,
``properties=*all``, as ``JiraAdapter._search_ids``) and ``GET …/issue/{id}/comment?expand=properties``
(as ``JiraAdapter._comments``). Three rounds of ``--issues`` new issues. The emulator serves from
its own thread, so its CPU per request is that thread's CPU time alone (``time.thread_time``).

``--pages`` measures node A's bulk listing: ``search/jql`` pages of 100 with what the adapter asks,
over ``--issues`` seeded issues (7 comments each); emulator-thread CPU per issue.

Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.trackers.jira.emulator import JiraEmulator
from node.trackers.jira.emulator import server as server_module
from node.trackers.jira.emulator.ops import Site
from node.trackers.jira.emulator.search import run_search
from node.trackers.jira.emulator.webhooks import WebhookDispatcher
from node.trackers.jira.webhooks import SUBSCRIBED_EVENTS
from scripts.bench_adapter import EmulatorThread

RECEIVER = """
import sys
from aiohttp import web

async def ok(request):
    await request.read()
    return web.Response(text="ok")

app = web.Application()
app.router.add_post("/{tail:.*}", ok)
runner = web.AppRunner(app, access_log=None)

async def main():
    import asyncio
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

import asyncio
asyncio.run(main())
"""


def populate(emu: JiraEmulator, count: int) -> None:
    state = emu.state
    state.add_project("BENCH", components=["Core", "UI"], versions=["1.0"])
    site = Site(state)  # no event sink: no webhooks during setup
    admin = state.users["admin"]
    rng = random.Random(1)
    for n in range(count):
        fields = {
            "project": {"key": "BENCH"},
            "issuetype": {"name": rng.choice(["Task", "Bug", "Story"])},
            "summary": f"Benchmark issue {n} {rng.choice(['alpha', 'beta', 'gamma'])}",
            "description": f"Line one of {n}\n\nSecond paragraph with *bold*.",
            "labels": rng.sample(["backend", "frontend", "urgent", "customer"], 2),
            "priority": {"name": rng.choice(["High", "Medium", "Low"])},
        }
        issue = site.create_issue(admin, {"fields": fields}, 2)
        if n % 3 == 0:
            site.do_transition(admin, issue, {"transition": {"id": "21"}}, 2)


async def measure(
    session: aiohttp.ClientSession, urls: list[str], concurrency: int, headers: dict[str, str]
) -> tuple[float, list[float], int]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors = 0

    async def one(url: str) -> None:
        nonlocal errors
        async with sem:
            t0 = time.perf_counter()
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(one(u) for u in urls))
    return time.perf_counter() - started, latencies, errors


async def add_comments(
    session: aiohttp.ClientSession, base: str, keys: list[str], per_issue: int, concurrency: int
) -> tuple[float, float, int]:
    """POST ``per_issue`` comments on each issue (one issue's comments in order); wall and CPU seconds."""
    headers = {"Authorization": aiohttp.encode_basic_auth("admin", "admin")}
    sem = asyncio.Semaphore(concurrency)
    errors = 0

    async def issue(key: str) -> None:
        nonlocal errors
        async with sem:
            for n in range(per_issue):
                body = {"body": f"Comment {n} on {key} with *bold* and a [link|https://example.com/{n}]."}
                async with session.post(
                    f"{base}/rest/api/2/issue/{key}/comment", json=body, headers=headers
                ) as r:
                    await r.read()
                    errors += r.status != 201

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(issue(k) for k in keys))
    return time.perf_counter() - wall, time.process_time() - cpu, errors


class AiohttpOnly(WebhookDispatcher):
    """Every delivery through aiohttp, as before the lean client (and as https URLs still go)."""

    def request(self, item: tuple[str, bytes]) -> tuple[str, bytes, dict[str, str]]:
        url, body, headers = super().request(item)
        self._targets[url] = None  # no lean target: _post takes the aiohttp path
        return url, body, headers


async def bench_deliveries(args: argparse.Namespace) -> None:
    receiver = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is measured)
        [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True
    )
    body = b'{"webhookEvent": "jira:issue_updated", "pad": "' + b"x" * 6000 + b'"}'
    rows = []
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/hook"
        for name, cls in (("aiohttp", AiohttpOnly), ("lean", WebhookDispatcher)):
            d = cls(max_queue=args.deliveries + 500, workers=4)
            await d.start()
            try:
                for _ in range(300):  # warm-up: connections open
                    d.enqueue(url, body)
                await d.drain(60)
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(args.deliveries):
                    d.enqueue(url, body)
                await d.drain(600)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            finally:
                await d.stop()
            rows.append((name, wall, cpu, d.stats.delivered - 300, d.stats.failed))
    finally:
        receiver.terminate()
        receiver.wait(5)
    print(f"webhook delivery alone: {args.deliveries} x {len(body)} bytes, 4 workers, receiver in a process")
    print(f"{'client':10} {'deliveries/s':>12} {'CPU us/delivery':>15} {'delivered':>9} {'failed':>6}")
    for name, wall, cpu, delivered, failed in rows:
        print(f"{name:10} {delivered / wall:12.0f} {cpu / delivered * 1e6:15.1f} {delivered:9d} {failed:6d}")


async def bench_webhooks(args: argparse.Namespace) -> None:
    receiver = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is measured)
        [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/hook"
        per_issue = 7
        issues = max(1, args.comments // per_issue)
        events = args.events.split(",") if args.events else list(SUBSCRIBED_EVENTS)
        rows = []
        for hooked in (False, True):
            emu = JiraEmulator(mode=args.mode)
            populate(emu, issues)
            base = await emu.start()
            try:
                if hooked:
                    body = {"name": "bench", "url": url, "events": events, "excludeBody": False}
                    emu.app.dispatcher._queue = asyncio.Queue()  # unbounded: measure, never drop
                    async with aiohttp.ClientSession() as s:
                        headers = {"Authorization": aiohttp.encode_basic_auth("admin", "admin")}
                        async with s.post(
                            f"{base}/rest/webhooks/1.0/webhook", json=body, headers=headers
                        ) as r:
                            assert r.status == 201, await r.text()
                keys = [f"BENCH-{n}" for n in range(1, issues + 1)]
                async with aiohttp.ClientSession() as session:
                    wall, cpu, errors = await add_comments(session, base, keys, per_issue, args.concurrency)
                    t0, c0 = time.perf_counter(), time.process_time()
                    await emu.drain_webhooks(600)
                    wall += time.perf_counter() - t0
                    cpu += time.process_time() - c0
                stats = emu.app.dispatcher.stats
                rows.append((hooked, issues * per_issue, wall, cpu, errors, stats.delivered, stats.failed))
            finally:
                await emu.stop()
    finally:
        receiver.terminate()
        receiver.wait(5)
    print(
        f"Jira emulator ({args.mode}): {issues} issues x {per_issue} comments, concurrency {args.concurrency}"
    )
    print(f"webhook events: {','.join(events)}")
    print(
        f"{'run':10} {'comments':>8} {'comm/s':>8} {'CPU s':>7} {'CPU us/comm':>11}"
        f" {'delivered':>9} {'errors':>6}"
    )
    for hooked, n, wall, cpu, errors, delivered, failed in rows:
        name = "1 webhook" if hooked else "no hook"
        print(
            f"{name:10} {n:8d} {n / wall:8.1f} {cpu:7.2f} {cpu / n * 1e6:11.0f}"
            f" {delivered:9d} {errors + failed:6d}"
        )
    (_, n, _, cpu0, *_), (_, _, _, cpu1, _, delivered, _) = rows
    if delivered:
        print(
            f"CPU per delivered event: {(cpu1 - cpu0) / delivered * 1e6:.0f} us"
            f" ({delivered / n:.1f} events/comment)"
        )


async def bench_reads(args: argparse.Namespace) -> None:
    receiver = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is measured)
        [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True
    )
    emu = EmulatorThread(args.mode, password="admin")
    headers = {"Authorization": aiohttp.encode_basic_auth("admin", "admin")}
    rows: dict[str, list[tuple[int, float, float]]] = {}
    errors = 0
    try:
        assert receiver.stdout is not None
        hook = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/hook"
        state = emu.emu.state
        state.add_project("BENCH", components=["Core", "UI"], versions=["1.0"])
        admin = state.users["admin"]
        rng = random.Random(3)
        sem = asyncio.Semaphore(args.concurrency)

        async def one(session: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> None:
            nonlocal errors
            async with sem, session.request(method, url, json=body, headers=headers) as resp:
                await resp.read()
                errors += resp.status not in (200, 201)

        def new_issues(count: int) -> list[str]:
            site = Site(state)  # no event sink: the issues exist before the node writes comments
            out = []
            for n in range(count):
                fields = {
                    "project": {"key": "BENCH"},
                    "issuetype": {"name": "Task"},
                    "summary": f"Synced issue {n}",
                    "description": f"Customer report {n}.\n\nSteps: open the *settings* page.",
                    "labels": ["customer", "backend"],
                    "priority": {"name": "High"},
                }
                marker = [{"key": "tandem.marker", "value": {"marker": f"tandem:bench:{n}"}}]
                out.append(site.create_issue(admin, {"fields": fields, "properties": marker}, 2).id)
            return out

        async with aiohttp.ClientSession() as session:
            if not args.no_hook:  # the node's own subscription: its writes come back as events
                body = {"name": "bench", "url": hook, "events": list(SUBSCRIBED_EVENTS), "excludeBody": False}
                async with session.post(
                    f"{emu.url}/rest/webhooks/1.0/webhook", json=body, headers=headers
                ) as r:
                    assert r.status == 201, await r.text()
            for _ in range(3):
                ids = emu.call(asyncio.to_thread(new_issues, args.issues)).result()

                async def comments(iid: str) -> None:
                    for k in range(7):  # in order, as the node writes them
                        body = {
                            "body": f"Comment {k} on {iid}: it *still* fails, see [the log|https://example.com/{k}].",
                            "properties": [
                                {"key": "tandem.marker", "value": {"marker": f"tandem:{iid}.{k}"}}
                            ],
                        }
                        await one(session, "POST", f"{emu.url}/rest/api/2/issue/{iid}/comment", body)

                cpu0, wall0 = emu.cpu(), time.perf_counter()
                await asyncio.gather(*(comments(i) for i in ids))
                emu.call(emu.emu.drain_webhooks(600)).result()
                rows.setdefault("POST comment (+ its webhooks)", []).append(
                    (len(ids) * 7, emu.cpu() - cpu0, time.perf_counter() - wall0)
                )
                order = ids[:]
                rng.shuffle(order)
                searches = []
                for i in range(0, len(order), args.batch):
                    chunk = order[i : i + args.batch]
                    body = {
                        "jql": f"id in ({', '.join(chunk)})",
                        "maxResults": len(chunk),
                        "fields": ["*all"],
                        "properties": ["*all"],
                        "expand": ["names", "changelog"],
                        "startAt": 0,
                    }
                    searches.append(("POST", f"{emu.url}/rest/api/2/search", body))
                q = "startAt=0&maxResults=100&expand=properties&orderBy=created"
                reads = [("GET", f"{emu.url}/rest/api/2/issue/{i}/comment?{q}", None) for i in ids]
                for name, requests in (
                    (f"search v2 (id in, {args.batch}/search, *all)", searches),
                    ("GET issue/{id}/comment?expand=properties", reads),
                ):
                    cpu0, wall0 = emu.cpu(), time.perf_counter()
                    await asyncio.gather(*(one(session, *r) for r in requests))
                    rows.setdefault(name, []).append(
                        (len(requests), emu.cpu() - cpu0, time.perf_counter() - wall0)
                    )
    finally:
        emu.stop()
        receiver.terminate()
        receiver.wait(5)
    hooked = "no webhook" if args.no_hook else "one webhook (Tandem's events)"
    print(f"Jira emulator ({args.mode}), 3 rounds of {args.issues} new issues x 7 comments, {hooked}")
    print(f"{'operation':44} {'requests':>8} {'req/s':>8} {'emulator CPU us/request (3 rounds)':>36}")
    for name, runs in rows.items():
        shown = " / ".join(f"{cpu / n * 1e6:.0f}" for n, cpu, _ in runs)
        n = runs[0][0]
        print(f"{name:44} {n:8d} {n / statistics.median(w for _, _, w in runs):8.1f} {shown:>36}")
    per_issue = [sum(runs[r][1] for runs in rows.values()) / args.issues * 1e6 for r in range(3)]
    print(f"{'all of it, per issue':44} {'':8} {'':8} {' / '.join(f'{c:.0f}' for c in per_issue):>36}")
    if errors:
        print(f"errors: {errors}")


async def bench_pages(args: argparse.Namespace) -> None:
    """Node A's bulk listing: ``GET /rest/api/3/search/jql`` pages of 100 over a seeded site, with
    what ``JiraAdapter.search`` asks (``fields=*all``, ``expand=names,changelog``,
    ``properties=*all``); emulator-thread CPU per issue, three passes over the site (the first one
    builds the snapshots JQL evaluates)."""
    from scripts.bench import HUMAN, seed

    emu = EmulatorThread("cloud", password="admin")
    headers = {"Authorization": aiohttp.encode_basic_auth("admin", "admin")}
    passes: list[tuple[float, float]] = []
    try:
        state = emu.emu.state
        state.add_user(HUMAN[0], password=HUMAN[1], display_name="Jane Agent", email="jane@support.example")
        state.add_project("BLK", lead="admin", workflow="simple")
        emu.call(asyncio.to_thread(seed, emu.emu, "BLK", args.issues, 7)).result()
        params = {
            "jql": "project = BLK ORDER BY key ASC",
            "maxResults": "100",
            "fields": "*all",
            "expand": "names,changelog",
            "properties": "*all",
        }
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                token = None
                cpu0, wall0 = emu.cpu(), time.perf_counter()
                for _ in range(args.issues // 100 + 2):
                    query = {**params, "nextPageToken": token} if token else params
                    async with session.get(
                        f"{emu.url}/rest/api/3/search/jql", params=query, headers=headers
                    ) as r:
                        assert r.status == 200, await r.text()
                        page = await r.json()
                    token = page.get("nextPageToken")
                    if page.get("isLast"):
                        break
                passes.append((emu.cpu() - cpu0, time.perf_counter() - wall0))
    finally:
        emu.stop()
    print(f"Jira emulator (cloud), search/jql pages of 100 over {args.issues} issues x 7 comments")
    print(
        "emulator CPU per issue listed (3 passes): "
        + " / ".join(f"{c / args.issues * 1e6:.0f} us" for c, _ in passes)
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--issues", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--search-requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--mode", choices=["cloud", "server"], default="cloud")
    parser.add_argument("--webhooks", action="store_true", help="measure webhook delivery instead")
    parser.add_argument("--comments", type=int, default=3500, help="--webhooks: comments to add")
    parser.add_argument("--events", default="", help="--webhooks: comma-separated events (default: Tandem's)")
    parser.add_argument("--deliveries", type=int, default=0, help="measure the delivery client alone")
    parser.add_argument("--reads", action="store_true", help="measure node B's final reads instead")
    parser.add_argument("--batch", type=int, default=10, help="--reads: ids per search")
    parser.add_argument("--pages", action="store_true", help="measure node A's search/jql pages instead")
    parser.add_argument("--no-hook", action="store_true", help="--reads: no webhook registered")
    parser.add_argument(
        "--full-scan", action="store_true", help="searches scan every issue even when the query names them"
    )
    args = parser.parse_args()
    if args.deliveries:
        await bench_deliveries(args)
        return
    if args.webhooks:
        await bench_webhooks(args)
        return
    if args.reads:
        await bench_reads(args)
        return
    if args.pages:
        await bench_pages(args)
        return

    emu = JiraEmulator(mode=args.mode)
    t0 = time.perf_counter()
    populate(emu, args.issues)
    setup = time.perf_counter() - t0
    base = await emu.start()
    headers = {"Authorization": aiohttp.encode_basic_auth("admin", "admin")}
    rng = random.Random(2)
    keys = [f"BENCH-{rng.randint(1, args.issues)}" for _ in range(args.requests)]
    jql = quote('project = BENCH AND labels = urgent AND status = "In Progress" ORDER BY created DESC')
    # What the node's batched reads ask (JiraAdapter._search_ids): 50 issues named by id or key.
    by_ref = []
    for _ in range(args.search_requests):
        picked = rng.sample(range(1, args.issues + 1), min(50, args.issues))
        ids = [emu.state.keys[f"BENCH-{n}"] for n in picked[:25]]
        refs = ", ".join(f'"BENCH-{n}"' for n in picked[25:])
        by_ref.append(quote(f"id in ({', '.join(ids)}) OR key in ({refs})"))
    if args.full_scan:  # the emulator as it was: every search scans the site
        server_module.run_search = functools.partial(run_search, lookup=False)  # type: ignore[assignment]
    scenarios = [
        ("get issue (v2)", [f"{base}/rest/api/2/issue/{k}" for k in keys]),
        ("get issue (v3, expand=changelog)", [f"{base}/rest/api/3/issue/{k}?expand=changelog" for k in keys]),
        (
            "search v2 (JQL, 50/page)",
            [f"{base}/rest/api/2/search?jql={jql}&maxResults=50&fields=summary,status"]
            * args.search_requests,
        ),
        (
            "search/jql v3 (JQL, 50/page)",
            [f"{base}/rest/api/3/search/jql?jql={jql}&maxResults=50&fields=summary,status"]
            * args.search_requests,
        ),
        (
            "search v2 (50 ids/keys, 50/page)",
            [f"{base}/rest/api/2/search?jql={q}&maxResults=50&fields=summary,status" for q in by_ref],
        ),
        (
            "search/jql v3 (50 ids/keys, 50/page)",
            [f"{base}/rest/api/3/search/jql?jql={q}&maxResults=50&fields=summary,status" for q in by_ref],
        ),
    ]
    rows = []
    try:
        async with aiohttp.ClientSession() as session:
            await measure(session, scenarios[0][1][:50], args.concurrency, headers)  # warm-up
            for name, urls in scenarios:
                elapsed, lat, errors = await measure(session, urls, args.concurrency, headers)
                lat.sort()
                rows.append(
                    (
                        name,
                        len(urls),
                        len(urls) / elapsed,
                        statistics.median(lat) * 1000,
                        lat[int(len(lat) * 0.95) - 1] * 1000,
                        errors,
                    )
                )
    finally:
        await emu.stop()
    print(f"Jira emulator ({args.mode}), {args.issues} issues (setup {setup:.1f}s)", end="")
    print(f", concurrency {args.concurrency}")
    print(f"{'operation':36} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>6}")
    for name, n, rps, p50, p95, errors in rows:
        print(f"{name:36} {n:8d} {rps:8.1f} {p50:8.1f} {p95:8.1f} {errors:6d}")


if __name__ == "__main__":
    asyncio.run(main())
