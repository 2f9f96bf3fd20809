"""The protocol benchmark runs and prints its table (a smoke run; figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_protocol_prints_every_row() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_protocol.py"), "--seconds", "0.02"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for row in ["seal+open, 4 KiB replica bytes", "invitation encode", "invitation decode"]:
        assert row in out
    assert "/s" in out
