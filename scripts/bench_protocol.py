"""Protocol benchmark: seal+open throughput and invitation encode/decode time (one core).

    .venv/bin/python scripts/bench_protocol.py [--seconds 2]

Target (issue 2): at least 20,000 seal+open per second for a 4 KiB replica on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from collections.abc import Callable

from protocol import Invitation, NodeIdentity, Reach, decode_invitation, encode_invitation
from protocol.envelope import ChannelKeys
from protocol.messages import ReplicaMessage, decode_message, encode_message
from protocol.replica import Comment, EntityRef, Replica
from protocol.richtext import from_plain_text


def replica_of_about(size: int) -> ReplicaMessage:
    text = "Customer reports the export fails with a timeout after 30 seconds. " * 8
    comments = []
    msg = ReplicaMessage(replica=Replica(entity=EntityRef(id="1"), summary="x"), version=1)
    while len(encode_message(msg)) < size:
        comments.append(Comment(id=str(len(comments)), body=from_plain_text(text[: 40 + len(comments) * 7])))
        msg = ReplicaMessage(
            replica=Replica(
                entity=EntityRef(id="10001", key="SUP-1", url="https://support.example/browse/SUP-1"),
                summary="Export fails with a timeout",
                description=from_plain_text(text),
                labels=["export", "timeout"],
                comments=comments,
            ),
            version=7,
        )
    return msg


def rate(fn: Callable[[], object], seconds: float) -> tuple[float, int]:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        n += 100
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core

    alice = NodeIdentity.from_seed(hashlib.sha512(b"a").digest())
    bob = NodeIdentity.from_seed(hashlib.sha512(b"b").digest())
    conn = bytes(16)
    a = ChannelKeys.derive(alice, conn, bob.public.sign_public, bob.public.box_public)
    b = ChannelKeys.derive(bob, conn, alice.public.sign_public, alice.public.box_public)
    msg = replica_of_about(4096)
    plaintext = encode_message(msg)
    nonce = os.urandom(24)

    def seal_open() -> None:
        b.open(a.seal(1, plaintext, nonce))

    def full() -> None:
        decode_message(b.open(a.seal(1, encode_message(msg), nonce))[1])

    inv = Invitation(
        conn, alice.public, "Support", Reach("public", "https://support.example"), bytes(32), 2**40
    )
    code = encode_invitation(inv, alice)

    rows = []
    r, n = rate(seal_open, args.seconds)
    rows.append(("seal+open, 4 KiB replica bytes", f"{r:,.0f} /s", f"{1e6 / r:.1f} µs", n))
    r, n = rate(full, args.seconds)
    rows.append(("encode+seal+open+decode (pydantic)", f"{r:,.0f} /s", f"{1e6 / r:.1f} µs", n))
    r, n = rate(lambda: encode_invitation(inv, alice), args.seconds)
    rows.append(("invitation encode (sign)", f"{r:,.0f} /s", f"{1e6 / r:.1f} µs", n))
    r, n = rate(lambda: decode_invitation(code, now=0), args.seconds)
    rows.append(("invitation decode (verify)", f"{r:,.0f} /s", f"{1e6 / r:.1f} µs", n))

    envelope = a.seal(1, plaintext, nonce)
    print(f"replica plaintext {len(plaintext)} bytes, envelope {len(envelope)} bytes, one core")
    print(f"{'operation':<38} {'rate':>14} {'per op':>10} {'samples':>9}")
    for name, r_s, per, n in rows:
        print(f"{name:<38} {r_s:>14} {per:>10} {n:>9}")


if __name__ == "__main__":
    main()
