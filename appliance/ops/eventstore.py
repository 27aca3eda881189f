"""Where ``ingest`` keeps the fleet's events: SQLite for one machine, PostgreSQL beyond it.

Invariants:

- The event id is the primary key (with ``ts`` in PostgreSQL, whose events are partitioned by
  month of ``ts``: ``appliance.ops.partitions``) and every insert is ``ON CONFLICT DO NOTHING``:
  devices deliver at least once (a replay after an outage, a batch re-sent for a
  lost PUBACK) and ingest itself re-reads what it had not acknowledged, so the
  table, not the transport, makes each event count once.  The ``quarantine``
  table is keyed the same way, by a digest of what it holds.
- ``write`` returns only after the commit is durable, which is what allows the
  caller to acknowledge.  It raises ``RowsRefused`` (nothing written) when the
  database refuses a row for what the row holds, and a plain ApplianceError when
  the database itself fails (gone, full, locked): the first is the data's fault and
  ``write_each`` then stores every row it can, the second is a reason to stop.
- Per device, ``device_progress.stored_upto`` is the highest n such that every seq
  1..n is stored or gone (seqs start at 1; 0 while seq 1 is neither).  Gone ranges
  (``gone``: from ``dropped`` events, ``EventRow.gone``, and the seq of each quarantined
  event, which will never be in ``events``) are recorded, and the value
  advanced for each device the rows name, in the transaction that stores the rows,
  so it never claims an event that a rollback took back.  It only grows and is
  computed from what is committed: SQLite's writers are serialised (``BEGIN
  IMMEDIATE``); in PostgreSQL each transaction locks its devices' progress rows (in
  device order, so two writers cannot deadlock on them) after inserting its events
  and before reading seqs, so the last writer to take the lock sees every event
  committed before it, and a writer that takes it earlier leaves the rest to that one.
  The walk reads only above the stored value, through the (device, seq) index, and
  stops at the first seq that is neither stored nor gone.
- The ``devices`` table is the device registry (``appliance.ops.registry``): one row per
  device, each kind's latest payload with when it was received, and ``last_seen``.  In PostgreSQL
  ``health_history`` keeps a few figures of the health reports (``registry.health_sample``) for the
  console's charts: at most one sample per device within ``HEALTH_STEP_S`` of another (a 30 s period
  gives one a minute), deleted after ``HEALTH_HISTORY_DAYS`` by ``maintain``.
  ``write_devices`` applies the reports in device order (so concurrent PostgreSQL writers
  lock rows in one order), each device's in arrival order, and each as a conditional ``UPDATE``: a
  report older than the row's (the registry's ordering) changes nothing but ``last_seen``
  and ``health_at``, which only move forward.  The condition is evaluated on the locked
  row, so several ingest workers converge whatever order their transactions commit in.
- In PostgreSQL the hourly rollups the console reads (``appliance.ops.rollups``) are maintained in the
  transaction that stores the rows: only the rows the INSERT actually added (``RETURNING`` into the session's
  ``events_new``) are counted, so a redelivery never counts twice; their row locks are taken after the
  inserts, in key order, and before the progress rows' (see rollups for why that cannot deadlock).
- Several ingest workers may open one new SQLite file at the same moment: each waits up to
  ``BUSY_TIMEOUT_S`` for the others, its switch to WAL included, and fails if WAL cannot be had.
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from appliance.errors import ApplianceError
from appliance.ops import partitions, rollups
from appliance.ops.eventbatch import EventRow, Quarantined
from appliance.ops.registry import DeviceRecord, DeviceReport, health_sample

DEFAULT_URL = "sqlite:///oivis-events.db"
#: How long a SQLite connection waits for another writer (other workers, ``maintain``) before it fails.
BUSY_TIMEOUT_S = 30
WAL_RETRY_S = 0.02
#: PostgreSQL keeps a screen's health figures this long, a sample per ``HEALTH_STEP_S`` (the console's charts).
HEALTH_HISTORY_DAYS = 30
HEALTH_STEP_S = 55

Refused = list[tuple[EventRow, str]]
#: Seqs read at a time while walking a device's stored seqs upwards.
SEQ_CHUNK = 1000


@dataclass(frozen=True)
class Written:
    """What one committed transaction did: how many rows were new, and each named device's ``stored_upto``."""

    inserted: int = 0
    stored_upto: dict[str, int] = field(default_factory=dict)  # every device the rows named, as committed
    grown: frozenset[str] = frozenset()  # the devices whose value this transaction raised


