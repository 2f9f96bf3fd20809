"""The node's SQLite store: numbered migrations, one writer, WAL.

Everything a node must not lose lives here: connections (keys, sequence counters), the durable
outbox (sealed envelopes until the peer acks them) and the inbox (delivered messages). See
:mod:`node.store.db` for the concurrency rules.
"""

from node.store.db import Database, SchemaTooNew, StoreError
from node.store.migrations import LATEST_VERSION, MIGRATIONS, Migration
from node.store.rows import ConnectionRow, InboxRow

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "ConnectionRow",
    "Database",
    "InboxRow",
    "Migration",
    "SchemaTooNew",
    "StoreError",
]
