"""Benchmark: end-to-end sync between two Jira emulators through two real `tandem run` nodes.

    .venv/bin/python scripts/bench.py [--issues 10000] [--comments 7] [--changes 200]

What runs where (all on 127.0.0.1, ports picked by the OS):

* this process: two in-process Jira emulators (A: Cloud, project SUP; B: Server, project ENG), a
  webhook receiver for B's emulator, and the driver;
* node A and node B: `tandem init --tracker …` + `tandem run` subprocesses, each beside its emulator,
  learning of changes the real way (the emulator's webhook → the node's intake → the sync engine).
  Reconciliation is off (``reconcile_seconds = 0``) so a periodic sweep does not blur the figures.

Phases:

1. **Latency**, for a public link (A and B both public) and a private, outbound-only link (B
  private, dialling A; B's tracker webhooks reach it on a webhook-only listener). ``--changes``
  changes are made one at a time as a person on A's emulator over its REST API (half creates in SUP,
  half summary edits of those already-twinned issues). The clock starts just before that REST call
  and stops when B's emulator delivers the matching ``jira:issue_created`` / ``jira:issue_updated``
  webhook to this process's receiver: so the figure includes A's webhook delivery and B's emulator
  webhook delivery (no polling; granularity is the event loop's, well under 1 ms).
2. **Bulk**: ``--issues`` issues with ``--comments`` comments each are seeded straight into A's
  emulator state (project BLK, no webhooks) and into its search snapshots (Jira indexes an issue
  as it is written), then ``POST /api/v1/bulk`` on node A (query ``project = BLK``) over the
  private link. Wall time runs from the request until every issue and comment is in B's emulator
  (checked in-process every 0.05 s). Tracker API calls are the sum of both
  emulators' ``/_emulator/stats`` totals over the phase (incl. what intake's polling reads), per
  issue. Peak RSS is each node's ``VmHWM`` from ``/proc/<pid>/status`` (whole run: latency + bulk);
  CPU seconds during the bulk come from ``/proc/<pid>/stat`` (both nodes, and this process, which
  runs both emulators).
3. **Baseline**: with the nodes stopped, a plain copier process (``scripts/bench.py _baseline``)
  copies the same issues from A to a fresh project in B with the fewest calls it can: search pages
  of 100 with the comments embedded (node A's own query, ``project = BLK``), ``POST issue/bulk`` by
  50, one ``POST comment`` per comment, 8 requests in flight. Its clock starts once the copier
  process is up (interpreter and imports ready), as the bulk's starts with node A running. Its table
  rows include the CPU seconds both emulators (this process) and the copier used: the emulators'
  share bounds what any copier, Tandem included, can reach. Both phases also show how much of the
  emulators' CPU went to their garbage collector (at 10,000 × 7 about a sixth in the bulk, a tenth
  to a sixth in the baseline: stop-the-world passes over the sites' heaps).

Not a test (``tests/bench`` only checks that a tiny run prints the table): run it by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:  # imported where used: the baseline copier process needs none of them
    from node.trackers.jira.emulator import JiraEmulator
    from tests.e2e.harness import Cluster, NodeProc

TOKEN = "bench-admin-token"
HUMAN = ("jane.agent", "jane-pw")
CHANGE_TIMEOUT = 15.0  # one change that has not arrived after this is counted as lost
BULK_TIMEOUT = 3600.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def vm_hwm_mb(pid: int) -> float:
    """Peak resident set size of a process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time a process (or one of its threads) has used so far
    (``/proc/<pid>/stat``, ``/proc/<pid>/task/<tid>/stat``), in seconds."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class GcClock:
    """CPU seconds this process (both emulators) spends in the garbage collector, and its full
    (oldest generation) collections: each stops both emulators at once. (A collection holds the
    GIL from start to stop, on the thread that triggered it: that thread's CPU clock times it.)"""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.thread_time()
            return
        self.seconds += time.thread_time() - self._start
        self.full += info["generation"] == 2

    def since(self, mark: tuple[float, int]) -> tuple[float, int]:
        return self.seconds - mark[0], self.full - mark[1]

    def mark(self) -> tuple[float, int]:
        return self.seconds, self.full


GC: GcClock  # made in main(): the copier process, which imports this module too, has none


def basic(user: str, password: str) -> str:
    return aiohttp.encode_basic_auth(user, password)


