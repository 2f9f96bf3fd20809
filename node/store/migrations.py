"""Numbered schema migrations. Append only: never edit a migration that has shipped.

Each migration runs in one transaction together with the bump of ``schema_version``, so a crash
half-way leaves the database at the previous version. A database whose version is higher than
:data:`LATEST_VERSION` was written by a newer Tandem and is refused (:class:`SchemaTooNew`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "connections, outbox, inbox",
        """
        CREATE TABLE connections (
            id             BLOB PRIMARY KEY,            -- 16-byte connection id from the invitation
            name           TEXT NOT NULL,
            role           TEXT NOT NULL CHECK (role IN ('inviter', 'acceptor')),
            state          TEXT NOT NULL
                           CHECK (state IN ('pending', 'active', 'deactivated', 'error', 'deleted')),
            error          TEXT,
            link           TEXT NOT NULL CHECK (link IN ('listen', 'dial', 'relay')),
            url            TEXT,                        -- dial: the peer URL; relay: the relay URL
            project        TEXT,
            code           TEXT,                        -- the invitation code (holds the secret)
            expires_at     INTEGER NOT NULL,
            peer_name      TEXT,
            peer_sign      BLOB,
            peer_box       BLOB,
            accept_request BLOB,                        -- inviter: the accept it answered
            pair_envelope  BLOB,                        -- acceptor: the PAIR envelope, until welcomed
            own_reach      TEXT,                        -- acceptor: the reach it declared (JSON)
            send_next      INTEGER NOT NULL DEFAULT 1,
            recv_next      INTEGER NOT NULL DEFAULT 1,
            created_at     REAL NOT NULL,
            updated_at     REAL NOT NULL,
            last_contact   REAL
        );
        CREATE UNIQUE INDEX connections_live_name ON connections(name) WHERE state != 'deleted';
        CREATE TABLE outbox (
            conn_id    BLOB NOT NULL REFERENCES connections(id),
            seq        INTEGER NOT NULL,
            type       TEXT NOT NULL,
            envelope   BLOB NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (conn_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE inbox (
            conn_id      BLOB NOT NULL REFERENCES connections(id),
            seq          INTEGER NOT NULL,
            type         TEXT NOT NULL,
            body         BLOB NOT NULL,
            received_at  REAL NOT NULL,
            processed_at REAL,
            PRIMARY KEY (conn_id, seq)
        ) WITHOUT ROWID;
        CREATE INDEX inbox_unprocessed ON inbox(conn_id, seq) WHERE processed_at IS NULL;
        """,
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
