"""The on-device event spool: SQLite in WAL mode, where every event waits until it is stored or announced lost.

Why these choices:
- ``synchronous=FULL``: each committed transaction is on disk before ``append``
  returns, so a power cut loses no event the spool accepted (NORMAL could lose
  the last commits in WAL mode).  The cost is one fsync per append, and the
  shipper appends whole drains of the event bus per transaction.
- ``seq`` is allocated from a counter in ``meta`` inside the insert's
  transaction: it increases by exactly one per stored event, forever, and a
  rolled-back append leaves no gap.  Rows are deleted once shipped, so the
  counter, not ``max(seq)``, is the memory.
- Two modes of deletion.  Until the fleet has once confirmed a seq on
  ``{p}/events/stored``, a row goes at the broker's PUBACK (``acknowledge``).
  From the first confirmation on (``confirm``; the mode and the highest
  confirmed seq are kept in ``meta`` across restarts and never go back) the
  PUBACK only marks rows sent (``mark_sent``: ``sent_at``, ``attempts``) and a
  row goes when a confirmation covers its seq, or by a bound.  ``due`` hands out
  the rows never sent first, then the sent ones whose wait has passed:
  ``timeout`` doubled per earlier attempt, at most ``MAX_RESEND_S`` (a clock set
  back makes a row due at once rather than late).
- A confirmation above every seq the spool gave out means its numbering began
  again (the whole state directory was lost): its rows move up above the
  confirmed seq, in order, and numbering goes on from there.
- A spool that had to be replaced (its file lost or moved aside) continues at
  the floor and spools, in the same transaction, a ``dropped`` event with
  reason ``replaced``: every seq below the floor not yet stored is gone.
- The bounds drop the oldest rows, sent or not, and record, in the same
  transaction, a ``dropped`` event naming how many and which seq range: the
  receiver can tell an announced gap from a loss.  A report the bounds drop is
  folded into the new one, so no announced gap is ever forgotten.
- ``run`` numbers each opening, so the shipper can tell events of an earlier
  run (always ``historical``) from this run's (compared by monotonic time).
- The size bound is what the spool takes on disk: the database file, its WAL
  and the WAL index (``-shm``).  The WAL is kept to ``wal_bytes`` (an automatic
  checkpoint at that size, ``journal_size_limit``, and a TRUNCATE checkpoint
  after every acknowledgement, trim and expiry and whenever an append left it
  larger), and the database uses ``auto_vacuum=FULL``, so deleted events give
  their pages back to the filesystem at once.  Between operations
  ``disk_bytes() <= max_bytes`` holds.
- An append is refused, without writing, while the filesystem has less free
  space than the append needs plus ``headroom``: the spool never fills its
  filesystem to the last byte.  Acknowledged events are deleted a few at a
  time, each chunk checkpointed, so that room is enough to delete them on a
  full disk; the space they free lets appends succeed again without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from appliance.errors import ApplianceError
from appliance.events import Event
from appliance.fleet.counter import PersistentCounter

log = logging.getLogger(__name__)

#: After a size overflow the spool is trimmed to this fraction of its bound, so dropping is
#: occasional and each ``dropped`` event covers a real slice, not one event per insert.
LOW_WATER = 0.9
#: The WAL's share of the bound (within WAL_MIN..WAL_MAX bytes): checkpointed back when it grows past it.
WAL_SHARE = 1 / 16
WAL_MIN = 32 * 1024
WAL_MAX = 128 * 1024
#: The WAL index (``-shm``) SQLite keeps beside a WAL database: 32 KiB for any WAL this size.
SHM_BYTES = 32 * 1024
#: The smallest bound that holds the fixed costs (WAL, index, schema pages) and some events.
MIN_BYTES = 256 * 1024
#: What one stored event costs beyond its text (row and index headers, the id's index entry).
ROW_OVERHEAD = 64
#: Acknowledged events are deleted this many per transaction, each followed by a checkpoint, so a
#: deletion needs little free space: it fits in ``headroom`` even on a full filesystem.
DELETE_CHUNK = 16
#: Pages of free space an append leaves on the filesystem for deletions and checkpoints.
HEADROOM_PAGES = 32
#: Pages any write transaction puts in the WAL besides its rows (page 1, meta, index and pointer-map pages).
TRANSACTION_PAGES = 8
#: The longest wait before a sent, unconfirmed event goes again, however many times it went.
MAX_RESEND_S = 3600.0

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, ts TEXT NOT NULL, "
    "type TEXT NOT NULL, data TEXT NOT NULL, run INTEGER NOT NULL, mono REAL NOT NULL, at REAL NOT NULL, "
    "size INTEGER NOT NULL, sent_at REAL, attempts INTEGER NOT NULL DEFAULT 0)",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 1), ('run', 0), ('running', 0), "
    "('confirming', 0), ('stored_seq', 0)",
)
#: When a sent row is due again, with parameters (now, now, timeout, MAX_RESEND_S): ``timeout`` doubled
#: per earlier attempt, at most MAX_RESEND_S, after ``sent_at``; at once if ``sent_at`` is in the future
#: (the clock was set back).
_DUE_AT = "(CASE WHEN sent_at > ? THEN ? ELSE sent_at + MIN(? * (1 << MIN(attempts - 1, 30)), ?) END)"
#: Columns added since the first release, with their definitions: added to an older spool when it opens.
MIGRATIONS = (("sent_at", "REAL"), ("attempts", "INTEGER NOT NULL DEFAULT 0"))
#: Created once the columns exist: the rows never sent, in seq order, found without reading the sent ones.
INDEXES = ("CREATE INDEX IF NOT EXISTS events_sent ON events (sent_at, seq)",)

LastRun = Literal["first", "clean", "crash"]


def dropped_event(reason: str, count: int | None, first_seq: int | None = None, last_seq: int | None = None) -> Event:
    """The report of events that will never be published (``first_seq``/``last_seq`` None: never spooled;
    only ``first_seq`` None: every seq up to ``last_seq`` not yet stored; ``count`` None: not known)."""
    return Event("dropped", {"reason": reason, "count": count, "first_seq": first_seq, "last_seq": last_seq})


@dataclass(frozen=True)
class SpooledEvent:
    seq: int
    id: str
    ts: str
    type: str
    data: dict[str, Any]
    run: int
    mono: float
    attempts: int = 0

    def wire(self) -> dict[str, Any]:
        """The event as ``{p}/events`` carries it."""
        return {"id": self.id, "seq": self.seq, "ts": self.ts, "type": self.type, "data": self.data}


#: The seqs ever given out stay below a floor kept in a file beside the database, raised this
#: many at a time: a spool that had to be replaced (corrupt, deleted) continues above every seq
#: it ever gave out instead of starting at 1 again ("seq increases forever").
SEQ_FLOOR_STEP = 1000


class Spool:
    """Owned by one thread at a time (the shipper); opening raises ApplianceError naming the file."""

    def __init__(self, path: Path, max_bytes: int, max_age_s: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        if max_bytes < MIN_BYTES:
            raise ApplianceError(f"event spool {path}: a bound of {max_bytes} bytes cannot hold the spool's own "
                                 f"files; [fleet] spool_max_mb must be at least {MIN_BYTES / 2**20:.2f}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            raise ApplianceError(f"event spool {path} cannot be opened: {exc}") from exc
        try:
            self._prepare()
        except sqlite3.Error as exc:
            self._db.close()
            raise ApplianceError(f"event spool {path} cannot be opened: {exc}") from exc
        self._floor = PersistentCounter(path.with_name(path.name + ".seq-floor"))
        if self.last_run == "first" and self.next_seq < self._floor.value:
            log.warning("event spool %s is new but replaces one that numbered events: numbering continues at %d",
                        path, self._floor.value)
            self._continue_at(self._floor.value)
        self._floor.raise_to(self.next_seq + SEQ_FLOOR_STEP)

    def _continue_at(self, seq: int) -> None:
        """Number on from ``seq``, announcing every seq below it not yet stored as gone."""
        report = _Row.of(dropped_event("replaced", None, None, seq - 1))
        try:
            with self._transaction():
                seqs, added, next_seq = self._insert([report], seq)
                self._set("next_seq", next_seq)
        except sqlite3.Error as exc:
            raise self._fail("continue the numbering", exc) from exc
        self.next_seq, self.count, self.bytes = next_seq, self.count + len(seqs), self.bytes + added

    def _prepare(self) -> None:
        self._db.execute("PRAGMA auto_vacuum=FULL")  # takes effect on a new file; older ones are converted below
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"journal mode is {mode}, WAL is needed")
        self._db.execute("PRAGMA synchronous=FULL")
        self.page_bytes = self._db.execute("PRAGMA page_size").fetchone()[0]
        self.wal_bytes = max(WAL_MIN, min(WAL_MAX, int(self.max_bytes * WAL_SHARE)))
        self._db.execute(f"PRAGMA journal_size_limit={self.wal_bytes}")
        self._db.execute(f"PRAGMA wal_autocheckpoint={max(1, self.wal_bytes // self.page_bytes)}")
        self.headroom = HEADROOM_PAGES * self.page_bytes
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] != 1:
            self._convert()
        check = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed ({check}); move the file aside to start afresh "
                                        "(numbering continues above every event it held)")
        with self._transaction():
            for statement in SCHEMA:
                self._db.execute(statement)
            self._migrate()
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
            self.run = meta["run"] + 1
            self.last_run: LastRun = "first" if meta["run"] == 0 else "crash" if meta["running"] else "clean"
            self._set("run", self.run)
            self._set("running", 1)
        self.next_seq = meta["next_seq"]
        self.confirming, self.stored_seq = bool(meta["confirming"]), meta["stored_seq"]
        self.count, self.bytes = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()

    def _migrate(self) -> None:
        """Give a spool of an earlier release the columns of this one (its rows: never sent)."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
        for column, definition in MIGRATIONS:
            if column not in have:
                log.info("event spool %s: adding the column %s", self.path, column)
                self._db.execute(f"ALTER TABLE events ADD COLUMN {column} {definition}")
        for statement in INDEXES:
            self._db.execute(statement)

    def _convert(self) -> None:
        """Give a spool made before auto_vacuum the mode (a VACUUM rewrites it); without room for that it
        works on, but keeps the space of deleted events inside its file until the next opening."""
        log.info("event spool %s: converting to auto_vacuum (deleted events give their space back)", self.path)
        try:
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            log.warning("event spool %s cannot be converted to auto_vacuum now (%s); tried again at the next start",
                        self.path, exc)
            return
        self._checkpoint()  # VACUUM went through the WAL: a whole copy of the database

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _set(self, key: str, value: int) -> None:
        self._db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))

    def _fail(self, doing: str, exc: sqlite3.Error) -> ApplianceError:
        return ApplianceError(f"event spool {self.path} cannot {doing}: {exc} (is the disk full or read-only?)")

    # -- writing ---------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> list[int]:
        """Store ``events`` in one transaction and return their seqs; the bounds are applied in it too.

        Refused (ApplianceError, nothing written) while the filesystem lacks the space the
        events need plus ``headroom``.
        """
        rows = [_Row.of(event) for event in events]
        self._check_space(rows)
        # +1: trimming may add a ``dropped`` event.  The floor on disk stays above every seq given out.
        if self.next_seq + len(rows) + 1 > self._floor.value:
            self._floor.raise_to(self.next_seq + len(rows) + 1 + SEQ_FLOOR_STEP)
        trimmed = False
        try:
            with self._transaction():
                seqs, added, next_seq = self._insert(rows, self.next_seq)
                count, size = self.count + len(seqs), self.bytes + added
                if self._database_bytes() > self._database_limit():
                    count, size, next_seq = self._trim(count, size, next_seq)
                    trimmed = True
                self._set("next_seq", next_seq)
        except sqlite3.Error as exc:
            raise self._fail("store events", exc) from exc
        self.next_seq, self.count, self.bytes = next_seq, count, size
        if trimmed or self._file_bytes("-wal") > self.wal_bytes:
            self._checkpoint()
        return seqs

    def _check_space(self, rows: Sequence[_Row]) -> None:
        """Refuse an append the filesystem cannot take with ``headroom`` to spare.

        The append needs the WAL's room to grow back to ``wal_bytes`` (a TRUNCATE checkpoint
        emptied it), its rows twice (WAL frames, then the database at the checkpoint) and the
        pages every transaction writes whatever its size.
        """
        need = (max(0, self.wal_bytes - self._file_bytes("-wal")) + 2 * sum(row.size + ROW_OVERHEAD for row in rows)
                + TRANSACTION_PAGES * self.page_bytes + self.headroom)
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError as exc:
            raise ApplianceError(f"event spool {self.path}: cannot read the free space of its filesystem: "
                                 f"{exc}") from exc
        if free < need:
            raise ApplianceError(f"event spool {self.path} cannot store events: its filesystem has {free // 1024} "
                                 f"KiB free, {need // 1024} KiB are needed to store them and keep "
                                 f"{self.headroom // 1024} KiB for acknowledgements (the disk is full; events wait "
                                 "in memory until acknowledged or expired events make room)")

    def _insert(self, rows: Iterable[_Row], seq: int) -> tuple[list[int], int, int]:
        seqs, added, now = [], 0, time.time()
        for row in rows:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO events (seq, id, ts, type, data, run, mono, at, size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, row.id, row.ts, row.type, row.data, self.run, row.monotonic, now, row.size))
            if cursor.rowcount == 1:
                seqs.append(seq)
                added += row.size
                seq += 1
        return seqs, added, seq

    def _trim(self, count: int, size: int, next_seq: int) -> tuple[int, int, int]:
        """Drop the oldest rows until the database is down to the low-water mark and spool the ``dropped``
        report.  Pages are counted in the transaction (auto_vacuum hands the freed ones back at commit)."""
        target = self._database_limit() * LOW_WATER
        tally = _Tally()
        while self._database_bytes() > target:
            excess = self._database_bytes() - target
            chunk = _Tally()
            for row in self._db.execute("SELECT seq, size, type, data FROM events ORDER BY seq").fetchmany(10_000):
                chunk.add(*row)
                if chunk.bytes + chunk.rows * ROW_OVERHEAD >= excess:
                    break
            if not chunk.rows:
                break
            self._db.execute("DELETE FROM events WHERE seq <= ?", (chunk.last,))
            tally.join(chunk)
        if not tally.rows:
            return count, size, next_seq
        log.warning("event spool over %d bytes on disk: dropped the %d oldest events (reported: %d lost in "
                    "seq %s-%s)", self.max_bytes, tally.rows, tally.lost, tally.first, tally.last)
        seqs, added, next_seq = self._insert([_Row.of(tally.report("size"))], next_seq)
        return count - tally.rows + len(seqs), size - tally.bytes + added, next_seq

    # -- what it takes on disk ---------------------------------------------------------------------

    def disk_bytes(self) -> int:
        """What the spool's files take now: the database, its WAL and the WAL index."""
        return sum(self._file_bytes(suffix) for suffix in ("", "-wal", "-shm"))

    def _file_bytes(self, suffix: str) -> int:
        try:
            return os.stat(f"{self.path}{suffix}").st_size
        except FileNotFoundError:
            return 0

    def _database_limit(self) -> int:
        """The database file's share of the bound: the rest is for the WAL and its index."""
        return self.max_bytes - self.wal_bytes - SHM_BYTES

    def _database_bytes(self) -> int:
        """The database file's size once the current transaction commits (its free pages are released)."""
        pages, free = (self._db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("page_count", "freelist_count"))
        return (pages - free) * self.page_bytes

    def _checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it, so its space goes back to the filesystem."""
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("event spool %s: WAL checkpoint failed (%s); it is tried again after the next write",
                        self.path, exc)
            return
        if busy:
            log.debug("event spool %s: WAL checkpoint could not finish (busy)", self.path)

    def expire(self, now: float | None = None) -> int:
        """Drop events spooled more than ``max_age_s`` ago, reporting them; returns how many rows went."""
        cutoff = (time.time() if now is None else now) - self.max_age_s
        tally = _Tally()
        try:
            with self._transaction():
                for row in self._db.execute("SELECT seq, size, type, data FROM events WHERE at < ? ORDER BY seq",
                                            (cutoff,)).fetchall():
                    tally.add(*row)
                if not tally.rows:
                    return 0
                self._db.execute("DELETE FROM events WHERE at < ?", (cutoff,))
                seqs, added, next_seq = self._insert([_Row.of(tally.report("age"))], self.next_seq)
                self._set("next_seq", next_seq)
        except sqlite3.Error as exc:
            raise self._fail("expire old events", exc) from exc
        self._checkpoint()
        log.warning("event spool: dropped %d events older than %.0f days (seq %s-%s)",
                    tally.rows, self.max_age_s / 86400, tally.first, tally.last)
        self.next_seq = next_seq
        self.count, self.bytes = self.count - tally.rows + len(seqs), self.bytes - tally.bytes + added
        return tally.rows

    def acknowledge(self, first_seq: int, last_seq: int) -> int:
        """Forget the events the broker acknowledged (before confirming mode); returns how many rows went."""
        return self._delete(first_seq, last_seq)

    def mark_sent(self, seqs: Sequence[int], now: float) -> None:
        """Record that the broker acknowledged the events ``seqs`` (in confirming mode): they stay until
        confirmed, and go again once ``due`` says their wait is over."""
        try:
            with self._transaction():
                self._db.executemany("UPDATE events SET sent_at = ?, attempts = attempts + 1 WHERE seq = ?",
                                     [(now, seq) for seq in seqs])
        except sqlite3.Error as exc:
            raise self._fail("mark events sent", exc) from exc

    def confirm(self, seq: int) -> int:
        """The fleet stored (or knows gone) every event up to ``seq``: delete them, remember ``seq`` and
        confirming mode (for good); a ``seq`` lower than one already confirmed changes nothing.
        Returns how many rows went."""
        if self.confirming and seq <= self.stored_seq:
            return 0
        if seq >= self.next_seq:
            self._number_above(seq)
        try:
            with self._transaction():
                self._set("confirming", 1)
                self._set("stored_seq", max(seq, self.stored_seq))
        except sqlite3.Error as exc:
            raise self._fail("record a confirmation", exc) from exc
        self.confirming, self.stored_seq = True, max(seq, self.stored_seq)
        return self._delete(0, seq)

    def _number_above(self, stored_seq: int) -> None:
        """The fleet has stored seqs up to ``stored_seq``, which this spool never gave out: its numbering began
        again (the state directory was lost, floor and all).  Every row moves up above ``stored_seq``, in order
        and as never sent (the ranges ``dropped`` reports name move with them), and numbering goes on from there,
        so no event of this spool is taken for one the fleet already has."""
        lowest = self._db.execute("SELECT MIN(seq) FROM events").fetchone()[0]
        shift = stored_seq + 1 - (self.next_seq if lowest is None else lowest)
        log.warning("event spool %s: the fleet has stored seqs up to %d, but this spool has given out only seqs "
                    "below %d (was the state directory lost?): its %d events move up by %d", self.path, stored_seq,
                    self.next_seq, self.count, shift)
        self._floor.raise_to(self.next_seq + shift + SEQ_FLOOR_STEP)
        try:
            with self._transaction():
                self._db.execute("UPDATE events SET seq = -(seq + ?), sent_at = NULL, attempts = 0", (shift,))
                self._db.execute("UPDATE events SET seq = -seq")
                grown = 0
                for seq, data in self._db.execute("SELECT seq, data FROM events WHERE type = 'dropped'").fetchall():
                    report = json.loads(data)
                    for key in ("first_seq", "last_seq"):
                        if report[key] is not None:
                            report[key] += shift
                    moved = json.dumps(report, separators=(",", ":"))
                    grown += len(moved) - len(data)
                    self._db.execute("UPDATE events SET data = ?, size = size + ? WHERE seq = ?",
                                     (moved, len(moved) - len(data), seq))
                self._set("next_seq", self.next_seq + shift)
        except sqlite3.Error as exc:
            raise self._fail("number its events above the fleet's", exc) from exc
        self.next_seq, self.bytes = self.next_seq + shift, self.bytes + grown
        self._checkpoint()

    def _delete(self, first_seq: int, last_seq: int) -> int:
        """Delete the rows ``first_seq``..``last_seq``; returns how many went.

        Deleted ``DELETE_CHUNK`` rows per transaction, each followed by a TRUNCATE checkpoint
        (auto_vacuum has already released their pages): a full filesystem gets space back
        chunk by chunk, and a failure keeps the rest for the next acknowledgement.
        """
        gone = 0
        while first_seq <= last_seq:
            try:
                with self._transaction():
                    chunk = self._db.execute("SELECT seq, size FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq "
                                             "LIMIT ?", (first_seq, last_seq, DELETE_CHUNK)).fetchall()
                    if chunk:
                        self._db.execute("DELETE FROM events WHERE seq BETWEEN ? AND ?", (first_seq, chunk[-1][0]))
            except sqlite3.Error as exc:
                raise self._fail("delete shipped events", exc) from exc
            if not chunk:
                break
            self.count, self.bytes = self.count - len(chunk), self.bytes - sum(size for _, size in chunk)
            gone += len(chunk)
            first_seq = chunk[-1][0] + 1
            self._checkpoint()
        return gone

    # -- reading ---------------------------------------------------------------------------------

    def oldest(self, limit: int) -> list[SpooledEvent]:
        """The first ``limit`` events by seq, sent or not."""
        return self._select("", (), limit)

    def due(self, now: float, timeout: float, limit: int, resend: bool = True) -> list[SpooledEvent]:
        """Up to ``limit`` events to send now, by seq: those never sent, else (with ``resend``) the sent ones
        whose wait is over (``timeout`` doubled per earlier attempt, at most ``MAX_RESEND_S``, from ``sent_at``).
        Finding none of those reads every sent row: ``next_due`` says when asking again is worth it."""
        fresh = self._select("WHERE sent_at IS NULL", (), limit)
        if fresh or not resend:
            return fresh
        return self._select(f"WHERE sent_at IS NOT NULL AND {_DUE_AT} <= ?", (now, now, timeout, MAX_RESEND_S, now),
                            limit)

    def next_due(self, now: float, timeout: float) -> float | None:
        """Seconds until the first sent event is due again (0: now), None when no event waits for a confirmation."""
        try:
            [due_at] = self._db.execute(f"SELECT MIN({_DUE_AT}) FROM events WHERE sent_at IS NOT NULL",
                                        (now, now, timeout, MAX_RESEND_S)).fetchone()
        except sqlite3.Error as exc:
            raise self._fail("read events", exc) from exc
        return None if due_at is None else max(0.0, due_at - now)

    def _select(self, where: str, parameters: tuple[Any, ...], limit: int) -> list[SpooledEvent]:
        try:
            rows = self._db.execute(f"SELECT seq, id, ts, type, data, run, mono, attempts FROM events {where} "
                                    "ORDER BY seq LIMIT ?", (*parameters, limit)).fetchall()
        except sqlite3.Error as exc:
            raise self._fail("read events", exc) from exc
        return [SpooledEvent(seq, id_, ts, type_, json.loads(data), run, mono, attempts)
                for seq, id_, ts, type_, data, run, mono, attempts in rows]

    def status(self) -> dict[str, Any]:
        """For the health report: the backlog, what the spool takes on disk and where the sequence stands."""
        return {"pending": self.count, "bytes": self.bytes, "disk_bytes": self.disk_bytes(), "next_seq": self.next_seq,
                "stored_seq": self.stored_seq if self.confirming else None}

    def close(self, clean: bool) -> None:
        """``clean`` records an orderly stop, which the next run's ``boot`` event reports."""
        try:
            if clean:
                with self._transaction():
                    self._set("running", 0)
        except sqlite3.Error as exc:
            log.error("event spool %s: cannot record the clean stop: %s", self.path, exc)
        finally:
            self._db.close()