# -------------------------------------------------------------------------------------------------
# Sites


@dataclass
class Sites:
    a: JiraEmulator
    a_url: str
    b: JiraEmulator
    b_url: str
    arrivals: dict[str, asyncio.Future[float]] = field(default_factory=dict)
    receiver: web.AppRunner | None = None
    receiver_url: str = ""
    hook_id: str | None = None

    async def stats_total(self) -> int:
        total = 0
        async with aiohttp.ClientSession() as s:
            for url in (self.a_url, self.b_url):
                async with s.get(f"{url}/_emulator/stats") as resp:
                    total += int((await resp.json())["total"])
        return total

    async def close(self) -> None:
        if self.receiver is not None:
            await self.receiver.cleanup()
        await self.a.stop()
        await self.b.stop()


async def open_sites() -> Sites:
    from node.trackers.jira.emulator import JiraEmulator

    a = JiraEmulator(mode="cloud", user="admin", password=TOKEN, state_file=None)
    a_url = await a.start(host="127.0.0.1", port=0)
    a.state.add_user(HUMAN[0], password=HUMAN[1], display_name="Jane Agent", email="jane@support.example")
    a.state.add_project("SUP", lead="admin", workflow="simple")
    a.state.add_project("BLK", lead="admin", workflow="simple")
    b = JiraEmulator(mode="server", user="admin", password=TOKEN, state_file=None)
    b_url = await b.start(host="127.0.0.1", port=0)
    b.state.add_project("ENG", lead="admin", workflow="simple")
    b.state.add_project("BASE", lead="admin", workflow="simple")
    sites = Sites(a, a_url, b, b_url)

    async def hook(request: web.Request) -> web.Response:
        at = time.perf_counter()
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            body = json.loads(await request.read())
            summary = body["issue"]["fields"]["summary"]
            fut = sites.arrivals.get(summary)
            if fut is not None and not fut.done():
                fut.set_result(at)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    sites.receiver = web.AppRunner(app, access_log=None)
    await sites.receiver.setup()
    site = web.TCPSite(sites.receiver, "127.0.0.1", 0)
    await site.start()
    port = sites.receiver.addresses[0][1]
    sites.receiver_url = f"http://127.0.0.1:{port}/hook"
    return sites


async def register_receiver(sites: Sites) -> None:
    body = {
        "name": "bench",
        "url": sites.receiver_url,
        "events": ["jira:issue_created", "jira:issue_updated"],
    }
    async with (
        aiohttp.ClientSession(headers={"Authorization": basic("admin", TOKEN)}) as s,
        s.post(f"{sites.b_url}/rest/webhooks/1.0/webhook", json=body) as resp,
    ):
        assert resp.status in (200, 201), await resp.text()
        sites.hook_id = str((await resp.json())["self"]).rstrip("/").rsplit("/", 1)[-1]


async def unregister_receiver(sites: Sites) -> None:
    if sites.hook_id is None:
        return
    async with (
        aiohttp.ClientSession(headers={"Authorization": basic("admin", TOKEN)}) as s,
        s.delete(f"{sites.b_url}/rest/webhooks/1.0/webhook/{sites.hook_id}") as resp,
    ):
        assert resp.status in (200, 204), await resp.text()
    sites.hook_id = None


# -------------------------------------------------------------------------------------------------
# Nodes


APPLY_CONCURRENCY: int | None = None  # --apply-concurrency: sync.apply_concurrency of both nodes
TRACKER_CONNECTIONS: int | None = None  # --tracker-connections: tracker.connections of both nodes


async def start_node(cluster: Cluster, name: str, *, public: bool, tracker: list[str]) -> NodeProc:
    """``tandem init --tracker …`` then ``tandem run``, as an admin would (harness calls in a thread:
    the emulators share this event loop)."""
    from tests.e2e.harness import NodeProc, free_port

    home = cluster.tmp / name.lower()
    node = NodeProc(home, name)
    args = ["init", "--name", name, "--admin-listen", "127.0.0.1:0", *tracker]
    extra: dict[str, Any] = {"reconcile_seconds": 0}
    if public:
        port = free_port()
        args += ["--listen", f"127.0.0.1:{port}", "--public-url", f"http://127.0.0.1:{port}"]
    else:
        args += ["--private"]
        extra["webhook_listen"] = "127.0.0.1:0"
    await asyncio.to_thread(node.cli, *args)
    sections: dict[str, dict[str, Any]] = {
        "links": {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.5, "accept_wait_seconds": 10},
        "tracker": extra,
    }
    if APPLY_CONCURRENCY is not None:
        sections["sync"] = {"apply_concurrency": APPLY_CONCURRENCY}
    if TRACKER_CONNECTIONS is not None:
        extra["connections"] = TRACKER_CONNECTIONS
    node.configure(**sections)
    cluster.nodes.append(node)
    with contextlib.suppress(AssertionError):  # the harness may look for the log line before it is written
        await asyncio.to_thread(node.start)
    await wait_until(
        lambda: asyncio.sleep(0, "ready: admin" in node.log.read_text()), 30, f"node {name} to be ready"
    )
    return node