class RowsRefused(ApplianceError):
    """The database refused a row for what it holds; the transaction was rolled back."""


class EventStore(Protocol):
    name: str

    def write(self, rows: Sequence[EventRow], quarantined: Sequence[Quarantined]) -> Written:
        """``rows``, their gone ranges and their devices' progress, and ``quarantined``, in one committed
        transaction."""

    def write_each(self, rows: Sequence[EventRow]) -> tuple[Written, Refused]:
        """``rows`` one by one in one committed transaction (their gone ranges and progress with them): what
        was written, and the refused rows with why."""

    def stored_upto(self, devices: Iterable[str]) -> dict[str, int]:
        """The committed ``stored_upto`` of each of ``devices`` (0 for a device with none yet)."""

    def write_devices(self, reports: Sequence[DeviceReport]) -> None:
        """The registry's rows for ``reports`` (in arrival order), in one committed transaction."""

    def devices(self, health: bool = True) -> list[DeviceRecord]:
        """Every registered device, by id; without the health payloads (None) unless ``health``."""

    def maintain(self, now: datetime, retain_months: int) -> list[str]:
        """The retention policy at ``now`` (and in PostgreSQL the month partitions around it), in one committed
        transaction: what was done, a line each."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class DeviceSql:
    """One dialect's registry statements; parameters as ``device_writes`` lays them out."""

    seen: str  # (device, at): the row, and last_seen moved forward
    known: str  # (device, at): the row, last_seen left as it is (a retained copy)
    status: str  # (document, session, final, at, device, session, final)
    reported: str  # (document, at, device)
    health_at: str  # (at, at, device)
    health: str  # (document, ts, period, device, ts)


