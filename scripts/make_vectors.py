"""Regenerate protocol/vectors.json: fixed keys and nonces -> exact bytes.

Run by hand after a deliberate protocol change (then update PROTOCOL.md, which quotes the vectors):
    .venv/bin/python scripts/make_vectors.py
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from protocol import (
    Invitation,
    NodeIdentity,
    Reach,
    encode_invitation,
    make_accept,
    make_opening,
    verification_string,
)
from protocol.envelope import ChannelKeys
from protocol.messages import Probe, encode_message

OUT = Path(__file__).resolve().parent.parent / "protocol" / "vectors.json"


def compute() -> dict[str, Any]:
    alice = NodeIdentity.from_seed(bytes(range(64)))
    bob = NodeIdentity.from_seed(bytes(range(64, 128)))
    conn = bytes.fromhex("00112233445566778899aabbccddeeff")
    secret = hashlib.sha256(b"tandem test vector secret").digest()
    invitation = Invitation(
        connection_id=conn,
        inviter=alice.public,
        inviter_name="Support",
        reach=Reach("public", "https://support.example:8443"),
        secret=secret,
        expires_at=1_900_000_000,
        connection_name="support-eng",
        project="SUP",
    )
    nonce_pair = bytes([0x11] * 24)
    nonce_data = bytes([0x22] * 24)
    keys_a = ChannelKeys.derive(alice, conn, bob.public.sign_public, bob.public.box_public)
    plaintext = encode_message(Probe(n=1, sent_ms=1_700_000_000_000, payload="hello"))
    return {
        "alice": {
            "seed": alice.to_seed().hex(),
            "sign_public": alice.public.sign_public.hex(),
            "box_public": alice.public.box_public.hex(),
            "node_id": alice.node_id.hex(),
            "node_id_text": alice.node_id_text,
        },
        "bob": {
            "seed": bob.to_seed().hex(),
            "sign_public": bob.public.sign_public.hex(),
            "box_public": bob.public.box_public.hex(),
            "node_id": bob.node_id.hex(),
            "node_id_text": bob.node_id_text,
        },
        "connection_id": conn.hex(),
        "secret": secret.hex(),
        "invitation_body": invitation.body().decode(),
        "invitation_code": encode_invitation(invitation, alice),
        "accept": {
            "acceptor_name": "Engineering",
            "reach": {"mode": "private"},
            "nonce": nonce_pair.hex(),
            "envelope": make_accept(bob, invitation, "Engineering", Reach("private"), nonce_pair).hex(),
        },
        "data": {
            "send_key_alice_to_bob": keys_a.send_key.hex(),
            "receive_key_bob_to_alice": keys_a.receive_key.hex(),
            "sequence": 1,
            "nonce": nonce_data.hex(),
            "plaintext": plaintext.decode(),
            "envelope": keys_a.seal(1, plaintext, nonce_data).hex(),
        },
        "verification_string": verification_string(conn, alice.public, bob.public),
        "link_opening": {
            "challenge": bytes([0x33] * 32).hex(),
            "bob_opening": make_opening(bob, bytes([0x33] * 32), conn).hex(),
        },
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(compute(), indent=2) + "\n")
    print(f"wrote {OUT}")