def tracker_args(kind: str, url: str, user: str, project: str) -> list[str]:
    return [
        "--tracker",
        kind,
        "--tracker-url",
        url,
        "--tracker-user",
        user,
        "--tracker-token",
        TOKEN,
        "--tracker-project",
        project,
    ]


async def api(node: NodeProc, method: str, path: str, body: Any = None) -> Any:
    return await asyncio.to_thread(node.ok, method, path, body)


async def wait_until(
    check: Callable[[], Awaitable[Any]], within: float, what: str, every: float = 0.05
) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(every)


async def pair(sites: Sites, cluster: Cluster, *, b_public: bool) -> tuple[NodeProc, NodeProc]:
    a = await start_node(
        cluster, "A", public=True, tracker=tracker_args("jira-cloud", sites.a_url, "admin@example.com", "SUP")
    )
    b = await start_node(
        cluster, "B", public=b_public, tracker=tracker_args("jira-server", sites.b_url, "admin", "ENG")
    )
    code = (await api(a, "POST", "/api/v1/invitations", {"name": "to-b", "project": "SUP"}))["code"]
    accepted = await api(
        b, "POST", "/api/v1/invitations/accept", {"code": code, "name": "to-a", "project": "ENG"}
    )
    assert accepted["paired"], accepted

    async def active() -> bool:
        conn = await api(a, "GET", "/api/v1/connections/to-b")
        return bool(conn["state"] == "active")

    await wait_until(active, 30, "the link to become active")
    for node, emu in ((a, sites.a), (b, sites.b)):

        async def ready(node: NodeProc = node, emu: JiraEmulator = emu) -> bool:
            ok = await asyncio.to_thread(node.metric, "tandem_tracker_state", state="ok")
            return ok == 1.0 and len(emu.state.webhooks) > 0  # credentials checked, webhook registered

        await wait_until(ready, 30, f"node {node.name} to reach its tracker and register its webhook")
    await api(
        a, "POST", "/api/v1/triggers", {"connection": "to-b", "query": "project = SUP", "note": "bench"}
    )
    return a, b


# -------------------------------------------------------------------------------------------------
# Phase 1: latency


