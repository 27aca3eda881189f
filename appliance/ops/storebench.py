"""``fleet store-bench``: how fast PostgreSQL takes the fleet's events, by write method and batch size.

It measures, on the partitioned ``events`` table that ingest creates (in a schema of
its own, dropped afterwards), the three ways of writing a batch of events with
dedupe (``ON CONFLICT DO NOTHING``) in one transaction:

- ``executemany``: one INSERT per row, sent by psycopg in one pipeline;
- ``values``: multi-row INSERT … VALUES (…), (…), … (up to 1,000 rows a statement);
- ``copy``: COPY into a temporary staging table, then one INSERT … SELECT — the
  method ``PostgresStore`` uses (``PostgresStore.insert``).

Each batch is new events and, in the same transaction, a re-sent half of the
previous batch (a device's replay), so dedupe is part of what is measured.  For each
method and batch size it prints events stored per second of wall time and per CPU
second (this client plus the PostgreSQL backend serving it, read from /proc: the
database must run on this machine for the second figure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError
from appliance.ops.eventstore import PostgresStore

Values = tuple[Any, ...]
POSTGRES = "postgresql://postgres@127.0.0.1/test"
VALUES_CHUNK = 1000


def _executemany(cursor: Any, rows: Sequence[Values]) -> int:
    cursor.executemany(PostgresStore.INSERT, rows)
    return cursor.rowcount


def _values(cursor: Any, rows: Sequence[Values]) -> int:
    inserted = 0
    head, _, tail = PostgresStore.INSERT.partition("VALUES ")
    one, _, conflict = tail.partition(") ")
    for start in range(0, len(rows), VALUES_CHUNK):
        chunk = rows[start:start + VALUES_CHUNK]
        statement = f"{head}VALUES {', '.join([one + ')'] * len(chunk))} {conflict}"
        inserted += cursor.execute(statement, [value for row in chunk for value in row]).rowcount
    return inserted


METHODS: dict[str, Callable[[Any, Sequence[Values]], int]] = {
    "executemany": _executemany, "values": _values, "copy": PostgresStore.insert}


def _rows(count: int, device: int, first_seq: int, start: datetime) -> list[Values]:
    """``count`` events like a screen's (a game played, ~120 bytes of data), seqs from ``first_seq``."""
    return [(str(uuid.uuid4()), f"bench-{device:04d}", first_seq + n, start + timedelta(milliseconds=n), "rps.played",
             json.dumps({"result": "win", "rounds": 3, "campaign": "winter-2026", "ms": 1234 + n}), False)
            for n in range(count)]


def _cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (this machine's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Figure:
    method: str
    batch: int
    events: int
    seconds: float
    cpu_s: float | None

    def line(self) -> str:
        per_cpu = f"{self.events / self.cpu_s:>10,.0f}" if self.cpu_s else "         -"
        return f"{self.method:<12} {self.batch:>6,} {self.events / self.seconds:>12,.0f} {per_cpu}"


def measure(url: str, method: str, batch: int, events: int) -> Figure:
    """``events`` new events (plus half a batch re-sent each time) written ``batch`` at a time by ``method``."""
    store = PostgresStore(url)
    try:
        connection = store._db
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        write = METHODS[method]
        start = datetime.now(timezone.utc)
        batches = [_rows(batch, n % 200, n * batch + 1, start) for n in range(max(1, events // batch))]
        stored, previous = 0, []
        local = os.path.exists(f"/proc/{backend}")
        cpu = time.process_time() + (_cpu(backend) if local else 0.0)
        began = time.perf_counter()
        for rows in batches:
            with connection.transaction(), connection.cursor() as cursor:
                inserted = write(cursor, rows + previous)
            if inserted != len(rows):
                raise ApplianceError(f"{method}: {inserted} rows inserted of {len(rows)} new and "
                                     f"{len(previous)} re-sent: dedupe failed")
            stored += inserted
            previous = rows[: batch // 2]
        seconds = time.perf_counter() - began
        used = time.process_time() + (_cpu(backend) if local else 0.0) - cpu
        return Figure(method, batch, stored, seconds, used if local else None)
    finally:
        store.close()


def run(url: str, batches: Sequence[int], events: int, out: Any = sys.stdout) -> list[Figure]:
    """Every method at every batch size, each in a fresh schema (so no run warms the next one's table)."""
    import psycopg

    figures = []
    print(f"{'method':<12} {'batch':>6} {'events/s':>12} {'per CPU-s':>10}", file=out)
    for size in batches:
        for method in METHODS:
            schema = f"store_bench_{uuid.uuid4().hex[:12]}"
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(f"CREATE SCHEMA {schema}")
                try:
                    separator = "&" if "?" in url else "?"
                    figure = measure(f"{url}{separator}options=-csearch_path%3D{schema}", method, size, events)
                finally:
                    admin.execute(f"DROP SCHEMA {schema} CASCADE")
            figures.append(figure)
            print(figure.line(), file=out, flush=True)
    return figures


def add_store_bench_command(actions: argparse._SubParsersAction) -> None:
    bench = actions.add_parser("store-bench", help="events/s into PostgreSQL by write method (COPY, multi-row "
                               "VALUES, executemany) and batch size")
    bench.add_argument("--db", default=POSTGRES, metavar="URL", help=f"PostgreSQL (default {POSTGRES}); a "
                       "schema of its own is created and dropped")
    bench.add_argument("--events", type=int, default=20000, metavar="N", help="new events per run (default 20000)")
    bench.add_argument("--batch", type=int, action="append", metavar="N",
                       help="rows per transaction (repeatable; default 20, 200 and 2000)")
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    if not 100 <= args.events <= 1_000_000:
        raise ApplianceError(f"--events {args.events}: 100 to 1,000,000")
    sizes = args.batch or [20, 200, 2000]
    if any(not 1 <= size <= 10_000 for size in sizes):
        raise ApplianceError(f"--batch {sizes}: each 1 to 10,000")
    run(args.db, sizes, args.events)
    return 0
