"""The on-device event spool: SQLite in WAL mode, where every event waits until the broker has it.

Why these choices:
- ``synchronous=FULL``: each committed transaction is on disk before ``append``
  returns, so a power cut loses no event the spool accepted (NORMAL could lose
  the last commits in WAL mode).  The cost is one fsync per append, and the
  shipper appends whole drains of the event bus per transaction.
- ``seq`` is allocated from a counter in ``meta`` inside the insert's
  transaction: it increases by exactly one per stored event, forever, and a
  rolled-back append leaves no gap.  Rows are deleted after the PUBACK, so the
  counter, not ``max(seq)``, is the memory.
- The bounds drop the oldest rows and record, in the same transaction, a
  ``dropped`` event naming how many and which seq range: the receiver can tell
  an announced gap from a loss.
- ``run`` numbers each opening, so the shipper can tell events of an earlier
  run (always ``historical``) from this run's (compared by monotonic time).
"""

from __future__ import annotations

import json
import logging
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

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, ts TEXT NOT NULL, "
    "type TEXT NOT NULL, data TEXT NOT NULL, run INTEGER NOT NULL, mono REAL NOT NULL, at REAL NOT NULL, "
    "size INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', 1), ('run', 0), ('running', 0)",
)

LastRun = Literal["first", "clean", "crash"]


def dropped_event(reason: str, count: int, first_seq: int | None = None, last_seq: int | None = None) -> Event:
    """The report of events that will never be published (``first_seq``/``last_seq`` None: never spooled)."""
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
        try:
            with self._transaction():
                self._set("next_seq", seq)
        except sqlite3.Error as exc:
            raise self._fail("continue the numbering", exc) from exc
        self.next_seq = seq

    def _prepare(self) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"journal mode is {mode}, WAL is needed")
        self._db.execute("PRAGMA synchronous=FULL")
        check = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed ({check}); move the file aside to start afresh "
                                        "(numbering continues above every event it held)")
        with self._transaction():
            for statement in SCHEMA:
                self._db.execute(statement)
            meta = dict(self._db.execute("SELECT key, value FROM meta"))
            self.run = meta["run"] + 1
            self.last_run: LastRun = "first" if meta["run"] == 0 else "crash" if meta["running"] else "clean"
            self._set("run", self.run)
            self._set("running", 1)
        self.next_seq = self._meta("next_seq")
        self.count, self.bytes = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _meta(self, key: str) -> int:
        return self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def _set(self, key: str, value: int) -> None:
        self._db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))

    def _fail(self, doing: str, exc: sqlite3.Error) -> ApplianceError:
        return ApplianceError(f"event spool {self.path} cannot {doing}: {exc} (is the disk full or read-only?)")

    # -- writing ---------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> list[int]:
        """Store ``events`` in one transaction and return their seqs; the bounds are applied in it too."""
        # +1: trimming may add a ``dropped`` event.  The floor on disk stays above every seq given out.
        if self.next_seq + len(events) + 1 > self._floor.value:
            self._floor.raise_to(self.next_seq + len(events) + 1 + SEQ_FLOOR_STEP)
        try:
            with self._transaction():
                seqs, added, next_seq = self._insert(events, self.next_seq)
                count, size = self.count + len(seqs), self.bytes + added
                if size > self.max_bytes:
                    count, size, next_seq = self._trim(count, size, next_seq)
                self._set("next_seq", next_seq)
        except sqlite3.Error as exc:
            raise self._fail("store events", exc) from exc
        self.next_seq, self.count, self.bytes = next_seq, count, size
        return seqs

    def _insert(self, events: Iterable[Event], seq: int) -> tuple[list[int], int, int]:
        seqs, added, now = [], 0, time.time()
        for event in events:
            data = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False, default=str)
            size = len(data) + len(event.type) + len(event.id) + len(event.ts)
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO events (seq, id, ts, type, data, run, mono, at, size) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, event.id, event.ts, event.type, data, self.run, event.monotonic, now, size))
            if cursor.rowcount == 1:
                seqs.append(seq)
                added += size
                seq += 1
        return seqs, added, seq

    def _trim(self, count: int, size: int, next_seq: int) -> tuple[int, int, int]:
        """Drop the oldest rows down to the low-water mark and spool the ``dropped`` report."""
        target = size - self.max_bytes * LOW_WATER
        tally = _Tally()
        rows = self._db.execute("SELECT seq, size, type, data FROM events ORDER BY seq")
        for row in rows:
            tally.add(*row)
            if tally.bytes >= target:
                break
        rows.close()
        self._db.execute("DELETE FROM events WHERE seq <= ?", (tally.last,))
        log.warning("event spool over %d bytes: dropped the %d oldest events (reported: %d lost in seq %s-%s)",
                    self.max_bytes, tally.rows, tally.lost, tally.first, tally.last)
        seqs, added, next_seq = self._insert([tally.report("size")], next_seq)
        return count - tally.rows + len(seqs), size - tally.bytes + added, next_seq

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
                seqs, added, next_seq = self._insert([tally.report("age")], self.next_seq)
                self._set("next_seq", next_seq)
        except sqlite3.Error as exc:
            raise self._fail("expire old events", exc) from exc
        log.warning("event spool: dropped %d events older than %.0f days (seq %s-%s)",
                    tally.rows, self.max_age_s / 86400, tally.first, tally.last)
        self.next_seq = next_seq
        self.count, self.bytes = self.count - tally.rows + len(seqs), self.bytes - tally.bytes + added
        return tally.rows

    def acknowledge(self, first_seq: int, last_seq: int) -> int:
        """Forget the events the broker acknowledged; returns how many rows went."""
        try:
            with self._transaction():
                count, size = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events WHERE seq BETWEEN ? AND ?",
                    (first_seq, last_seq)).fetchone()
                self._db.execute("DELETE FROM events WHERE seq BETWEEN ? AND ?", (first_seq, last_seq))
        except sqlite3.Error as exc:
            raise self._fail("delete acknowledged events", exc) from exc
        self.count, self.bytes = self.count - count, self.bytes - size
        return count

    # -- reading ---------------------------------------------------------------------------------

    def oldest(self, limit: int) -> list[SpooledEvent]:
        try:
            rows = self._db.execute("SELECT seq, id, ts, type, data, run, mono FROM events ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()
        except sqlite3.Error as exc:
            raise self._fail("read events", exc) from exc
        return [SpooledEvent(seq, id_, ts, type_, json.loads(data), run, mono)
                for seq, id_, ts, type_, data, run, mono in rows]

    def status(self) -> dict[str, Any]:
        """For the health report: the backlog and where the sequence stands."""
        return {"pending": self.count, "bytes": self.bytes, "next_seq": self.next_seq}

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
    (its count added, its range joined), so no announced gap is ever forgotten."""

    rows: int = 0
    lost: int = 0
    bytes: int = 0
    first: int | None = None
    last: int | None = None

    def add(self, seq: int, size: int, type_: str, data: str) -> None:
        self.rows, self.lost, self.bytes = self.rows + 1, self.lost + 1, self.bytes + size
        self.first = seq if self.first is None else min(self.first, seq)
        self.last = seq if self.last is None else max(self.last, seq)
        if type_ == "dropped":
            earlier = json.loads(data)
            self.lost += earlier["count"]
            if earlier["first_seq"] is not None:
                self.first = min(self.first, earlier["first_seq"])

    def report(self, reason: str) -> Event:
        return dropped_event(reason, self.lost, self.first, self.last)


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