@dataclass
class _Tally:
    """The rows a bound deletes.  An earlier ``dropped`` report among them is folded into the new one
    (its count added, its range joined; one open at the start, like ``replaced``, opens the new one),
    so no announced gap is ever forgotten."""

    rows: int = 0
    lost: int = 0
    bytes: int = 0
    first: int | None = None
    last: int | None = None
    open: bool = False

    def add(self, seq: int, size: int, type_: str, data: str) -> None:
        self.rows, self.lost, self.bytes = self.rows + 1, self.lost + 1, self.bytes + size
        self.first = seq if self.first is None else min(self.first, seq)
        self.last = seq if self.last is None else max(self.last, seq)
        if type_ == "dropped":
            earlier = json.loads(data)
            self.lost += earlier["count"] or 0
            if earlier["first_seq"] is not None:
                self.first = min(self.first, earlier["first_seq"])
            elif earlier["last_seq"] is not None:
                self.open = True

    def join(self, other: _Tally) -> None:
        """Take in the rows ``other`` counted (a later, disjoint slice)."""
        self.rows, self.lost, self.bytes = self.rows + other.rows, self.lost + other.lost, self.bytes + other.bytes
        self.first = other.first if self.first is None else min(self.first, other.first or self.first)
        self.last = other.last if self.last is None else max(self.last, other.last or self.last)
        self.open = self.open or other.open

    def report(self, reason: str) -> Event:
        return dropped_event(reason, self.lost, None if self.open else self.first, self.last)


@dataclass(frozen=True)
class _Row:
    """An event as a row: its data serialised once, ``size`` the text it stores."""

    id: str
    ts: str
    type: str
    data: str
    monotonic: float
    size: int

    @staticmethod
    def of(event: Event) -> _Row:
        data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False, default=str)
        return _Row(event.id, event.ts, event.type, data, event.monotonic,
                    len(data) + len(event.type) + len(event.id) + len(event.ts))


class _Transaction:
    """``BEGIN IMMEDIATE`` … COMMIT, or ROLLBACK on any exception (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, trace: Any) -> None:
        if kind is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:
            self._db.execute("ROLLBACK")
