"""Where ``ingest`` keeps the fleet's events: SQLite for one machine, PostgreSQL beyond it.

The event id is the primary key and every insert is ``ON CONFLICT DO NOTHING``:
devices deliver at least once (a replay after an outage, a batch re-sent for a
lost PUBACK) and ingest itself re-reads what it had not acknowledged, so the
table, not the transport, makes each event count once.  ``insert`` returns only
after the commit is durable, which is what allows the caller to acknowledge.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from appliance.errors import ApplianceError
from appliance.ops.eventbatch import EventRow

DEFAULT_URL = "sqlite:///oivis-events.db"


class EventStore(Protocol):
    name: str

    def insert(self, rows: Sequence[EventRow]) -> int:
        """Store ``rows`` in one committed transaction; how many were new."""

    def close(self) -> None: ...


def open_store(url: str) -> EventStore:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://user@host/db``."""
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    raise ApplianceError(f"--db {shown(url)!r}: expected sqlite:///PATH or postgresql://…")


def shown(url: str) -> str:
    """``url`` without a password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class SqliteStore:
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, "
        "ts TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, historical INTEGER NOT NULL, "
        "received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
        "CREATE INDEX IF NOT EXISTS events_device_seq ON events (device, seq)",
    )
    INSERT = ("INSERT INTO events (id, device, seq, ts, type, data, historical) VALUES (?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT (id) DO NOTHING")

    def __init__(self, path: Path) -> None:
        self.name = f"sqlite:///{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # WAL's default (NORMAL) may lose the last commits
            with self._db:
                for statement in self.SCHEMA:
                    self._db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise ApplianceError(f"event database {path} cannot be opened: {exc}") from exc

    def insert(self, rows: Sequence[EventRow]) -> int:
        try:
            with self._db:
                cursor = self._db.executemany(self.INSERT, [
                    (row.id, row.device, row.seq, row.ts_text, row.type,
                     json.dumps(row.data, separators=(",", ":"), ensure_ascii=False), int(row.historical))
                    for row in rows])
                return cursor.rowcount
        except sqlite3.Error as exc:
            raise ApplianceError(f"cannot store events in {self.name}: {exc}") from exc

    def close(self) -> None:
        self._db.close()


class PostgresStore:
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS events (id uuid PRIMARY KEY, device text NOT NULL, seq bigint NOT NULL, "
        "ts timestamptz NOT NULL, type text NOT NULL, data jsonb NOT NULL, historical boolean NOT NULL, "
        "received_at timestamptz NOT NULL DEFAULT now())",
        "CREATE INDEX IF NOT EXISTS events_device_seq ON events (device, seq)",
    )
    INSERT = ("INSERT INTO events (id, device, seq, ts, type, data, historical) VALUES (%s, %s, %s, %s, %s, %s, %s) "
              "ON CONFLICT (id) DO NOTHING")

    def __init__(self, url: str) -> None:
        try:
            import psycopg
            from psycopg.types.json import Jsonb
        except ImportError as exc:
            raise ApplianceError("PostgreSQL needs psycopg 3: pip install 'oivis-appliance[ingest]'") from exc
        self.name = shown(url)
        self._errors: tuple[type[Exception], ...] = (psycopg.Error,)
        self._jsonb = Jsonb
        try:
            self._db: Any = psycopg.connect(url, connect_timeout=10, autocommit=True)  # transaction() blocks only
            with self._db.transaction():
                for statement in self.SCHEMA:
                    self._db.execute(statement)
        except psycopg.Error as exc:
            raise ApplianceError(f"event database {self.name} cannot be opened: {exc}") from exc

    def insert(self, rows: Sequence[EventRow]) -> int:
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                cursor.executemany(self.INSERT, [
                    (row.id, row.device, row.seq, row.ts, row.type, self._jsonb(row.data), row.historical)
                    for row in rows])
                return cursor.rowcount
        except self._errors as exc:
            raise ApplianceError(f"cannot store events in {self.name}: {exc}") from exc

    def close(self) -> None:
        self._db.close()
