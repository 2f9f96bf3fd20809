from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.store import Database
from node.store.db import create_database


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    path = tmp_path / "tandem.db"
    create_database(path)
    database = Database(path)
    await database.open()
    try:
        yield database
    finally:
        await database.close()
