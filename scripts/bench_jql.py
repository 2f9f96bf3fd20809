"""Benchmark the JQL engine: parse/compile time per query and evaluation time per issue.

    .venv/bin/python scripts/bench_jql.py [--issues 10000] [--repeat 3]

Builds synthetic IssueSnapshots (statuses, users, labels, text, custom fields, properties and a
short changelog each), then for a few representative queries prints: parse time (no cache),
compile time (parse + validation + closure building, no cache), evaluation time per issue (one
``matches`` call), the number of hits, and the time to sort the hits when the query has ORDER BY.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time

from node.jql import EvalContext
from node.jql.parser import _parse_cached
from node.jql.query import _compile
from node.trackers.base import ChangeItem, IssueSnapshot
from protocol.replica import Comment, StatusRef, UserRef
from protocol.richtext import from_plain_text

QUERIES = [
    "project = ABC AND status = Open",
    "assignee = currentUser() AND statusCategory != Done ORDER BY updated DESC",
    "labels in (ui, backend) OR priority > Medium ORDER BY priority DESC, key",
    'summary ~ "crash*" OR description ~ "\\"full screen\\""',
    "text ~ payment",
    'status WAS "In Progress" AFTER -7d',
    "status CHANGED FROM Open TO Done BY bob AFTER startOfMonth(-1M)",
    'updated >= -1w AND "Story Points" > 5 AND due < endOfWeek()',
    "issue.property[tandem.twin].connection = c1 AND resolution = Unresolved",
    "not (project in (ABC, XYZ) and assignee in membersOf(devs)) or cf[10020] = Critical",
]

WORDS = (
    "login crash payment screen full mode export report slow timeout error button page user api token "
    "invoice search filter sync mobile windows linux dashboard chart upload download"
).split()
STATUSES = [("Open", "new"), ("In Progress", "indeterminate"), ("Review", "indeterminate"), ("Done", "done")]
PRIORITIES = ["Lowest", "Low", "Medium", "High", "Highest"]


def make_issues(n: int, now: dt.datetime, seed: int = 1) -> list[IssueSnapshot]:
    rnd = random.Random(seed)
    users = [
        UserRef(account_id=f"acc-{u}", username=u, email=f"{u}@example.com", display_name=u.title())
        for u in ("alice", "bob", "carol", "dave", "erin", "frank")
    ]
    names = {"customfield_10016": "Story Points", "customfield_10020": "Severity"}
    out = []
    for i in range(1, n + 1):
        status, category = rnd.choice(STATUSES)
        created = now - dt.timedelta(days=rnd.randint(1, 400), minutes=rnd.randint(0, 1440))
        changelog = []
        t = created
        prev = "Open"
        for step in range(rnd.randint(0, 4)):
            t = t + dt.timedelta(hours=rnd.randint(1, 200))
            nxt = rnd.choice(STATUSES)[0]
            who = rnd.choice(users)
            changelog.append(ChangeItem(field="status", from_value=prev, to_value=nxt, at=t, author=who))
            prev = nxt
            if step == 0 and rnd.random() < 0.5:
                item = ChangeItem(field="assignee", from_value=None, to_value="Bob", at=t, author=users[0])
                changelog.append(item)
        due = (now + dt.timedelta(days=rnd.randint(-30, 30))).date() if rnd.random() < 0.5 else None
        props = {"tandem.twin": {"connection": rnd.choice(["c1", "c2"])}} if rnd.random() < 0.3 else {}
        out.append(
            IssueSnapshot(
                tracker="jira",
                id=str(10000 + i),
                key=f"{rnd.choice(['ABC', 'XYZ', 'OPS'])}-{i}",
                project=rnd.choice(["ABC", "XYZ", "OPS"]),
                summary=" ".join(rnd.choices(WORDS, k=6)),
                description=from_plain_text(" ".join(rnd.choices(WORDS, k=30))),
                status=StatusRef(name=status, category=category),  # type: ignore[arg-type]
                resolution="Fixed" if category == "done" else None,
                priority=rnd.choice(PRIORITIES),
                issue_type=rnd.choice(["Bug", "Task", "Story"]),
                labels=rnd.sample(["ui", "backend", "urgent", "docs", "infra"], k=rnd.randint(0, 2)),
                due_date=due,
                assignee=rnd.choice([*users, None]),
                reporter=rnd.choice(users),
                custom_fields={
                    "customfield_10016": rnd.choice([1, 2, 3, 5, 8, 13, None]),
                    "customfield_10020": rnd.choice([{"value": "Critical"}, {"value": "Minor"}, None]),
                },
                field_names=names,
                comments=[
                    Comment(id=str(c), body=from_plain_text(" ".join(rnd.choices(WORDS, k=12))))
                    for c in range(rnd.randint(0, 3))
                ],
                properties=props,
                created=created,
                updated=max(t, created) + dt.timedelta(hours=1),
                changelog=changelog,
            )
        )
    return out


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(text: str, issues: list[IssueSnapshot], now: dt.datetime, repeat: int) -> str:
    user = UserRef(account_id="acc-alice", username="alice")
    parse_s = best(lambda: [_parse_cached.__wrapped__(text) for _ in range(50)], repeat) / 50  # type: ignore[attr-defined]

    def compile_uncached() -> None:
        for _ in range(50):
            _parse_cached.cache_clear()
            _compile(text, None)

    compile_s = best(compile_uncached, repeat) / 50
    query = _compile(text, None)[0]
    hits: list[IssueSnapshot] = []

    def run() -> None:
        ctx = EvalContext(now=now, current_user=user, groups={"devs": {"bob", "carol"}})
        m = query.matches
        hits[:] = [s for s in issues if m(s, ctx)]

    eval_s = best(run, repeat) / len(issues)
    sort_ms = ""
    if query.order_by:
        ctx = EvalContext(now=now, current_user=user)
        sort_ms = f"{best(lambda: query.sort(hits, ctx), repeat) * 1000:.1f}"
    shown = text if len(text) <= 72 else text[:69] + "..."
    return (
        f"{shown:<72} {parse_s * 1e6:>9.0f} {compile_s * 1e6:>10.0f} {eval_s * 1e6:>13.2f} "
        f"{len(hits):>6} {sort_ms:>8}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--issues", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    now = dt.datetime(2024, 3, 15, 12, tzinfo=dt.UTC)
    t0 = time.perf_counter()
    issues = make_issues(args.issues, now)
    print(f"built {len(issues)} synthetic snapshots in {time.perf_counter() - t0:.1f} s\n")
    header = (
        f"{'query':<72} {'parse µs':>9} {'compile µs':>10} {'eval µs/issue':>13} {'hits':>6} {'sort ms':>8}"
    )
    print(header)
    print("-" * len(header))
    for text in QUERIES:
        print(measure(text, issues, now, args.repeat))


if __name__ == "__main__":
    main()
