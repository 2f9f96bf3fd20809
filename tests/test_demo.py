"""`make demo` runs its whole story (emulators, two nodes, pairing, sync both ways) and stops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_story_runs_end_to_end(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--once", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUP-1 → ENG-1" in out.stdout
    assert "internal note leaked: False" in out.stdout
    assert "SUP-1 is now: Resolved" in out.stdout
    assert "last result    applied" in out.stdout


def test_readme_quick_start_is_exactly_make_demo_and_make_test() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```", 2)[1]
    commands = [line.strip() for line in block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]
