"""Node hot paths micro benchmark: the CPU one synced issue costs in rules, rich text and the link.

    .venv/bin/python scripts/bench_hotpaths.py [--seconds 1]

One issue shaped like ``scripts/bench.py``'s bulk (Jira Cloud on A: ADF description with a strong
mark and a code span, 7 one-paragraph comments, the raw REST issue kept in the snapshot; Jira
Server on B, ``tracker="jira"`` on both sides) goes through what each node runs per issue:

* A: reading each ADF comment (``from_adf``), Basic outgoing rules
  (``CompiledRules.outgoing_result``), the replica message encoded and sealed by a ``Session``;
* B: the envelope opened and decoded by its ``Session`` plus the inbox copy ``on_frame`` stores,
  the engine's decode of an inbox row (a backlog), Basic incoming rules for a first sync,
  ``to_wiki`` of the description and of each comment, ``from_wiki`` of each comment in the final
  read, and the echo baseline (outgoing rules on B's own snapshot).

The total counts every comment row 7 times. The replica fingerprint is shown apart (``protocol/
replica.py``).

Each row is µs of CPU per call (one thread, best of 3 runs of ``--seconds``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable

from node.richtext.adf import from_adf, to_adf
from node.richtext.wiki import from_wiki, to_wiki
from node.rules import IncomingContext, OutgoingContext, RuleSet, compile_rules
from node.trackers.base import IssueSnapshot
from node.trackers.jira.mapping import issue_snapshot
from protocol import NodeIdentity
from protocol.envelope import ChannelKeys
from protocol.messages import ReplicaMessage, decode_message, encode_message
from protocol.session import Session

COMMENTS = 7
NOW = "2026-05-01T10:00:00.000+0000"


def _user(name: str) -> dict[str, object]:
    return {
        "accountId": f"5b10ac8d82e05b22cc7d{name}",
        "displayName": name.title(),
        "emailAddress": f"{name}@example.com",
        "active": True,
        "timeZone": "Europe/Paris",
        "avatarUrls": {f"{s}x{s}": f"https://avatar.example/{name}/{s}.png" for s in (16, 24, 32, 48)},
    }


def raw_issue(n: int) -> dict[str, object]:
    description = from_wiki(f"Customer report {n}.\n\nSteps: open the *settings* page, press {{{{Save}}}}.")
    comments = [
        {
            "id": str(10000 + k),
            "author": _user("jane"),
            "updateAuthor": _user("jane"),
            "body": to_adf(from_wiki(f"Comment {k} on issue {n}: it still fails.")),
            "created": NOW,
            "updated": NOW,
            "jsdPublic": True,
            "properties": [],
        }
        for k in range(COMMENTS)
    ]
    return {
        "id": str(20000 + n),
        "key": f"SUP-{n}",
        "self": f"https://a.example/rest/api/3/issue/{20000 + n}",
        "fields": {
            "summary": f"bulk issue {n}",
            "description": to_adf(description),
            "issuetype": {"id": "10001", "name": "Task", "subtask": False},
            "priority": {"id": "3", "name": "Medium"},
            "labels": ["customer", "backend"],
            "components": [],
            "fixVersions": [],
            "versions": [],
            "status": {"name": "To Do", "statusCategory": {"key": "new", "name": "To Do"}},
            "project": {"key": "SUP", "name": "Support", "id": "10000"},
            "created": NOW,
            "updated": NOW,
            "reporter": _user("jane"),
            "creator": _user("jane"),
            "assignee": None,
            "comment": {"comments": comments, "total": COMMENTS, "maxResults": 50, "startAt": 0},
        },
    }


def rate(fn: Callable[[], object], seconds: float) -> float:
    """CPU µs per call, best of three."""
    best = float("inf")
    for _ in range(3):
        n, start = 0, time.process_time()
        while True:
            for _ in range(20):
                fn()
            n += 20
            spent = time.process_time() - start
            if spent >= seconds / 3:
                break
        best = min(best, spent / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()

    snap_a = issue_snapshot(raw_issue(1), base_url="https://a.example")
    snap_b: IssueSnapshot = snap_a.model_copy(update={"tracker": "jira", "id": "30001", "key": "OPS-1"})
    outgoing = compile_rules(RuleSet(direction="outgoing"))
    incoming = compile_rules(RuleSet(direction="incoming"))
    out_ctx = OutgoingContext(connection="c1")
    in_ctx = IncomingContext(connection="c1", project="OPS", tracker="jira")
    replica = outgoing.outgoing_result(snap_a, out_ctx).replica
    assert replica is not None and len(replica.comments) == COMMENTS

    a, b = NodeIdentity.from_seed(bytes(range(64))), NodeIdentity.from_seed(bytes(range(1, 65)))
    conn_id = bytes(range(16))
    keys_a = ChannelKeys.derive(a, conn_id, b.public.sign_public, b.public.box_public)
    keys_b = ChannelKeys.derive(b, conn_id, a.public.sign_public, a.public.box_public)
    sender, receiver = Session(keys_a), Session(keys_b)
    message = ReplicaMessage(replica=replica, version=1, reason="bulk")
    nonce = bytes(24)

    def send() -> object:
        return sender.send(message, nonce)

    _, envelope = sender.send(message, nonce)

    def receive() -> object:
        receiver.recv_next = 1  # deliver the same envelope every time
        return receiver.receive(envelope).plaintexts  # what on_frame stores in the inbox

    stored = encode_message(message)
    wiki_comment = to_wiki(replica.comments[0].body)
    adf_comment = to_adf(replica.comments[0].body)
    started = time.process_time()
    rows: list[tuple[str, float]] = [
        ("A: outgoing rules (basic)", rate(lambda: outgoing.outgoing_result(snap_a, out_ctx), args.seconds)),
        ("A: session send (encode + seal)", rate(send, args.seconds)),
        ("B: session receive + inbox copy", rate(receive, args.seconds)),
        ("B: engine decode of the inbox row", rate(lambda: decode_message(stored), args.seconds)),
        (
            "B: incoming rules (basic, create)",
            rate(lambda: incoming.incoming(replica, None, None, in_ctx), args.seconds),
        ),
        (
            "B: incoming rules (basic, unchanged)",
            rate(lambda: incoming.incoming(replica, replica, snap_b, in_ctx), args.seconds),
        ),
        ("B: to_wiki, description", rate(lambda: to_wiki(replica.description or {}), args.seconds)),
        ("B: to_wiki, one comment", rate(lambda: to_wiki(replica.comments[0].body), args.seconds)),
        ("A: from_adf, one comment", rate(lambda: from_adf(adf_comment), args.seconds)),
        ("B: from_wiki, one comment (final read)", rate(lambda: from_wiki(wiki_comment), args.seconds)),
        (
            "B: echo baseline (outgoing rules)",
            rate(lambda: outgoing.outgoing_result(snap_b, out_ctx), args.seconds),
        ),
        ("replica fingerprint", rate(replica.fingerprint_payload, args.seconds)),
    ]
    sender.send_next = 2
    print(f"\nNode hot paths, CPU µs per call ({COMMENTS} comments per issue; {dt.date.today()})\n")
    print(f"{'call':<40}{'µs':>10}")
    print("-" * 50)
    for name, us in rows:
        print(f"{name:<40}{us:>10.1f}")
    per_issue = sum(us for name, us in rows if name.startswith(("A:", "B:")) and "one comment" not in name)
    per_issue += COMMENTS * sum(us for name, us in rows if "one comment" in name)
    print("-" * 50)
    print(f"{'one issue through A and B (sum)':<40}{per_issue:>10.1f}")
    print(f"\n(measured in {time.process_time() - started:.1f} CPU s)")


if __name__ == "__main__":
    main()
