"""Where ``ingest`` keeps the fleet's events: SQLite for one machine, PostgreSQL beyond it.

Invariants:

- The event id is the primary key and every insert is ``ON CONFLICT DO NOTHING``:
  devices deliver at least once (a replay after an outage, a batch re-sent for a
  lost PUBACK) and ingest itself re-reads what it had not acknowledged, so the
  table, not the transport, makes each event count once.  The ``quarantine``
  table is keyed the same way, by a digest of what it holds.
- ``write`` returns only after the commit is durable, which is what allows the
  caller to acknowledge.  It raises ``RowsRefused`` (nothing written) when the
  database refuses a row for what the row holds, and a plain ApplianceError when
  the database itself fails (gone, full, locked): the first is the data's fault and
  ``write_each`` then stores every row it can, the second is a reason to stop.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from appliance.errors import ApplianceError
from appliance.ops.eventbatch import EventRow, Quarantined

DEFAULT_URL = "sqlite:///oivis-events.db"

Refused = list[tuple[EventRow, str]]


class RowsRefused(ApplianceError):
    """The database refused a row for what it holds; the transaction was rolled back."""


class EventStore(Protocol):
    name: str

    def write(self, rows: Sequence[EventRow], quarantined: Sequence[Quarantined]) -> int:
        """``rows`` and ``quarantined`` in one committed transaction; how many rows were new."""

    def write_each(self, rows: Sequence[EventRow]) -> tuple[int, Refused]:
        """``rows`` one by one in one committed transaction: how many were new, and the refused ones with why."""

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


def _quarantine_values(records: Sequence[Quarantined]) -> list[tuple[Any, ...]]:
    return [(q.digest, q.device, q.topic, q.part, q.payload, q.reason) for q in records]


class SqliteStore:
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, device TEXT NOT NULL, seq INTEGER NOT NULL, "
        "ts TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, historical INTEGER NOT NULL, "
        "received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
        "CREATE INDEX IF NOT EXISTS events_device_seq ON events (device, seq)",
        "CREATE TABLE IF NOT EXISTS quarantine (digest TEXT PRIMARY KEY, device TEXT, topic TEXT NOT NULL, "
        "event_index INTEGER, payload BLOB NOT NULL, reason TEXT NOT NULL, "
        "received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
        "CREATE INDEX IF NOT EXISTS quarantine_device ON quarantine (device, received_at)",
    )
    INSERT = ("INSERT INTO events (id, device, seq, ts, type, data, historical) VALUES (?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT (id) DO NOTHING")
    QUARANTINE = ("INSERT INTO quarantine (digest, device, topic, event_index, payload, reason) "
                  "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING")
    #: What binding or inserting a row raises when the row's content is refused.
    REFUSALS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, sqlite3.DataError, OverflowError, ValueError)

    def __init__(self, path: Path) -> None:
        self.name = f"sqlite:///{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None)  # transactions by hand
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # WAL's default (NORMAL) may lose the last commits
            with self._transaction():
                for statement in self.SCHEMA:
                    self._db.execute(statement)
        except (OSError, sqlite3.Error) as exc:
            raise ApplianceError(f"event database {path} cannot be opened: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back by itself (disk full, I/O error)
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @staticmethod
    def _values(row: EventRow) -> tuple[Any, ...]:
        return (row.id, row.device, row.seq, row.ts_text, row.type, row.data_json, int(row.historical))

    def write(self, rows: Sequence[EventRow], quarantined: Sequence[Quarantined]) -> int:
        try:
            with self._transaction():
                inserted = self._db.executemany(self.INSERT, map(self._values, rows)).rowcount if rows else 0
                if quarantined:
                    self._db.executemany(self.QUARANTINE, _quarantine_values(quarantined))
                return inserted
        except self.REFUSALS as exc:
            raise RowsRefused(f"{self.name} refused an event: {exc}") from exc
        except sqlite3.Error as exc:
            raise ApplianceError(f"cannot store events in {self.name}: {exc}") from exc

    def write_each(self, rows: Sequence[EventRow]) -> tuple[int, Refused]:
        inserted, refused = 0, []
        try:
            with self._transaction():
                for row in rows:
                    self._db.execute("SAVEPOINT event")
                    try:
                        inserted += self._db.execute(self.INSERT, self._values(row)).rowcount
                    except self.REFUSALS as exc:
                        self._db.execute("ROLLBACK TO event")
                        refused.append((row, f"{self.name} refused it: {exc}"))
                    self._db.execute("RELEASE event")
        except sqlite3.Error as exc:
            raise ApplianceError(f"cannot store events in {self.name}: {exc}") from exc
        return inserted, refused

    def close(self) -> None:
        self._db.close()


class PostgresStore:
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS events (id uuid PRIMARY KEY, device text NOT NULL, seq bigint NOT NULL, "
        "ts timestamptz NOT NULL, type text NOT NULL, data jsonb NOT NULL, historical boolean NOT NULL, "
        "received_at timestamptz NOT NULL DEFAULT now())",
        "CREATE INDEX IF NOT EXISTS events_device_seq ON events (device, seq)",
        "CREATE TABLE IF NOT EXISTS quarantine (digest text PRIMARY KEY, device text, topic text NOT NULL, "
        "event_index integer, payload bytea NOT NULL, reason text NOT NULL, "
        "received_at timestamptz NOT NULL DEFAULT now())",
        "CREATE INDEX IF NOT EXISTS quarantine_device ON quarantine (device, received_at)",
    )
    INSERT = ("INSERT INTO events (id, device, seq, ts, type, data, historical) "
              "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT (id) DO NOTHING")
    QUARANTINE = ("INSERT INTO quarantine (digest, device, topic, event_index, payload, reason) "
                  "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (digest) DO NOTHING")

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise ApplianceError("PostgreSQL needs psycopg 3: pip install 'oivis-appliance[ingest]'") from exc
        self.name = shown(url)
        self._errors: tuple[type[Exception], ...] = (psycopg.Error,)
        #: What sending or inserting a row raises when the row's content is refused (text with NUL is
        #: refused by psycopg itself, a lone surrogate by the encoder).
        self._refusals: tuple[type[Exception], ...] = (psycopg.DataError, psycopg.IntegrityError, ValueError)
        try:
            self._db: Any = psycopg.connect(url, connect_timeout=10, autocommit=True)  # transaction() blocks only
            with self._db.transaction():
                # Workers starting together would race on CREATE TABLE IF NOT EXISTS (a duplicate-key error
                # in the catalog): the schema is created by one at a time.
                self._db.execute("SELECT pg_advisory_xact_lock(hashtext('oivis-ingest-schema'))")
                for statement in self.SCHEMA:
                    self._db.execute(statement)
        except psycopg.Error as exc:
            raise ApplianceError(f"event database {self.name} cannot be opened: {exc}") from exc

    @staticmethod
    def _values(row: EventRow) -> tuple[Any, ...]:
        return (row.id, row.device, row.seq, row.ts, row.type, row.data_json, row.historical)

    def write(self, rows: Sequence[EventRow], quarantined: Sequence[Quarantined]) -> int:
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                inserted = 0
                if rows:
                    cursor.executemany(self.INSERT, [self._values(row) for row in rows])
                    inserted = cursor.rowcount
                if quarantined:
                    cursor.executemany(self.QUARANTINE, _quarantine_values(quarantined))
                return inserted
        except self._refusals as exc:
            raise RowsRefused(f"{self.name} refused an event: {exc}") from exc
        except self._errors as exc:
            raise ApplianceError(f"cannot store events in {self.name}: {exc}") from exc

    def write_each(self, rows: Sequence[EventRow]) -> tuple[int, Refused]:
        inserted, refused = 0, []
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                for row in rows:
                    try:
                        with self._db.transaction():  # a savepoint: a refusal undoes this row only
                            cursor.execute(self.INSERT, self._values(row))
                            inserted += cursor.rowcount
                    except self._refusals as exc:
                        refused.append((row, f"{self.name} refused it: {exc}"))
        except self._errors as exc:
            raise ApplianceError(f"cannot store events in {self.name}: {exc}") from exc
        return inserted, refused

    def close(self) -> None:
        self._db.close()
