"""Fixtures shared by every suite. Suite-specific fixtures live in each suite's own conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def vendor_data_dir() -> Path | None:
    """Real API specs and recorded payloads: $TANDEM_VENDOR_DATA, else ../shared/vendor-data."""
    env = os.environ.get("TANDEM_VENDOR_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "vendor-data")
    for c in candidates:
        if (c / "SOURCES.md").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def vendor_data() -> Path:
    found = vendor_data_dir()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("vendor data not found: set TANDEM_VENDOR_DATA or place shared/ beside the repo")
        pytest.skip("vendor data not found (set TANDEM_VENDOR_DATA)")
    return found
