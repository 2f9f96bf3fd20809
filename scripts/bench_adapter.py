"""Benchmark: what the Jira adapter costs per issue, one at a time vs batched.

    .venv/bin/python scripts/bench_adapter.py [--issues 300] [--comments 7] [--mode cloud|server|both]

An in-process Jira emulator runs on its own thread (own event loop, 127.0.0.1, port from the OS);
the adapter runs on the main thread, so ``time.thread_time()`` of each thread splits the CPU
between the adapter (client side: our cost) and the emulator. Calls are the emulator's own
``/_emulator/stats`` counts. Seeded issues have ``--comments`` comments each, written by a person
("human") or by the proxy user with Tandem markers ("own", what a node reads back after it applied
a replica).

Rows:

* ``get_issue ×N`` (8 in flight, like the default ``get_issues``) vs ``get_issues`` (one call);
* ``create_issue_ref ×N`` (8 in flight) vs ``create_issues_ref``;
* ``search`` pages of 100 with full snapshots vs ``search_keys`` + ``get_issue`` per issue;
* node B's apply: ``add_comment`` (``--comments`` per issue, with markers) then ``get_issues`` of
  those issues (the final read, which the adapter's memo of written comment properties serves);
* ``client.request POST comment`` (``--comments`` per issue): the client's own CPU per request.

Not a test: run it by hand; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from node.trackers.base import IssueUpdate  # noqa: E402
from node.trackers.jira import JiraAdapter  # noqa: E402
from node.trackers.jira.emulator import JiraEmulator  # noqa: E402
from node.trackers.jira.emulator.ops import Site  # noqa: E402
from node.trackers.jira.markup import to_native  # noqa: E402
from protocol.richtext import from_plain_text  # noqa: E402
from scripts.bench import issue_fields  # noqa: E402

TOKEN = "bench-token"
HUMAN = ("jane.human", "jane-token")


class EmulatorThread:
    """A Jira emulator serving from its own thread and event loop (its CPU is that thread's)."""

    def __init__(self, mode: str, password: str = TOKEN) -> None:
        self.mode, self.password = mode, password
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"emulator-{mode}", daemon=True)
        self.thread.start()
        self.emu: JiraEmulator = self.call(self._make()).result()
        self.url: str = self.call(self.emu.start(host="127.0.0.1", port=0)).result()

    async def _make(self) -> JiraEmulator:
        return JiraEmulator(mode=self.mode, user="admin", password=self.password, state_file=None)

    def call(self, coro: Awaitable[Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    async def _cpu(self) -> float:
        return time.thread_time()

    def cpu(self) -> float:
        return float(self.call(self._cpu()).result())

    def stop(self) -> None:
        self.call(self.emu.stop()).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def seed(emu: JiraEmulator, project: str, issues: int, comments: int, *, own: bool) -> list[str]:
    """Issues and comments straight into the state (no webhooks); returns the issue ids."""
    state = emu.state
    site = Site(state)
    jane = state.find_user(name=HUMAN[0])
    admin = state.find_user(name="admin")
    assert jane is not None and admin is not None
    author = admin if own else jane
    ids = []
    for n in range(issues):
        body: dict[str, Any] = {"fields": issue_fields(project, n, "bench issue")}
        if own:
            body["properties"] = [{"key": "tandem.marker", "value": {"marker": f"tandem:bench:{n}"}}]
        issue = site.create_issue(author, body, 2)
        for k in range(comments):
            spec: dict[str, Any] = {"body": f"Comment {k} on issue {n}: it still fails."}
            if own:
                spec["properties"] = [{"key": "tandem.marker", "value": {"marker": f"tandem:bench:{n}.{k}"}}]
            site.add_comment(author, issue, spec, 2)
        ids.append(issue.id)
    return ids


@dataclass
class Row:
    mode: str
    what: str
    issues: int
    calls: int
    wall: float
    cpu_adapter: float
    cpu_emulator: float

    def cells(self) -> list[str]:
        n = max(1, self.issues)
        return [
            self.mode,
            self.what,
            str(self.issues),
            f"{self.calls / n:.2f}",
            f"{self.wall / n * 1000:.2f}",
            f"{self.cpu_adapter / n * 1000:.2f}",
            f"{self.cpu_emulator / n * 1000:.2f}",
        ]


async def stats_total(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/_emulator/stats") as resp:
        return int((await resp.json())["total"])


async def measure(
    emu: EmulatorThread, mode: str, what: str, issues: int, run: Callable[[], Awaitable[object]]
) -> Row:
    async with aiohttp.ClientSession() as session:
        calls0 = await stats_total(session, emu.url)
        emu0, cpu0, wall0 = emu.cpu(), time.thread_time(), time.perf_counter()
        await run()
        wall, cpu, emu1 = time.perf_counter() - wall0, time.thread_time() - cpu0, emu.cpu()
        calls = await stats_total(session, emu.url) - calls0
    return Row(mode, what, issues, calls, wall, cpu, emu1 - emu0)


async def gather_limited(coros: list[Awaitable[object]], limit: int = 8) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(c: Awaitable[object]) -> None:
        async with gate:
            await c

    await asyncio.gather(*(one(c) for c in coros))


async def bench_mode(mode: str, issues: int, comments: int) -> list[Row]:
    emu = EmulatorThread(mode)
    rows: list[Row] = []
    try:
        state = emu.emu.state
        state.add_user(HUMAN[0], password=HUMAN[1], display_name="Jane Human", email="jane@example.com")
        for key in ("HUM", "OWN", "NEW", "NEWB", "NEWW"):
            state.add_project(key, lead="admin", workflow="simple")
        human_ids = emu.call(asyncio.sleep(0, seed(emu.emu, "HUM", issues, comments, own=False))).result()
        own_ids = emu.call(asyncio.sleep(0, seed(emu.emu, "OWN", issues, comments, own=True))).result()
        login = "admin@example.com" if mode == "cloud" else "admin"
        adapter = JiraAdapter(emu.url, deployment=mode, user=login, token=TOKEN)  # type: ignore[arg-type]
        try:
            await adapter.check()
            await adapter.fields()
            for label, ids in (("human", human_ids), ("own", own_ids)):
                rows.append(
                    await measure(
                        emu,
                        mode,
                        f"get_issue ×N ({label})",
                        issues,
                        lambda ids=ids: gather_limited([adapter.get_issue(i) for i in ids]),
                    )
                )
                rows.append(
                    await measure(
                        emu, mode, f"get_issues ({label})", issues, lambda ids=ids: adapter.get_issues(ids)
                    )
                )

            def update(n: int) -> IssueUpdate:
                return IssueUpdate(
                    summary=f"created {n}",
                    description=from_plain_text(f"Body {n}"),
                    labels=["bench"],
                    priority="High",
                )

            rows.append(
                await measure(
                    emu,
                    mode,
                    "create_issue_ref ×N",
                    issues,
                    lambda: gather_limited(
                        [adapter.create_issue_ref("NEW", update(n), marker=f"m:{n}") for n in range(issues)]
                    ),
                )
            )
            rows.append(
                await measure(
                    emu,
                    mode,
                    "create_issues_ref",
                    issues,
                    lambda: adapter.create_issues_ref(
                        "NEWB", [(update(n), f"mb:{n}") for n in range(issues)]
                    ),
                )
            )

            # What node B does per synced issue: bulk-create, add comments with markers, read back.
            written = await adapter.create_issues_ref("NEWW", [(update(n), f"mw:{n}") for n in range(issues)])
            keys = [w.key for w in written if not isinstance(w, Exception)]
            rows.append(
                await measure(
                    emu,
                    mode,
                    "add_comment ×N×C (marker)",
                    issues,
                    lambda: gather_limited(
                        [
                            adapter.add_comment(
                                k, from_plain_text(f"Comment {c} on {k}."), marker=f"mw:{k}.{c}"
                            )
                            for k in keys
                            for c in range(comments)
                        ]
                    ),
                )
            )
            # a running node has checked once that the site keeps comment properties (one read)
            await adapter.get_issues([w.id for w in written[:1] if not isinstance(w, Exception)])
            rows.append(
                await measure(
                    emu,
                    mode,
                    "get_issues (own, just written)",
                    issues,
                    lambda: adapter.get_issues([w.id for w in written if not isinstance(w, Exception)]),
                )
            )
            text = from_plain_text("A plain comment, as a copier posts it.")
            body = {"body": to_native(text, adapter.text_format)}
            rows.append(
                await measure(
                    emu,
                    mode,
                    "client.request POST comment ×N×C",
                    issues,
                    lambda: gather_limited(
                        [
                            adapter.client.request("POST", f"issue/{k}/comment", json_body=body)
                            for k in keys
                            for _ in range(comments)
                        ]
                    ),
                )
            )

            async def search_full() -> None:
                token: str | None = None
                for _ in range(10_000):
                    page = await adapter.search(
                        'project = "HUM" ORDER BY created ASC', page_token=token, page_size=100
                    )
                    token = page.next_page_token
                    if token is None:
                        break

            async def search_keys_then_get() -> None:
                token: str | None = None
                for _ in range(10_000):
                    keys, token = await adapter.search_keys(
                        'project = "HUM" ORDER BY created ASC', page_token=token, page_size=100
                    )
                    await gather_limited([adapter.get_issue(k) for k in keys])
                    if token is None:
                        break

            rows.append(await measure(emu, mode, "search_keys + get_issue", issues, search_keys_then_get))
            rows.append(await measure(emu, mode, "search (pages of 100)", issues, search_full))
        finally:
            await adapter.close()
    finally:
        emu.stop()
    return rows


def table(rows: list[Row]) -> str:
    head = [
        "mode",
        "what",
        "issues",
        "calls/issue",
        "wall ms/issue",
        "adapter CPU ms/issue",
        "emulator CPU ms/issue",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    modes = ["cloud", "server"] if args.mode == "both" else [args.mode]
    rows: list[Row] = []
    for mode in modes:
        rows += await bench_mode(mode, args.issues, args.comments)
    print(f"{args.issues} issues × {args.comments} comments")
    print(table(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--issues", type=int, default=300)
    parser.add_argument("--comments", type=int, default=7)
    parser.add_argument("--mode", choices=("cloud", "server", "both"), default="both")
    asyncio.run(main(parser.parse_args()))
