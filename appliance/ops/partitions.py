"""The fleet's events in PostgreSQL, partitioned by month of the event's ``ts``, and the retention policy.

Invariants:

- ``events`` is ``PARTITION BY RANGE (ts)``; each partition is ``events_yYYYYmMM``
  holding [first of the month, first of the next) in UTC, and ``events_default``
  holds what no month partition covers (a device whose clock is years off).  The
  primary key is (id, ts): an event is the same event only with the same ts, which a
  replay or re-send always has (the device re-sends the spooled JSON as it was).
- ``months_to_keep(now, ahead)`` are the months ``maintain`` makes sure exist: the
  current one, the one before (a device that was offline at the turn of the month)
  and ``ahead`` after it, so that partitions exist well before the rows that need them.
- A month partition is created as a table of its own, filled with the rows of its
  range that ``events_default`` holds (moved, not copied) and then attached, all in
  one transaction: attaching a range that the default partition still holds rows of
  is refused by PostgreSQL, and no row is ever outside ``events``.
- Retention: with ``retain_months`` = R > 0, a month partition whose whole range ends
  before the first of the month R months before ``now``'s is dropped (one statement,
  no row-by-row delete), and ``events_default`` loses its rows older than that
  cutoff; quarantine rows received before it are deleted too.  R = 0 keeps all.
  The devices' ``stored_upto`` and ``gone`` ranges stay: they describe what was
  received, not what is kept.
- Every change runs under the schema's advisory lock, so workers starting or
  maintaining together never race on the catalog.
- A database from before partitioning (``events`` a plain table) is migrated in
  place: the table becomes ``events_default`` (its rows untouched, its index renamed,
  its key on id alone replaced by the parent's (id, ts)) and is attached as the default
  partition; the months then move out of it as ``maintain`` creates them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

#: The lock every schema change takes (``pg_advisory_xact_lock(hashtext(...))``).
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('oivis-ingest-schema'))"
DEFAULT_RETAIN_MONTHS = 25
AHEAD_MONTHS = 2

EVENTS = ("CREATE TABLE IF NOT EXISTS events (id uuid NOT NULL, device text NOT NULL, seq bigint NOT NULL, "
          "ts timestamptz NOT NULL, type text NOT NULL, data jsonb NOT NULL, historical boolean NOT NULL, "
          "received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (id, ts)) PARTITION BY RANGE (ts)")
DEFAULT_PARTITION = "CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT"
INDEX = "CREATE INDEX IF NOT EXISTS events_device_seq ON events (device, seq)"
KIND = "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass('events')"
LEGACY = ("ALTER TABLE events RENAME TO events_default",
          "ALTER TABLE events_default DROP CONSTRAINT events_pkey",  # the parent's (id, ts) key replaces it
          "ALTER INDEX IF EXISTS events_device_seq RENAME TO events_default_device_seq")
ATTACH_LEGACY = "ALTER TABLE events ATTACH PARTITION events_default DEFAULT"
PARTITIONS = ("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
              "WHERE i.inhparent = to_regclass('events') AND c.relname ~ '^events_y[0-9]{4}m[0-9]{2}$'")


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(timezone.utc)
        return cls(moment.year, moment.month)

    @classmethod
    def named(cls, name: str) -> Month:
        """The month of a partition's name ``events_yYYYYmMM``."""
        return cls(int(name[8:12]), int(name[13:15]))

    def plus(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=timezone.utc)

    @property
    def name(self) -> str:
        return f"events_y{self.year:04d}m{self.month:02d}"


def months_to_keep(now: datetime, ahead: int = AHEAD_MONTHS) -> list[Month]:
    """The month partitions that must exist at ``now``: last month, this one, and ``ahead`` more."""
    this = Month.of(now)
    return [this.plus(offset) for offset in range(-1, ahead + 1)]


def expired(existing: list[Month], now: datetime, retain_months: int) -> list[Month]:
    """The months of ``existing`` that end before the retention's cutoff (none when ``retain_months`` is 0)."""
    if retain_months <= 0:
        return []
    first_kept = Month.of(now).plus(-retain_months)
    return sorted(month for month in existing if month < first_kept)


def cutoff(now: datetime, retain_months: int) -> datetime | None:
    """The oldest time kept: the first of the month ``retain_months`` before ``now``'s (None: keep all)."""
    return Month.of(now).plus(-retain_months).start if retain_months > 0 else None


def create_schema(cursor: Any) -> list[str]:
    """The partitioned ``events`` (migrating a plain one) with its default partition and index; what was done."""
    done = []
    kind = cursor.execute(KIND).fetchone()
    if kind is not None and kind[0] == "r":
        for statement in LEGACY:
            cursor.execute(statement)
        done.append("events is now partitioned by month: the rows stored before are in events_default")
    cursor.execute(EVENTS)
    if kind is not None and kind[0] == "r":
        cursor.execute(ATTACH_LEGACY)
    else:
        cursor.execute(DEFAULT_PARTITION)
    cursor.execute(INDEX)
    return done


def maintain(cursor: Any, now: datetime, retain_months: int, ahead: int = AHEAD_MONTHS) -> list[str]:
    """Inside a transaction: create the months ``months_to_keep`` lacks and apply the retention; what was done."""
    cursor.execute(SCHEMA_LOCK)
    existing = [Month.named(name) for (name,) in cursor.execute(PARTITIONS).fetchall()]
    done = []
    for month in months_to_keep(now, ahead):
        if month not in existing:
            moved = _create(cursor, month)
            done.append(f"partition {month.name} created" + (f" ({moved} rows moved into it from events_default)"
                                                             if moved else ""))
    for month in expired(existing, now, retain_months):
        rows = cursor.execute(f"SELECT count(*) FROM {month.name}").fetchone()[0]
        cursor.execute(f"DROP TABLE {month.name}")
        done.append(f"partition {month.name} dropped ({rows} events older than {retain_months} months)")
    oldest = cutoff(now, retain_months)
    if oldest is not None:
        pruned = cursor.execute("DELETE FROM events_default WHERE ts < %s", (oldest,)).rowcount
        if pruned:
            done.append(f"{pruned} events older than {oldest:%Y-%m-%d} deleted from events_default")
        pruned = cursor.execute("DELETE FROM quarantine WHERE received_at < %s", (oldest,)).rowcount
        if pruned:
            done.append(f"{pruned} quarantine rows received before {oldest:%Y-%m-%d} deleted")
    return done


def _create(cursor: Any, month: Month) -> int:
    """``month``'s partition with the default partition's rows of its range moved into it; how many moved."""
    bounds = (month.start, month.plus(1).start)
    cursor.execute(f"CREATE TABLE {month.name} (LIKE events INCLUDING DEFAULTS)")
    moved = cursor.execute(f"WITH moved AS (DELETE FROM events_default WHERE ts >= %s AND ts < %s RETURNING *) "
                           f"INSERT INTO {month.name} SELECT * FROM moved", bounds).rowcount
    low, high = (bound.isoformat() for bound in bounds)  # DDL takes no parameters: computed text only
    cursor.execute(f"ALTER TABLE events ATTACH PARTITION {month.name} FOR VALUES FROM ('{low}') TO ('{high}')")
    return moved
