"""The console's PostgreSQL: a connection pool, and the schema brought up to date at start.

Invariants:

- One pool per process; ``connection()`` lends a connection inside a transaction that commits when the block
  ends cleanly and rolls back when it raises, so a request never leaves half of what it wrote.
- ``migrate`` first opens the fleet's own tables exactly as ingest does (``PostgresStore``: events partitioned
  by month, the device registry), then runs each console module's ``SCHEMA`` (idempotent statements) under an
  advisory lock, so two console processes starting together never race on the catalogue.
- A database that cannot be reached is one ``ApplianceError`` line naming it (its password never shown); once
  serving, a connection is checked before it is lent and a request waits at most ``POOL_WAIT_S`` for one, so
  an outage answers quickly (``errors``: what the pages catch) and the pool recovers by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from appliance.errors import ApplianceError, one_line
from appliance.ops.eventstore import PostgresStore, shown

#: How long a request waits for a connection (the database down: a clear 503 soon, not a 30 s hang).
POOL_WAIT_S = 5.0
#: pg_advisory_xact_lock key of the console's migrations (ingest's schema has its own).
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(7462310014)"


class Database:
    def __init__(self, url: str, max_size: int = 8) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ApplianceError(f"the console's database must be PostgreSQL (postgresql://...), not {shown(url)}")
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.url = url
        self.name = shown(url)
        try:  # psycopg's own reason (refused, no such socket, bad password) in one line, at once
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.Error as exc:
            raise ApplianceError(f"the console's database {self.name} cannot be reached: "
                                 f"{one_line(str(exc))}") from None
        self._pool = ConnectionPool(url, min_size=1, max_size=max_size, open=False, timeout=POOL_WAIT_S,
                                    check=ConnectionPool.check_connection,
                                    kwargs={"connect_timeout": 5, "application_name": "oivis-console"})
        self.errors = (psycopg.Error, PoolTimeout)
        try:
            self._pool.open(wait=True, timeout=15)
        except Exception as exc:  # noqa: BLE001 - psycopg_pool raises its own PoolTimeout with psycopg's reason logged
            self._pool.close()
            raise ApplianceError(f"the console's database {self.name} cannot be reached: {exc}") from None

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def exclusive(self, key: int) -> Iterator[None]:
        """The block runs while no other process (or thread) holds ``key``: a session advisory lock on a
        connection of its own, held across the block's own transactions and released however it ends."""
        with self.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            conn.commit()
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                conn.commit()

    def migrate(self, schemas: Iterable[Sequence[str]]) -> None:
        """The fleet's tables (as ingest makes them), then every console ``SCHEMA``, in order."""
        PostgresStore(self.url).close()
        with self.connection() as conn:
            conn.execute(MIGRATION_LOCK)
            for schema in schemas:
                for statement in schema:
                    conn.execute(statement)

    def close(self) -> None:
        self._pool.close()