async def latency(sites: Sites, changes: int) -> tuple[list[float], int, str]:
    """Make ``changes`` changes on A one at a time; returns (latencies in ms, lost, mix)."""
    await register_receiver(sites)
    creates = max(1, changes // 2)
    keys: list[str] = []
    lost = 0
    out: list[float] = []
    run = f"{time.time_ns():x}"
    async with aiohttp.ClientSession(base_url=sites.a_url, headers={"Authorization": basic(*HUMAN)}) as s:
        for n in range(changes):
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[float] = loop.create_future()
            if n < creates:
                summary = f"bench {run} create {n}"
                sites.arrivals[summary] = fut
                body: dict[str, Any] = {
                    "fields": {"project": {"key": "SUP"}, "issuetype": {"name": "Task"}, "summary": summary}
                }
                t0 = time.perf_counter()
                async with s.post("/rest/api/2/issue", json=body) as resp:
                    assert resp.status == 201, await resp.text()
                    keys.append(str((await resp.json())["key"]))
            else:
                summary = f"bench {run} edit {n}"
                sites.arrivals[summary] = fut
                key = keys[n % len(keys)]
                t0 = time.perf_counter()
                async with s.put(f"/rest/api/2/issue/{key}", json={"fields": {"summary": summary}}) as resp:
                    assert resp.status == 204, await resp.text()
            try:
                arrived = await asyncio.wait_for(fut, CHANGE_TIMEOUT)
                out.append((arrived - t0) * 1000)
            except TimeoutError:
                lost += 1
            sites.arrivals.pop(summary, None)
    await unregister_receiver(sites)
    return out, lost, f"{creates} creates + {changes - creates} summary edits"


# -------------------------------------------------------------------------------------------------
# Phase 2: bulk


def issue_fields(project: str, n: int, summary: str = "bulk issue") -> dict[str, Any]:
    """The REST v2 ``fields`` of the n-th seeded issue (also used by scripts/bench_adapter.py)."""
    return {
        "project": {"key": project},
        "issuetype": {"name": ("Task", "Bug", "Story")[n % 3]},
        "summary": f"{summary} {n}",
        "description": f"Customer report {n}.\n\nSteps: open the *settings* page, press {{{{Save}}}}.",
        "labels": ["customer", ("backend", "frontend")[n % 2]],
        "priority": {"name": ("High", "Medium", "Low")[n % 3]},
    }


def seed(emu: JiraEmulator, project: str, issues: int, comments: int) -> None:
    """Issues and comments straight into the state (as the person Jane; no webhooks), and into the
    emulator's search index."""
    from node.trackers.jira.emulator.ops import Site

    state = emu.state
    site = Site(state)
    jane = state.users[HUMAN[0]] if HUMAN[0] in state.users else state.find_user(name=HUMAN[0])
    assert jane is not None
    for n in range(issues):
        issue = site.create_issue(jane, {"fields": issue_fields(project, n)}, 2)
        for k in range(comments):
            site.add_comment(jane, issue, {"body": f"Comment {k} on issue {n}: it still fails."}, 2)
    # Jira indexes an issue as it is written; the emulator builds its search snapshots on the first
    # search instead. Build them here, so the bulk (the first to search these issues) does not pay a
    # one-off ~1.6 s at 10,000 issues that the baseline, run later on the same issues, would not.
    for issue in state.issues.values():
        emu.app.cache.get(issue)


class Copied:
    """Counts the issues of ``project`` (summary starting with ``prefix``) that have all their
    comments, looking only at issues created since the last look and those still incomplete: the
    check runs every 0.05 s inside the emulators' process, so a full scan of a large site each time
    would load the emulators (and the figures) with the driver's work."""

    def __init__(self, emu: JiraEmulator, project: str, prefix: str, comments: int) -> None:
        self.emu, self.project, self.prefix, self.comments = emu, project, prefix, comments
        self.seen = 0  # issues looked at so far (the state keeps creation order; the bench deletes none)
        self.waiting: list[Any] = []  # ours, not complete yet
        self.done = 0

    def __call__(self) -> int:
        new = list(self.emu.state.issues.values())[self.seen :]
        self.seen += len(new)
        mine = [i for i in new if i.project == self.project and i.summary.startswith(self.prefix)]
        still = []
        for issue in [*self.waiting, *mine]:
            if len(issue.comments) >= self.comments:
                self.done += 1
            else:
                still.append(issue)
        self.waiting = still
        return self.done


@dataclass
class BulkResult:
    seconds: float
    calls: int
    rss_a: float
    rss_b: float
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds used during the bulk, by process
    # B's emulator webhooks during the bulk (node B's own writes coming back): delivered, dropped
    echoes: tuple[int, int] = (0, 0)
    gc: tuple[float, int] = (0.0, 0)  # the emulators' process in its garbage collector: seconds, full ones


async def spy_on(profile: Path | None, phase: str, pids: dict[str, int]) -> list[asyncio.subprocess.Process]:
    """py-spy (raw stacks, 50 Hz) on each of ``pids`` until :func:`stop_spies`: ``profile/PHASE-NAME.txt``."""
    if profile is None:
        return []
    os.makedirs(profile, exist_ok=True)
    spies = []
    for name, pid in pids.items():
        spies.append(
            await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--format",
                "raw",
                "--nonblocking",
                "-r",
                "50",
                "-d",
                str(int(BULK_TIMEOUT)),
                "-o",
                str(profile / f"{phase}-{name}.txt"),
                "--pid",
                str(pid),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    await asyncio.sleep(0.5)  # py-spy attaches before the phase starts
    return spies


async def stop_spies(spies: list[asyncio.subprocess.Process]) -> None:
    """Stop each py-spy as Ctrl-C does: it writes its stacks and exits."""
    for spy in spies:
        if spy.returncode is None:
            spy.send_signal(signal.SIGINT)
    for spy in spies:
        await spy.wait()


async def bulk(
    sites: Sites, a: NodeProc, b: NodeProc, issues: int, comments: int, profile: Path | None = None
) -> BulkResult:
    before = await sites.stats_total()
    assert a.proc is not None and b.proc is not None
    pids = {"node A": a.proc.pid, "node B": b.proc.pid, "emulators + driver": os.getpid()}
    spies = await spy_on(
        profile, "bulk", {"node-a": a.proc.pid, "node-b": b.proc.pid, "emulators": os.getpid()}
    )
    hooks = sites.b.app.dispatcher.stats
    hooks0 = (hooks.delivered, hooks.dropped)
    gc0 = GC.mark()
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    t0 = time.perf_counter()
    job = await api(a, "POST", "/api/v1/bulk", {"connection": "to-b", "query": "project = BLK"})

    copied = Copied(sites.b, "ENG", "bulk issue ", comments)

    checked = time.monotonic()

    async def progress() -> bool:
        nonlocal checked
        if copied() >= issues:  # (incremental: only issues new since the last look, see Copied)
            return True
        if time.monotonic() - checked > 0.5:  # node A's answer costs its CPU: not at every look
            checked = time.monotonic()
            state = (await api(a, "GET", f"/api/v1/bulk/{job['id']}"))["state"]
            if state not in ("running", "done"):
                raise RuntimeError(f"bulk job ended {state}")
        return False

    # every 0.05 s: the bulk's end is known within that
    await wait_until(progress, BULK_TIMEOUT, "the bulk sync")
    seconds = time.perf_counter() - t0
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    echoes = (hooks.delivered - hooks0[0], hooks.dropped - hooks0[1])
    collected = GC.since(gc0)
    calls = await sites.stats_total() - before
    await stop_spies(spies)
    if profile is not None:  # the routes each emulator served (whole run)
        async with aiohttp.ClientSession() as s:
            for side, url in (("a", sites.a_url), ("b", sites.b_url)):
                async with s.get(f"{url}/_emulator/stats") as resp:
                    (profile / f"routes-{side}.json").write_text(json.dumps(await resp.json(), indent=1))
    return BulkResult(seconds, calls, vm_hwm_mb(a.proc.pid), vm_hwm_mb(b.proc.pid), cpu, echoes, collected)


# -------------------------------------------------------------------------------------------------
# Phase 3: baseline (a separate process, like the nodes)


async def baseline_copy(src: str, dst: str, project: str, into: str, concurrency: int) -> int:
    """Copy every issue of ``project`` at ``src`` into ``into`` at ``dst``; returns issues copied."""
    auth = {"Authorization": basic("admin", TOKEN)}
    sem = asyncio.Semaphore(concurrency)
    copied_n = 0
    async with aiohttp.ClientSession(headers=auth, connector=aiohttp.TCPConnector(limit=concurrency)) as s:

        async def call(method: str, url: str, **kw: Any) -> Any:
            async with sem, s.request(method, url, **kw) as resp:
                assert resp.status < 300, (resp.status, await resp.text())
                return await resp.json()

        async def copy_batch(batch: list[dict[str, Any]]) -> None:
            updates = [
                {
                    "fields": {
                        "project": {"key": into},
                        "issuetype": {"name": i["fields"]["issuetype"]["name"]},
                        "summary": i["fields"]["summary"],
                        "description": i["fields"].get("description"),
                        "labels": i["fields"].get("labels") or [],
                        "priority": {"name": i["fields"]["priority"]["name"]},
                    }
                }
                for i in batch
            ]
            made = (await call("POST", f"{dst}/rest/api/2/issue/bulk", json={"issueUpdates": updates}))[
                "issues"
            ]
            await asyncio.gather(
                *(
                    call("POST", f"{dst}/rest/api/2/issue/{new['key']}/comment", json={"body": c["body"]})
                    for old, new in zip(batch, made, strict=True)
                    for c in old["fields"]["comment"]["comments"]
                )
            )

        start = 0
        pending: list[asyncio.Task[None]] = []
        fields = "summary,description,issuetype,priority,labels,comment"
        while True:
            page = await call(
                "GET",
                f"{src}/rest/api/2/search",
                params={
                    # node A's bulk query: the emulator orders it newest first, cheaper than by key
                    "jql": f"project = {project}",
                    "startAt": start,
                    "maxResults": 100,
                    "fields": fields,
                },
            )
            found = page["issues"]
            for i in range(0, len(found), 50):
                pending.append(asyncio.create_task(copy_batch(found[i : i + 50])))
            copied_n += len(found)
            start += len(found)
            if not found or start >= page["total"]:
                break
            if len(pending) > 4:  # bounded look-ahead: at most a few pages in memory
                await pending.pop(0)
        await asyncio.gather(*pending)
    return copied_n


async def baseline(
    sites: Sites, issues: int, comments: int, profile: Path | None = None
) -> tuple[float, int, float, float, tuple[float, int]]:
    """Wall seconds, API calls, CPU seconds of this process (both emulators) and of the copier, and
    this process's garbage collection (seconds, full collections)."""
    before = await sites.stats_total()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "_baseline",
        sites.a_url,
        sites.b_url,
        "BLK",
        "BASE",
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    spies: list[asyncio.subprocess.Process] = []
    try:
        # The clock starts once the copier has started and imported what it needs (as the bulk's
        # starts with node A running) and stops at its "done" (as the bulk's at the last comment):
        # its CPU figure is what it used in between.
        ready = (await asyncio.wait_for(proc.stdout.readline(), 60)).split()
        assert ready[:1] == [b"ready"], f"the baseline copier did not start: {ready!r}"
        spies += await spy_on(profile, "baseline", {"copier": proc.pid, "emulators": os.getpid()})
        gc0 = GC.mark()
        cpu0 = cpu_seconds(os.getpid())
        t0 = time.perf_counter()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        done = (await asyncio.wait_for(proc.stdout.readline(), BULK_TIMEOUT)).split()
        seconds = time.perf_counter() - t0
        cpu = cpu_seconds(os.getpid()) - cpu0
        collected = GC.since(gc0)
        rc = await proc.wait()
    finally:
        await stop_spies(spies)
        if proc.returncode is None:  # the driver failed: the copier must not go on alone
            proc.kill()
            await proc.wait()
    assert rc == 0 and done[:1] == [b"done"], f"the baseline copier failed ({rc}, {done!r})"
    copied = Copied(sites.b, "BASE", "bulk issue ", comments)
    await wait_until(lambda: asyncio.sleep(0, copied() >= issues), 60, "the baseline copy")
    copier = float(done[1]) - float(ready[1])
    return seconds, await sites.stats_total() - before, cpu, copier, collected


# -------------------------------------------------------------------------------------------------


async def scenario(
    tmp: Path, sites: Sites, *, b_public: bool, changes: int
) -> tuple[tuple[list[float], int, str], Cluster, NodeProc, NodeProc]:
    from tests.e2e.harness import Cluster

    cluster = Cluster(tmp / ("public" if b_public else "private"))
    cluster.tmp.mkdir()
    a, b = await pair(sites, cluster, b_public=b_public)
    return await latency(sites, changes), cluster, a, b


async def run(args: argparse.Namespace) -> None:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tandem-bench-") as tmp:
        sites = await open_sites()
        clusters: list[Cluster] = []
        try:
            lat, cluster, _, _ = await scenario(Path(tmp), sites, b_public=True, changes=args.changes)
            clusters.append(cluster)
            results["public"] = lat
            note(f"public link: p50 {statistics.median(lat[0]) if lat[0] else float('nan'):.1f} ms")
            await asyncio.to_thread(cluster.close)
            sites.b.state.webhooks.clear()  # the stopped node's registration
            lat, cluster, a, b = await scenario(Path(tmp), sites, b_public=False, changes=args.changes)
            clusters.append(cluster)
            results["private"] = lat
            note(f"private link: p50 {statistics.median(lat[0]) if lat[0] else float('nan'):.1f} ms")
            t0 = time.perf_counter()
            seed(sites.a, "BLK", args.issues, args.comments)
            results["seed"] = time.perf_counter() - t0
            results["bulk"] = await bulk(sites, a, b, args.issues, args.comments, args.profile)
            note(f"bulk: {results['bulk']}")
            await asyncio.to_thread(cluster.close)
            sites.b.state.webhooks.clear()
            sites.a.state.webhooks.clear()
            results["baseline"] = await baseline(sites, args.issues, args.comments, args.profile)
        finally:
            for c in clusters:
                await asyncio.to_thread(c.close)
            await sites.close()
    report(args, results)


def note(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def report(args: argparse.Namespace, r: dict[str, Any]) -> None:
    print(
        f"\nTandem sync benchmark ({os.cpu_count()} CPUs): {args.changes} changes per link; bulk of "
        f"{args.issues} issues × {args.comments} comments"
        + (f"; sync.apply_concurrency = {args.apply_concurrency}" if args.apply_concurrency else "")
        + (f"; tracker.connections = {args.tracker_connections}" if args.tracker_connections else "")
        + "\n"
    )
    header = (
        f"{'latency A → B (webhook in, webhook out)':44} {'n':>5} {'lost':>5} {'p50 ms':>8} {'p99 ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, label in (("public", "public link (B public)"), ("private", "private link (B dials A)")):
        values, lost, _mix = r[name]
        p50 = statistics.median(values) if values else float("nan")
        print(f"{label:44} {len(values):5d} {lost:5d} {p50:8.1f} {pct(values, 0.99):8.1f}")
    print(f"  changes: {r['public'][2]}, through the real intake (emulator webhook → node)\n")
    bulk_r: BulkResult = r["bulk"]
    base_s, base_calls, base_cpu, base_copier, base_gc = r["baseline"]
    n = args.issues
    header = f"{'bulk A → B (private link)':44} {'value':>12}"
    print(header)
    print("-" * len(header))
    rows = [
        ("wall time (s)", f"{bulk_r.seconds:.1f}"),
        ("issues/s", f"{n / bulk_r.seconds:.1f}"),
        ("tracker API calls per issue (A + B)", f"{bulk_r.calls / n:.1f}"),
        ("peak RSS node A (MB, VmHWM)", f"{bulk_r.rss_a:.0f}"),
        ("peak RSS node B (MB, VmHWM)", f"{bulk_r.rss_b:.0f}"),
        *((f"CPU during the bulk: {name} (s)", f"{sec:.1f}") for name, sec in bulk_r.cpu.items()),
        ("  of which garbage collection (s, full ones)", f"{bulk_r.gc[0]:.1f}, {bulk_r.gc[1]}"),
        ("B's echo webhooks: delivered / dropped", f"{bulk_r.echoes[0]} / {bulk_r.echoes[1]}"),
        ("baseline copy: wall time (s)", f"{base_s:.1f}"),
        ("baseline copy: API calls per issue", f"{base_calls / n:.1f}"),
        ("CPU during the baseline: emulators (s)", f"{base_cpu:.1f}"),
        ("  of which garbage collection (s, full ones)", f"{base_gc[0]:.1f}, {base_gc[1]}"),
        ("CPU during the baseline: copier (s)", f"{base_copier:.1f}"),
        ("ratio bulk / baseline (wall time)", f"{bulk_r.seconds / base_s:.2f}"),
    ]
    for label, value in rows:
        print(f"{label:44} {value:>12}")
    print(f"\n(seeding A's emulator in-process took {r['seed']:.1f}s, not counted)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_baseline":  # the copier: "ready", wait for "go", copy
        src, dst, project, into = sys.argv[2:6]
        print("ready", time.process_time(), flush=True)
        if sys.stdin.readline().strip() != "go":  # the driver went away: copy nothing
            sys.exit(1)
        asyncio.run(baseline_copy(src, dst, project, into, concurrency=8))
        print("done", time.process_time(), flush=True)
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--issues", type=int, default=10_000, help="issues in the bulk sync")
    parser.add_argument("--comments", type=int, default=7, help="comments per bulk issue")
    parser.add_argument("--changes", type=int, default=200, help="changes per link in the latency runs")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy every process through the bulk and the baseline (raw stacks, one file each)",
    )
    parser.add_argument(
        "--apply-concurrency",
        type=int,
        default=None,
        help="sync.apply_concurrency of both nodes (default: the node's own default)",
    )
    parser.add_argument(
        "--tracker-connections",
        type=int,
        default=None,
        help="tracker.connections of both nodes (default: the node's own default)",
    )
    args = parser.parse_args()
    global APPLY_CONCURRENCY, TRACKER_CONNECTIONS, GC
    GC = GcClock()
    APPLY_CONCURRENCY = args.apply_concurrency
    TRACKER_CONNECTIONS = args.tracker_connections
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
