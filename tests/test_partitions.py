"""Events partitioned by month in PostgreSQL, the retention policy, and the migration of a plain events table.

The month arithmetic is tested as pure functions of a given time; the rest against the
PostgreSQL of this machine, each test in a schema of its own (``postgres_db``)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from test_ingest import (  # noqa: F401 - fixtures
    DEVICE,
    Database,
    event,
    postgres_db_fixture,
    rows_of,
    sqlite_db_fixture,
)

from appliance.ops.eventstore import open_store
from appliance.ops.partitions import Month, cutoff, expired, months_to_keep


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_the_months_kept_span_last_month_to_two_ahead_across_a_year_end() -> None:
    assert [m.name for m in months_to_keep(at("2026-12-31T23:59:59"))] == [
        "events_y2026m11", "events_y2026m12", "events_y2027m01", "events_y2027m02"]
    assert [m.name for m in months_to_keep(at("2027-01-01T00:00:00"))] == [
        "events_y2026m12", "events_y2027m01", "events_y2027m02", "events_y2027m03"]
    assert Month.named("events_y2027m02") == Month(2027, 2) and Month(2027, 1).plus(-13) == Month(2025, 12)


def test_retention_drops_only_whole_months_before_the_cutoff() -> None:
    existing = [Month(2025, m) for m in range(1, 13)] + [Month(2026, 1)]
    now = at("2026-01-20T12:00:00")
    assert cutoff(now, 12) == at("2025-01-01T00:00:00")
    assert expired(existing, now, 12) == []
    assert expired(existing, now, 11) == [Month(2025, 1)]
    assert expired(existing, now, 0) == [] and cutoff(now, 0) is None


def partitions_of(database: Database) -> dict[str, int]:
    return {name: count for name, count in database.query(
        "SELECT c.relname, (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', "
        "c.relname), false, true, '')))[1]::text::int FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'events'::regclass")}


def test_events_go_to_their_month_and_move_out_of_the_default_partition_when_it_is_created(
        postgres_db: Database) -> None:
    store = open_store(postgres_db.url)
    try:
        assert store.maintain(at("2026-11-30T10:00:00"), 25) == [
            f"partition events_y{y}m{m:02d} created" for y, m in ((2026, 10), (2026, 11), (2026, 12), (2027, 1))]
        assert store.maintain(at("2026-11-30T11:00:00"), 25) == []  # idempotent
        rows = rows_of(event(1, ts="2026-11-30T10:00:00+00:00"), event(2, ts="2027-06-01T00:00:00+02:00"),
                       event(3, ts="2019-03-01T00:00:00Z"))
        assert store.write(rows, []).inserted == 3
        assert store.write(rows, []).inserted == 0  # a replay: the same events, stored once
        parts = partitions_of(postgres_db)
        assert parts["events_y2026m11"] == 1 and parts["events_default"] == 2  # 2027-05-31 22:00 UTC and 2019

        done = store.maintain(at("2027-05-10T09:00:00"), 25)
        assert "partition events_y2027m05 created (1 rows moved into it from events_default)" in done
        assert "1 events older than 2025-04-01 deleted from events_default" in done  # 2019, past 25 months
        parts = partitions_of(postgres_db)
        assert parts["events_y2027m05"] == 1 and parts["events_default"] == 0
        assert store.write(rows[:2], []).inserted == 0  # still deduped after the move
        assert store.stored_upto([DEVICE]) == {DEVICE: 3}
    finally:
        store.close()
    assert sorted(seq for _, _, seq, _, _ in postgres_db.rows()) == [1, 2]


def test_retention_drops_old_months_and_prunes_the_default_partition_and_quarantine(postgres_db: Database) -> None:
    store = open_store(postgres_db.url)
    try:
        store.maintain(at("2026-11-30T10:00:00"), 0)
        store.write(rows_of(event(1, ts="2026-10-03T10:00:00Z"), event(2, ts="2026-11-30T10:00:00Z"),
                            event(3, ts="2019-03-01T00:00:00Z")), [])
        postgres_db.query("INSERT INTO quarantine (digest, device, topic, payload, reason, received_at) VALUES "
                          "('old', 'screen-a', 't', '\\x00', 'r', '2026-09-01'), "
                          "('new', 'screen-a', 't', '\\x00', 'r', '2026-12-01')")
        done = store.maintain(at("2027-11-02T08:00:00"), 12)
        assert "partition events_y2026m10 dropped (1 events older than 12 months)" in done
        assert "1 events older than 2026-11-01 deleted from events_default" in done
        assert "1 quarantine rows received before 2026-11-01 deleted" in done
        assert "events_y2026m11" in partitions_of(postgres_db)  # the cutoff's own month is kept whole
        assert store.stored_upto([DEVICE]) == {DEVICE: 3}  # progress describes what was received
    finally:
        store.close()
    assert [seq for _, _, seq, _, _ in postgres_db.rows()] == [2]
    assert [digest for (digest,) in postgres_db.query("SELECT digest FROM quarantine")] == ["new"]


def test_a_plain_events_table_from_before_is_migrated_in_place(postgres_db: Database) -> None:
    postgres_db.query(
        "CREATE TABLE events (id uuid PRIMARY KEY, device text NOT NULL, seq bigint NOT NULL, ts timestamptz NOT "
        "NULL, type text NOT NULL, data jsonb NOT NULL, historical boolean NOT NULL, received_at timestamptz NOT "
        "NULL DEFAULT now())")
    postgres_db.query("CREATE INDEX events_device_seq ON events (device, seq)")
    old = rows_of(event(1, ts="2026-11-29T10:00:00Z"), event(2, ts="2025-01-01T00:00:00Z"))
    for row in old:
        postgres_db.query(f"INSERT INTO events (id, device, seq, ts, type, data, historical) VALUES ('{row.id}', "
                          f"'{row.device}', {row.seq}, '{row.ts.isoformat()}', '{row.type}', '{row.data_json}', "
                          "false)")
    store = open_store(postgres_db.url)
    try:
        done = store.maintain(at("2026-11-30T10:00:00"), 0)
        assert done[0] == "events is now partitioned by month: the rows stored before are in events_default"
        assert "partition events_y2026m11 created (1 rows moved into it from events_default)" in done
        assert store.write(old + rows_of(event(3)), []).inserted == 1  # the old rows still dedupe
        assert store.maintain(at("2026-11-30T11:00:00"), 0) == []  # said once
    finally:
        store.close()
    assert sorted(seq for _, _, seq, _, _ in postgres_db.rows()) == [1, 2, 3]
    assert partitions_of(postgres_db)["events_default"] == 1
    store = open_store(postgres_db.url)  # opening a partitioned database again changes nothing
    store.close()


def test_sqlite_applies_the_same_retention_by_deleting_rows(sqlite_db: Database) -> None:
    store = open_store(sqlite_db.url)
    try:
        store.write(rows_of(event(1, ts="2026-10-31T23:30:00-01:00"), event(2, ts="2026-10-31T23:30:00+01:00")), [])
        assert store.maintain(at("2027-11-02T08:00:00"), 0) == []
        assert store.maintain(at("2027-11-02T08:00:00"), 12) == [
            "1 events rows from before 2026-11-01 deleted (kept: 12 months)"]
    finally:
        store.close()
    assert [seq for _, _, seq, _, _ in sqlite_db.rows()] == [1]  # 2026-11-01 00:30 UTC is kept


@pytest.mark.parametrize("months", [-1, 1201])
def test_ingest_refuses_a_retention_out_of_range(months: int, capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.ops.cli import main

    assert main(["ingest", "--broker", "127.0.0.1:1", "--retain-months", str(months)]) == 1
    assert capsys.readouterr().err.startswith(f"error: --retain-months {months}: 0 (keep all) to 1200")
