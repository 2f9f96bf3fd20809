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
    Migration(
        2,
        "sync engine: twins, rules, triggers, errors, conflicts, bulk jobs, intents, cursors, workflow",
        """
        CREATE TABLE twins (
            id                    INTEGER PRIMARY KEY,
            conn_id               BLOB NOT NULL,
            local_id              TEXT,                 -- NULL until the local issue exists
            local_key             TEXT,
            remote_id             TEXT,                 -- NULL until the peer reported its twin
            remote_key            TEXT,
            remote_url            TEXT,
            state                 TEXT NOT NULL DEFAULT 'pending'
                                  CHECK (state IN ('linked', 'pending', 'paused', 'unlinked')),
            last_sent_version     INTEGER NOT NULL DEFAULT 0,
            last_sent_fingerprint TEXT,
            last_sent_replica     TEXT,
            last_sent_at          REAL,
            last_sent_values      TEXT,                 -- JSON: local values of the last replica sent
            last_received_version INTEGER NOT NULL DEFAULT 0,
            last_received_replica TEXT,                 -- "previous" for the incoming rules
            last_received_at      REAL,
            last_applied          TEXT,                 -- JSON: local values right after the last sync
            pending_replica       TEXT,                 -- JSON: a received replica not applied yet (paused)
            pending_version       INTEGER,
            last_result           TEXT,
            baseline_fingerprint  TEXT,                 -- echo suppression
            created_at            REAL NOT NULL,
            updated_at            REAL NOT NULL
        );
        CREATE UNIQUE INDEX twins_local ON twins(conn_id, local_id) WHERE local_id IS NOT NULL;
        CREATE UNIQUE INDEX twins_remote ON twins(conn_id, remote_id) WHERE remote_id IS NOT NULL;
        CREATE INDEX twins_local_key ON twins(local_key);
        CREATE TABLE twin_comments (
            conn_id           BLOB NOT NULL,
            local_issue_id    TEXT NOT NULL,
            local_comment_id  TEXT NOT NULL,
            remote_comment_id TEXT NOT NULL,
            direction         TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            PRIMARY KEY (conn_id, local_issue_id, remote_comment_id, direction)
        );
        CREATE TABLE twin_attachments (
            conn_id              BLOB NOT NULL,
            local_issue_id       TEXT NOT NULL,
            local_attachment_id  TEXT,
            remote_attachment_id TEXT NOT NULL,
            direction            TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            sha256               TEXT NOT NULL,
            filename             TEXT NOT NULL DEFAULT '',
            mime_type            TEXT NOT NULL DEFAULT 'application/octet-stream',
            size                 INTEGER NOT NULL DEFAULT 0,
            state                TEXT NOT NULL DEFAULT 'done'
                                 CHECK (state IN ('requested', 'done', 'failed')),
            error                TEXT,
            PRIMARY KEY (conn_id, local_issue_id, remote_attachment_id, direction)
        );
        CREATE INDEX twin_attachments_sha ON twin_attachments(conn_id, sha256) WHERE state = 'requested';
        CREATE TABLE blob_chunks (
            conn_id  BLOB NOT NULL,
            sha256   TEXT NOT NULL,
            offset   INTEGER NOT NULL,
            data     BLOB NOT NULL,
            PRIMARY KEY (conn_id, sha256, offset)
        ) WITHOUT ROWID;
        CREATE TABLE intents (
            id               INTEGER PRIMARY KEY,
            conn_id          BLOB NOT NULL,
            remote_entity_id TEXT NOT NULL,
            marker           TEXT NOT NULL,
            project          TEXT NOT NULL,
            created_at       REAL NOT NULL,
            done             INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX intents_open ON intents(conn_id, marker) WHERE done = 0;
        CREATE TABLE triggers (
            id         INTEGER PRIMARY KEY,
            conn_id    BLOB NOT NULL,
            query      TEXT NOT NULL,
            note       TEXT NOT NULL DEFAULT '',
            active     INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL
        );
        CREATE TABLE rulesets (
            conn_id    BLOB NOT NULL,
            direction  TEXT NOT NULL CHECK (direction IN ('outgoing', 'incoming')),
            version    INTEGER NOT NULL,
            mode       TEXT NOT NULL CHECK (mode IN ('basic', 'visual', 'script')),
            source     TEXT NOT NULL,
            state      TEXT NOT NULL CHECK (state IN ('draft', 'published', 'superseded')),
            prev       INTEGER,                        -- the version in force before this one
            note       TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            PRIMARY KEY (conn_id, direction, version, state)
        );
        CREATE TABLE sync_errors (
            id         INTEGER PRIMARY KEY,
            conn_id    BLOB,
            entity     TEXT,
            local_id   TEXT,
            remote_id  TEXT,
            direction  TEXT,
            kind       TEXT NOT NULL,
            message    TEXT NOT NULL,
            line       INTEGER,
            state      TEXT NOT NULL CHECK (state IN ('open', 'retrying', 'resolved')),
            paused     INTEGER NOT NULL DEFAULT 0,
            count      INTEGER NOT NULL DEFAULT 1,
            first_seen REAL NOT NULL,
            last_seen  REAL NOT NULL
        );
        CREATE INDEX sync_errors_live ON sync_errors(conn_id, entity, kind) WHERE state != 'resolved';
        CREATE TABLE conflicts (
            id           INTEGER PRIMARY KEY,
            conn_id      BLOB NOT NULL,
            entity       TEXT NOT NULL,
            field        TEXT NOT NULL,
            local_value  TEXT,
            remote_value TEXT,
            winner       TEXT NOT NULL CHECK (winner IN ('local', 'remote')),
            reason       TEXT NOT NULL DEFAULT '',
            at           REAL NOT NULL
        );
        CREATE TABLE bulk_jobs (
            id          INTEGER PRIMARY KEY,
            conn_id     BLOB NOT NULL,
            query       TEXT NOT NULL,
            state       TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'cancelled')),
            listed      INTEGER NOT NULL DEFAULT 0,   -- 1 once every matching issue is in bulk_items
            page_token  TEXT,
            total       INTEGER,
            done        INTEGER NOT NULL DEFAULT 0,
            failed      INTEGER NOT NULL DEFAULT 0,
            error       TEXT,
            started_at  REAL NOT NULL,
            finished_at REAL
        );
        CREATE TABLE bulk_items (
            job_id    INTEGER NOT NULL REFERENCES bulk_jobs(id),
            issue_key TEXT NOT NULL,
            state     TEXT NOT NULL DEFAULT 'todo' CHECK (state IN ('todo', 'done', 'failed')),
            error     TEXT,
            PRIMARY KEY (job_id, issue_key)
        ) WITHOUT ROWID;
        CREATE TABLE cursors (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE workflow_edges (
            project       TEXT NOT NULL,
            issue_type    TEXT NOT NULL,
            from_status   TEXT NOT NULL,
            transition_id TEXT NOT NULL,
            name          TEXT NOT NULL,
            to_status     TEXT NOT NULL,
            to_category   TEXT NOT NULL DEFAULT 'indeterminate',
            seen_at       REAL NOT NULL,
            PRIMARY KEY (project, issue_type, from_status, transition_id)
        ) WITHOUT ROWID;
        """,
    ),
    Migration(
        3,
        "create intents are deleted when closed (they were kept, one row per issue ever created)",
        """
        DELETE FROM intents WHERE done = 1;
        """,
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