def device_writes(reports: Sequence[DeviceReport], sql: DeviceSql,
                  time: Callable[[datetime], Any]) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The statements that apply ``reports``, each with its rows for ``executemany``: first every device's row,
    then each kind's updates; each in device order, each device's in arrival order (a stable sort).  Kinds
    touch columns of their own, so applying one kind after the other is applying them in arrival order."""
    ordered = sorted(reports, key=lambda report: report.device)
    writes: dict[str, list[tuple[Any, ...]]] = {statement: [] for statement in (
        sql.seen, sql.known, sql.status, sql.reported, sql.health_at, sql.health)}
    for report in ordered:
        at = time(report.received_at)
        writes[sql.known if report.retained else sql.seen].append((report.device, at))
        if report.kind == "status":
            writes[sql.status].append((report.document_json, report.session, report.final, at, report.device,
                                       report.session, report.final))
        elif report.kind == "reported":
            writes[sql.reported].append((report.document_json, at, report.device))
        else:
            writes[sql.health_at].append((at, at, report.device))
            writes[sql.health].append((report.document_json, time(report.ts), report.period_s, report.device,
                                       time(report.ts)))
    return [(statement, rows) for statement, rows in writes.items() if rows]


def _sqlite_time(value: datetime) -> str:
    """UTC, milliseconds, ``Z``: text that sorts as the time does (SQLite compares it as text)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _utc(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _document(value: str | dict | None) -> dict | None:
    return json.loads(value) if isinstance(value, str) else value


def _record(row: Sequence[Any]) -> DeviceRecord:
    device, status, reported, health, health_at, period, last_seen = row
    return DeviceRecord(device, _document(status), _document(reported), _document(health), _utc(health_at),
                        period, _utc(last_seen))


def open_store(url: str) -> EventStore:
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``postgresql://user@host/db``."""
    if url.startswith("sqlite:///"):
        return SqliteStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    raise ApplianceError(f"--db {shown(url)!r}: expected sqlite:///PATH or postgresql://…")


def read_registry(url: str, health: bool = True) -> list[DeviceRecord]:
    """Every device of the registry in the database at ``url`` (which must exist: a typo is no empty fleet);
    without the health payloads unless ``health``."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise ApplianceError(f"--db {url}: no such database (ingest --db creates it)")
    store = open_store(url)
    try:
        return store.devices(health)
    finally:
        store.close()


def shown(url: str) -> str:
    """``url`` without a password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _quarantine_values(records: Sequence[Quarantined]) -> list[tuple[Any, ...]]:
    return [(q.digest, q.device, q.topic, q.part, q.payload, q.reason) for q in records]


def _gone_values(rows: Iterable[EventRow], quarantined: Iterable[Quarantined] = ()) -> list[tuple[str, int, int]]:
    """The gone ranges of ``dropped`` rows, and the seq of each quarantined event (it will never be in events)."""
    return ([(row.device, *row.gone) for row in rows if row.gone is not None]
            + [(q.device, q.seq, q.seq) for q in quarantined if q.device is not None and q.seq is not None])


def _devices(rows: Iterable[EventRow], quarantined: Iterable[Quarantined]) -> set[str]:
    """The devices whose progress a write may move."""
    return {row.device for row in rows} | {q.device for q in quarantined if q.device is not None and q.seq is not None}


def _write_ahead(db: sqlite3.Connection, deadline: float) -> None:
    """Switch ``db`` to WAL, waiting for another connection switching it at the same moment.

    SQLite answers a journal-mode change it cannot lock at once with "database is locked" without
    calling the busy handler, so two ingest workers starting on one new file would lose one of them."""
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if str(exc) != "database is locked" or time.monotonic() > deadline:
                raise
            time.sleep(WAL_RETRY_S)
            continue
        if mode != "wal":   # the writers' ordering above relies on it
            raise sqlite3.OperationalError(f"journal mode is {mode}, WAL is needed")
        return


def advance(upto: int, gone: Sequence[tuple[int, int]], seqs_above: Callable[[int], list[int]]) -> int:
    """The highest n >= ``upto`` such that every seq ``upto``+1..n is in a ``gone`` range (first, last) or
    stored; ``seqs_above(n)`` answers the stored seqs above n, distinct and ascending, at most SEQ_CHUNK."""
    while True:
        covering = [last for first, last in gone if first <= upto + 1 <= last]
        if covering:
            upto = max(covering)
            continue
        seqs = seqs_above(upto)
        contiguous = 0
        for seq in seqs:
            if seq != upto + 1:
                break
            upto, contiguous = seq, contiguous + 1
        more = contiguous == len(seqs) == SEQ_CHUNK  # a whole chunk followed on: there may be more above
        if not more and not any(first <= upto + 1 <= last for first, last in gone):
            return upto


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
        "CREATE TABLE IF NOT EXISTS gone (device TEXT NOT NULL, first_seq INTEGER NOT NULL, "
        "last_seq INTEGER NOT NULL, PRIMARY KEY (device, first_seq, last_seq))",
        "CREATE TABLE IF NOT EXISTS device_progress (device TEXT PRIMARY KEY, stored_upto INTEGER NOT NULL, "
        "updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
        "CREATE TABLE IF NOT EXISTS devices (device TEXT PRIMARY KEY, status TEXT, status_session INTEGER, "
        "status_final INTEGER, status_at TEXT, reported TEXT, reported_at TEXT, health TEXT, health_ts TEXT, "
        "health_at TEXT, health_period_s REAL, last_seen TEXT NOT NULL)",
    )
    DEVICE_SQL = DeviceSql(
        seen="INSERT INTO devices (device, last_seen) VALUES (?, ?) ON CONFLICT (device) DO UPDATE "
             "SET last_seen = max(devices.last_seen, excluded.last_seen)",
        known="INSERT INTO devices (device, last_seen) VALUES (?, ?) ON CONFLICT (device) DO NOTHING",
        status="UPDATE devices SET status = ?, status_session = ?, status_final = ?, status_at = ? "
               "WHERE device = ? AND (status_session IS NULL OR (?, ?) >= (status_session, status_final))",
        reported="UPDATE devices SET reported = ?, reported_at = ? WHERE device = ?",
        health_at="UPDATE devices SET health_at = max(coalesce(health_at, ?), ?) WHERE device = ?",
        health="UPDATE devices SET health = ?, health_ts = ?, health_period_s = coalesce(?, health_period_s) "
               "WHERE device = ? AND (health_ts IS NULL OR ? >= health_ts)")
    DEVICES = ("SELECT device, status, reported, {health}, health_at, health_period_s, last_seen FROM devices "
               "ORDER BY device")
    INSERT = ("INSERT INTO events (id, device, seq, ts, type, data, historical) VALUES (?, ?, ?, ?, ?, ?, ?) "
              "ON CONFLICT DO NOTHING")
    QUARANTINE = ("INSERT INTO quarantine (digest, device, topic, event_index, payload, reason) "
                  "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING")
    GONE = "INSERT INTO gone (device, first_seq, last_seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
    PROGRESS = "SELECT stored_upto FROM device_progress WHERE device = ?"
    GONE_ABOVE = "SELECT first_seq, last_seq FROM gone WHERE device = ? AND last_seq > ?"
    SEQS_ABOVE = "SELECT DISTINCT seq FROM events WHERE device = ? AND seq > ? ORDER BY seq LIMIT ?"
    RAISE = ("INSERT INTO device_progress (device, stored_upto) VALUES (?, ?) ON CONFLICT (device) DO UPDATE "
             "SET stored_upto = excluded.stored_upto, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
             "WHERE excluded.stored_upto > device_progress.stored_upto")
    #: What binding or inserting a row raises when the row's content is refused.
    REFUSALS: tuple[type[Exception], ...] = (sqlite3.IntegrityError, sqlite3.DataError, OverflowError, ValueError)

    def __init__(self, path: Path) -> None:
        self.name = f"sqlite:///{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)  # transactions by hand
            _write_ahead(self._db, time.monotonic() + BUSY_TIMEOUT_S)
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

    def write(self, rows: Sequence[EventRow], quarantined: Sequence[Quarantined]) -> Written:
        try:
            with self._transaction():
                inserted = self._db.executemany(self.INSERT, map(self._values, rows)).rowcount if rows else 0
                self._db.executemany(self.GONE, _gone_values(rows, quarantined))
                if quarantined:
                    self._db.executemany(self.QUARANTINE, _quarantine_values(quarantined))
                return self._advance(inserted, _devices(rows, quarantined))
        except self.REFUSALS as exc:
            raise RowsRefused(f"{self.name} refused an event: {exc}") from exc
        except sqlite3.Error as exc:
            raise ApplianceError(f"cannot store events in {self.name}: {exc}") from exc

    def write_each(self, rows: Sequence[EventRow]) -> tuple[Written, Refused]:
        inserted, refused = 0, []
        try:
            with self._transaction():
                for row in rows:
                    self._db.execute("SAVEPOINT event")
                    try:
                        inserted += self._db.execute(self.INSERT, self._values(row)).rowcount
                        self._db.executemany(self.GONE, _gone_values([row]))
                    except self.REFUSALS as exc:
                        self._db.execute("ROLLBACK TO event")
                        refused.append((row, f"{self.name} refused it: {exc}"))
                    self._db.execute("RELEASE event")
                written = self._advance(inserted, {row.device for row in rows})
        except sqlite3.Error as exc:
            raise ApplianceError(f"cannot store events in {self.name}: {exc}") from exc
        return written, refused

    def _advance(self, inserted: int, devices: set[str]) -> Written:
        """Inside the write's transaction (which holds SQLite's one write lock): each device's progress."""
        stored_upto, grown = {}, set()
        for device in sorted(devices):
            before = self._db.execute(self.PROGRESS, (device,)).fetchone()
            before = 0 if before is None else before[0]
            gone = self._db.execute(self.GONE_ABOVE, (device, before)).fetchall()
            stored_upto[device] = advance(before, gone, lambda n, device=device: [
                seq for (seq,) in self._db.execute(self.SEQS_ABOVE, (device, n, SEQ_CHUNK))])
            if stored_upto[device] > before:
                self._db.execute(self.RAISE, (device, stored_upto[device]))
                grown.add(device)
        return Written(inserted, stored_upto, frozenset(grown))

    def stored_upto(self, devices: Iterable[str]) -> dict[str, int]:
        try:
            return {device: (row[0] if (row := self._db.execute(self.PROGRESS, (device,)).fetchone()) else 0)
                    for device in devices}
        except sqlite3.Error as exc:
            raise ApplianceError(f"cannot read the devices' progress in {self.name}: {exc}") from exc

    def write_devices(self, reports: Sequence[DeviceReport]) -> None:
        try:
            with self._transaction():
                for statement, rows in device_writes(reports, self.DEVICE_SQL, _sqlite_time):
                    self._db.executemany(statement, rows)
        except sqlite3.Error as exc:
            raise ApplianceError(f"cannot store the device registry in {self.name}: {exc}") from exc

    def devices(self, health: bool = True) -> list[DeviceRecord]:
        try:
            return [_record(row) for row in self._db.execute(self.DEVICES.format(health="health" if health
                                                                                  else "NULL"))]
        except sqlite3.Error as exc:
            raise ApplianceError(f"cannot read the device registry in {self.name}: {exc}") from exc

    def maintain(self, now: datetime, retain_months: int) -> list[str]:
        oldest = partitions.cutoff(now, retain_months)
        if oldest is None:
            return []
        done = []
        try:
            with self._transaction():
                for table, column in (("events", "ts"), ("quarantine", "received_at")):
                    pruned = self._db.execute(f"DELETE FROM {table} WHERE julianday({column}) < julianday(?)",
                                              (_sqlite_time(oldest),)).rowcount
                    if pruned:
                        done.append(f"{pruned} {table} rows from before {oldest:%Y-%m-%d} deleted "
                                    f"(kept: {retain_months} months)")
        except sqlite3.Error as exc:
            raise ApplianceError(f"cannot apply the retention policy in {self.name}: {exc}") from exc
        return done

    def close(self) -> None:
        self._db.close()


