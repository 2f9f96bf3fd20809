"""Bad invitation codes: each refused with its own message, nothing changed on either node."""

from __future__ import annotations

import time
from typing import Any

from protocol import NodeIdentity, decode_invitation, encode_invitation
from protocol.identity import b32, unb32
from protocol.invitation import PREFIX, VERSION, _checksum
from tests.e2e.harness import Cluster, NodeProc


def _snapshot(*nodes: NodeProc) -> list[list[dict[str, Any]]]:
    out = []
    for n in nodes:
        items = n.connections()
        for c in items:
            c.pop("last_contact", None)
            c["link"].pop("since", None)
        out.append(items)
    return out


def _refused(node: NodeProc, code: str) -> tuple[str, str]:
    status, body = node.api("POST", "/api/v1/invitations/accept", {"code": code})
    assert status == 400, body
    return body["error"]["code"], body["error"]["message"]


def _tamper(code: str) -> str:
    """Change the content and fix the checksum: only the signature can tell."""
    blob = unb32(code[len(PREFIX) + 1 :])
    body = blob[:-68].replace(b'"exp":', b'"exp":9', 1)
    signed = body + blob[-68:-4]
    return f"{PREFIX}{VERSION}{b32(signed + _checksum(signed))}"


def test_bad_codes_are_refused_each_with_its_own_message(cluster: Cluster) -> None:
    a = cluster.node("A", public=True)
    b = cluster.node("B", public=False)
    c = cluster.node("C", public=False)
    good = a.invite(name="ab")
    before = _snapshot(a, b, c)

    # Tampered: content changed, checksum recomputed.
    code_t, msg_t = _refused(b, _tamper(good))
    assert code_t == "invitation_tampered" and "altered" in msg_t
    # Truncated: the end is missing (cut on a base32 block boundary; see the report about other cuts).
    head = len(PREFIX) + 1
    code_tr, msg_tr = _refused(b, good[: head + (len(good) - head) // 2 // 8 * 8])
    assert code_tr == "invitation_corrupted" and "truncated" in msg_tr
    # Expired: properly signed by A, but past its expiry.
    identity = NodeIdentity.from_seed((a.home / "identity.key").read_bytes())
    invitation = decode_invitation(good, now=int(time.time()))
    old = invitation.__class__(**{**invitation.__dict__, "expires_at": int(time.time()) - 7200})
    code_e, msg_e = _refused(b, encode_invitation(old, identity))
    assert code_e == "invitation_expired" and "expired" in msg_e
    # Not a code at all.
    code_n, _ = _refused(b, "hello there")
    assert code_n == "not_an_invitation"
    assert _snapshot(a, b, c) == before

    # Reused: B accepts; then C (another acceptor) and B again are refused.
    assert b.accept(good, name="ba")["paired"]
    after_pairing = _snapshot(a, b, c)
    code_r, msg_r = _refused(c, good)
    assert code_r == "invitation_used" and "already used" in msg_r
    code_r2, msg_r2 = _refused(b, good)
    assert code_r2 == "invitation_used" and "already accepted" in msg_r2
    assert len({msg_t, msg_tr, msg_e, msg_r}) == 4
    assert _snapshot(a, b, c) == after_pairing
    assert a.metric("tandem_peer_rejected_total", reason="refused") >= 1
