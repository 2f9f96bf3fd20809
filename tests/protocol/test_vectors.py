"""The test vectors in protocol/vectors.json and PROTOCOL.md, checked byte for byte."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from protocol import NodeIdentity, Reach, decode_invitation, peek_accept, verify_accept
from protocol.envelope import ChannelKeys
from protocol.messages import Probe, decode_message

ROOT = Path(__file__).resolve().parents[2]
VECTORS: dict[str, Any] = json.loads((ROOT / "protocol" / "vectors.json").read_text())


def _compute() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("make_vectors", ROOT / "scripts" / "make_vectors.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result: dict[str, Any] = module.compute()
    return result


def test_implementation_reproduces_every_vector() -> None:
    assert _compute() == VECTORS


def test_vectors_open_independently() -> None:
    alice = NodeIdentity.from_seed(bytes.fromhex(VECTORS["alice"]["seed"]))
    bob = NodeIdentity.from_seed(bytes.fromhex(VECTORS["bob"]["seed"]))
    assert alice.node_id.hex() == VECTORS["alice"]["node_id"]
    inv = decode_invitation(VECTORS["invitation_code"], now=1_800_000_000)
    assert inv.inviter == alice.public and inv.reach == Reach("public", "https://support.example:8443")
    _, request = peek_accept(alice, bytes.fromhex(VECTORS["accept"]["envelope"]))
    verify_accept(inv, request)
    keys_b = ChannelKeys.derive(bob, inv.connection_id, alice.public.sign_public, alice.public.box_public)
    header, plaintext = keys_b.open(bytes.fromhex(VECTORS["data"]["envelope"]))
    assert header.sequence == 1
    assert decode_message(plaintext) == Probe(n=1, sent_ms=1_700_000_000_000, payload="hello")


def test_protocol_md_quotes_the_current_vectors() -> None:
    spec = (ROOT / "protocol" / "PROTOCOL.md").read_text()
    for value in [
        VECTORS["invitation_code"],
        VECTORS["accept"]["envelope"],
        VECTORS["data"]["envelope"],
        VECTORS["verification_string"],
        VECTORS["alice"]["node_id_text"],
        VECTORS["link_opening"]["bob_opening"],
    ]:
        assert value in spec