class PostgresStore:
    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS quarantine (digest text PRIMARY KEY, device text, topic text NOT NULL, "
        "event_index integer, payload bytea NOT NULL, reason text NOT NULL, "
        "received_at timestamptz NOT NULL DEFAULT now())",
        "CREATE INDEX IF NOT EXISTS quarantine_device ON quarantine (device, received_at)",
        "CREATE TABLE IF NOT EXISTS gone (device text NOT NULL, first_seq bigint NOT NULL, last_seq bigint NOT NULL, "
        "PRIMARY KEY (device, first_seq, last_seq))",
        "CREATE TABLE IF NOT EXISTS device_progress (device text PRIMARY KEY, stored_upto bigint NOT NULL, "
        "updated_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE IF NOT EXISTS devices (device text PRIMARY KEY, status jsonb, status_session bigint, "
        "status_final integer, status_at timestamptz, reported jsonb, reported_at timestamptz, health jsonb, "
        "health_ts timestamptz, health_at timestamptz, health_period_s double precision, "
        "last_seen timestamptz NOT NULL)",
        "CREATE TABLE IF NOT EXISTS health_history (device text NOT NULL, ts timestamptz NOT NULL, fps real, "
        "temperature_c real, disk_free_mb real, rss_mb real, PRIMARY KEY (device, ts))",
    )
    #: A health report's figures kept for the console's charts: one sample per device per ``HEALTH_STEP_S`` at most.
    HEALTH_SAMPLE = ("INSERT INTO health_history (device, ts, fps, temperature_c, disk_free_mb, rss_mb) "
                     "SELECT %(device)s, %(ts)s, %(fps)s, %(temperature_c)s, %(disk_free_mb)s, %(rss_mb)s "
                     "WHERE NOT EXISTS (SELECT 1 FROM health_history WHERE device = %(device)s "
                     f"AND ts > %(ts)s - interval '{HEALTH_STEP_S} seconds' "
                     f"AND ts < %(ts)s + interval '{HEALTH_STEP_S} seconds') ON CONFLICT DO NOTHING")
    DEVICE_SQL = DeviceSql(
        seen="INSERT INTO devices (device, last_seen) VALUES (%s, %s) ON CONFLICT (device) DO UPDATE "
             "SET last_seen = GREATEST(devices.last_seen, excluded.last_seen)",
        known="INSERT INTO devices (device, last_seen) VALUES (%s, %s) ON CONFLICT (device) DO NOTHING",
        status="UPDATE devices SET status = %s::jsonb, status_session = %s, status_final = %s, status_at = %s "
               "WHERE device = %s AND (status_session IS NULL "
               "OR (%s::bigint, %s::integer) >= (status_session, status_final))",
        reported="UPDATE devices SET reported = %s::jsonb, reported_at = %s WHERE device = %s",
        health_at="UPDATE devices SET health_at = GREATEST(health_at, %s, %s) WHERE device = %s",
        health="UPDATE devices SET health = %s::jsonb, health_ts = %s, "
               "health_period_s = coalesce(%s, health_period_s) "
               "WHERE device = %s AND (health_ts IS NULL OR %s >= health_ts)")
    DEVICES = ("SELECT device, status, reported, {health}, health_at, health_period_s, last_seen FROM devices "
               "ORDER BY device")
    #: Each new row is also put in ``events_new`` for the rollups (``rollups.fold``); the rowcount is the new rows.
    INSERT = ("WITH new AS (INSERT INTO events (id, device, seq, ts, type, data, historical) "
              f"VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s) ON CONFLICT DO NOTHING {rollups.RETURNING}) "
              "INSERT INTO events_new SELECT * FROM new")
    #: A batch is copied into this session's staging table, then inserted from it in one statement.
    STAGING = ("CREATE TEMPORARY TABLE IF NOT EXISTS events_staging (id uuid, device text, seq bigint, "
               "ts timestamptz, type text, data jsonb, historical boolean) ON COMMIT DELETE ROWS")
    #: The session's temporary tables that ``insert`` needs (``IF NOT EXISTS``: any session may run them).
    TEMPORARY = (STAGING, rollups.NEW)
    COPY = "COPY events_staging (id, device, seq, ts, type, data, historical) FROM STDIN"
    FROM_STAGING = ("WITH new AS (INSERT INTO events (id, device, seq, ts, type, data, historical) "
                    "SELECT id, device, seq, ts, type, data, historical FROM events_staging ON CONFLICT DO NOTHING "
                    f"{rollups.RETURNING}) INSERT INTO events_new SELECT * FROM new")
    QUARANTINE = ("INSERT INTO quarantine (digest, device, topic, event_index, payload, reason) "
                  "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (digest) DO NOTHING")
    GONE = "INSERT INTO gone (device, first_seq, last_seq) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
    #: Every device gets its row (0) first, so that there is a row to lock.
    PROGRESS_ROWS = ("INSERT INTO device_progress (device, stored_upto) SELECT device, 0 FROM unnest(%s::text[]) "
                     "AS device ORDER BY device ON CONFLICT (device) DO NOTHING")
    LOCK = ("SELECT device, stored_upto FROM device_progress WHERE device = ANY(%s) ORDER BY device "
            "FOR UPDATE")
    PROGRESS = "SELECT device, stored_upto FROM device_progress WHERE device = ANY(%s)"
    GONE_ABOVE = "SELECT first_seq, last_seq FROM gone WHERE device = %s AND last_seq > %s"
    SEQS_ABOVE = "SELECT DISTINCT seq FROM events WHERE device = %s AND seq > %s ORDER BY seq LIMIT %s"
    RAISE = ("UPDATE device_progress SET stored_upto = %s, updated_at = now() "
             "WHERE device = %s AND stored_upto < %s")

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
                self._db.execute(partitions.SCHEMA_LOCK)
                self._migrated = partitions.create_schema(self._db.cursor())  # said by the first maintain
                for statement in self.SCHEMA:
                    self._db.execute(statement)
                self._migrated += rollups.create_schema(self._db.cursor())
            for statement in self.TEMPORARY:
                self._db.execute(statement)
        except psycopg.Error as exc:
            raise ApplianceError(f"event database {self.name} cannot be opened: {exc}") from exc

    @classmethod
    def insert(cls, cursor: Any, rows: Sequence[tuple[Any, ...]]) -> int:
        """Inside a transaction, in a session that ran ``TEMPORARY``: ``rows`` (``_values``) into ``events``, each
        new one once and counted in the rollups; how many were new.

        COPY into the staging table and one INSERT … SELECT: measured the fastest way in (``storebench``)."""
        with cursor.copy(cls.COPY) as copy:
            for row in rows:
                copy.write_row(row)
        inserted = cursor.execute(cls.FROM_STAGING).rowcount
        rollups.fold(cursor)
        return inserted

    @staticmethod
    def _values(row: EventRow) -> tuple[Any, ...]:
        return (row.id, row.device, row.seq, row.ts, row.type, row.data_json, row.historical)

    def write(self, rows: Sequence[EventRow], quarantined: Sequence[Quarantined]) -> Written:
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                inserted = 0
                if rows:
                    inserted = self.insert(cursor, [self._values(row) for row in rows])
                gone = _gone_values(rows, quarantined)
                if gone:
                    cursor.executemany(self.GONE, gone)
                if quarantined:
                    cursor.executemany(self.QUARANTINE, _quarantine_values(quarantined))
                return self._advance(cursor, inserted, _devices(rows, quarantined))
        except self._refusals as exc:
            raise RowsRefused(f"{self.name} refused an event: {exc}") from exc
        except self._errors as exc:
            raise ApplianceError(f"cannot store events in {self.name}: {exc}") from exc

    def write_each(self, rows: Sequence[EventRow]) -> tuple[Written, Refused]:
        inserted, refused = 0, []
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                for row in rows:
                    try:
                        with self._db.transaction():  # a savepoint: a refusal undoes this row only
                            cursor.execute(self.INSERT, self._values(row))
                            inserted += cursor.rowcount
                            if row.gone is not None:
                                cursor.execute(self.GONE, (row.device, *row.gone))
                    except self._refusals as exc:
                        refused.append((row, f"{self.name} refused it: {exc}"))
                rollups.fold(cursor)
                written = self._advance(cursor, inserted, {row.device for row in rows})
        except self._errors as exc:
            raise ApplianceError(f"cannot store events in {self.name}: {exc}") from exc
        return written, refused

    def _advance(self, cursor: Any, inserted: int, devices: set[str]) -> Written:
        """Inside the write's transaction, after its inserts: lock the devices' progress rows, then walk."""
        if not devices:
            return Written(inserted)
        ordered = sorted(devices)
        cursor.execute(self.PROGRESS_ROWS, (ordered,))
        before = dict(cursor.execute(self.LOCK, (ordered,)).fetchall())
        stored_upto, grown = {}, set()
        for device in ordered:
            gone = cursor.execute(self.GONE_ABOVE, (device, before[device])).fetchall()
            stored_upto[device] = advance(before[device], gone, lambda n, device=device: [
                seq for (seq,) in cursor.execute(self.SEQS_ABOVE, (device, n, SEQ_CHUNK)).fetchall()])
            if stored_upto[device] > before[device]:
                cursor.execute(self.RAISE, (stored_upto[device], device, stored_upto[device]))
                grown.add(device)
        return Written(inserted, stored_upto, frozenset(grown))

    def stored_upto(self, devices: Iterable[str]) -> dict[str, int]:
        wanted = list(devices)
        try:
            found = dict(self._db.execute(self.PROGRESS, (wanted,)).fetchall())
        except self._errors as exc:
            raise ApplianceError(f"cannot read the devices' progress in {self.name}: {exc}") from exc
        return {device: found.get(device, 0) for device in wanted}

    def write_devices(self, reports: Sequence[DeviceReport]) -> None:
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                for statement, rows in device_writes(reports, self.DEVICE_SQL, lambda at: at):
                    cursor.executemany(statement, rows)  # psycopg pipelines them: one round trip, not one a row
                samples = sorted(filter(None, map(health_sample, reports)), key=lambda s: (s["device"], s["ts"]))
                cursor.executemany(self.HEALTH_SAMPLE, samples)
        except self._errors as exc:
            raise ApplianceError(f"cannot store the device registry in {self.name}: {exc}") from exc

    def devices(self, health: bool = True) -> list[DeviceRecord]:
        try:
            query = self.DEVICES.format(health="health" if health else "NULL")
            return [_record(row) for row in self._db.execute(query).fetchall()]
        except self._errors as exc:
            raise ApplianceError(f"cannot read the device registry in {self.name}: {exc}") from exc

    def maintain(self, now: datetime, retain_months: int) -> list[str]:
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                done = partitions.maintain(cursor, now, retain_months)
                pruned = cursor.execute("DELETE FROM health_history WHERE ts < %s",
                                        (now - timedelta(days=HEALTH_HISTORY_DAYS),)).rowcount
                if pruned:
                    done.append(f"{pruned} health samples older than {HEALTH_HISTORY_DAYS} days deleted")
        except self._errors as exc:
            raise ApplianceError(f"cannot maintain the events' partitions in {self.name}: {exc}") from exc
        done, self._migrated = self._migrated + done, []
        return done

    def close(self) -> None:
        self._db.close()
