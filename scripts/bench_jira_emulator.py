"""Requests per second of the Jira emulator: get-issue and JQL search over ~5,000 issues.

    .venv/bin/python scripts/bench_jira_emulator.py [--issues 5000] [--requests 2000] [--concurrency 16]

Issues are created through the emulator's own rules (so they carry history like API-created ones),
then an aiohttp client with a bounded number of in-flight requests measures each operation.
Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.trackers.jira.emulator import JiraEmulator
from node.trackers.jira.emulator.ops import Site


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--issues", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--search-requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--mode", choices=["cloud", "server"], default="cloud")
    args = parser.parse_args()

    emu = JiraEmulator(mode=args.mode)
    t0 = time.perf_counter()
    populate(emu, args.issues)
    setup = time.perf_counter() - t0
    base = await emu.start()
    headers = {"Authorization": aiohttp.encode_basic_auth("admin", "admin")}
    rng = random.Random(2)
    keys = [f"BENCH-{rng.randint(1, args.issues)}" for _ in range(args.requests)]
    jql = quote('project = BENCH AND labels = urgent AND status = "In Progress" ORDER BY created DESC')
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
