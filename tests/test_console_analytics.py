"""The console's analytics: rollups that ingest maintains (equal to a direct aggregate over the events, whatever
the redeliveries and concurrent writers), and the numbers each analytics query gives for a known set of events,
on the PostgreSQL of this machine, each test in a schema of its own."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from test_ingest import Database, postgres_db_fixture  # noqa: F401 - a fixture

from appliance.console import analytics
from appliance.console.analytics import Filter
from appliance.errors import ApplianceError
from appliance.ops import rollups
from appliance.ops.eventbatch import EventRow
from appliance.ops.eventstore import PostgresStore

T0 = datetime(2026, 11, 29, 22, 10, tzinfo=timezone.utc)   # 23:10 in Paris: the next hour is another day there
DAY = (datetime(2026, 11, 28, tzinfo=timezone.utc), datetime(2026, 12, 2, tzinfo=timezone.utc))


@pytest.fixture(name="url")
def url_fixture(postgres_db: Database) -> str:
    """A throw-away schema on the machine's PostgreSQL (ingest's tests' fixture)."""
    return postgres_db.url


@pytest.fixture(name="conn")
def conn_fixture(url: str) -> Iterator[Any]:
    import psycopg

    PostgresStore(url).close()
    with psycopg.connect(url) as conn:
        yield conn


def row(device: str, seq: int, type_: str, minutes: float = 0, **data: Any) -> EventRow:
    return EventRow(str(uuid.uuid4()), device, seq, T0 + timedelta(minutes=minutes), "", type_,
                    json.dumps(data), False, "", None)  # type: ignore[arg-type]


def session(device: str, seq: int, campaign: str, minutes: float, experience: str | None, *body: tuple[str, dict],
            dwell: float = 30.0) -> list[EventRow]:
    """A shopper's session as the kiosk publishes it (every event with the session and campaign)."""
    sid = str(uuid.uuid4())
    events = [("session_start", {})] + ([("experience_chosen", {"experience": experience})] if experience else [])
    events += [*body, ("session_end", {"dwell_s": dwell, "gestures": {}})]
    return [row(device, seq + n, type_, minutes + n / 10, session=sid, campaign=campaign, **data)
            for n, (type_, data) in enumerate(events)]


def known_events() -> list[EventRow]:
    """Two sites (mall-01: two screens; mall-02: one), two campaigns, a day boundary in Paris at 23:00 UTC."""
    a, b, c = "mall-01-screen-1", "mall-01-screen-2", "mall-02-screen-1"
    return [
        *session(a, 1, "winter", 0, "rps", ("rps_round", {"outcome": "win"}), ("rps_round", {"outcome": "draw"}),
                 ("rps_round", {"outcome": "win"}), ("rps_result", {"winner": "shopper", "score": {}}), dwell=40),
        *session(a, 10, "winter", 70, "posegame", ("pose_final", {"players": 2, "scores": {"left": 72, "right": 35},
                                                                  "winner": "left"}), dwell=60),
        *session(b, 1, "winter", 5, "photobooth", ("photo_taken", {"photo_id": "p1"}),
                 ("photo_shared", {"photo_id": "p1"}), ("photo_printed", {"photo_id": "p1"}), dwell=20),
        *session(c, 1, "spring", 75, "rps", ("rps_round", {"outcome": "lose"}), ("rps_round", {"outcome": "lose"}),
                 ("rps_result", {"winner": "star"}), dwell=50),
        *session(c, 10, "spring", 80, None, dwell=5),
        row(c, 20, "boot", 1, version="1.0"),
        row(c, 21, "pose_final", 90, campaign="spring", scores={"you": 100, "bad": "x"}),
    ]


def write(url: str, rows: list[EventRow]) -> int:
    store = PostgresStore(url)
    try:
        return store.write(rows, []).inserted
    finally:
        store.close()


def differences(conn: Any) -> list[str]:
    found = rollups.check(conn.cursor(), *DAY)
    conn.commit()
    return found


def rollup_rows(conn: Any) -> list[tuple[Any, ...]]:
    rows = [row for table in rollups.TABLES
            for row in conn.execute(f"SELECT '{table}', * FROM {table} ORDER BY 2, 3, 4, 5").fetchall()]
    conn.commit()
    return rows


def test_ingest_keeps_the_rollups_equal_to_the_events_through_redeliveries(url: str, conn: Any) -> None:
    events = known_events()
    assert write(url, events) == len(events)
    assert write(url, events[:7] + events[-3:]) == 0                  # a redelivered batch counts nothing
    store = PostgresStore(url)
    try:
        extra = row("mall-02-screen-1", 22, "session_start", 95, campaign="spring")
        written, refused = store.write_each([events[0], extra])        # row by row: only the new one counts
        assert (written.inserted, refused) == (1, [])
    finally:
        store.close()
    assert differences(conn) == []
    n = dict(conn.execute("SELECT type, sum(n) FROM fleet_hours GROUP BY type").fetchall())
    assert n["session_start"] == 6 and n["rps_round"] == 5 and n["pose_score"] == 3 and n["boot"] == 1
    conn.execute("UPDATE event_hours SET n = n + 1 WHERE type = 'boot'")
    assert len(differences(conn)) == 3                  # the check sees a wrong count (and the sites' and fleet's sums)


def test_concurrent_writers_of_overlapping_batches_count_each_event_once(url: str, conn: Any) -> None:
    events = [row(f"mall-0{n % 3}-screen-{n % 5}", n, "experience_chosen", n % 120, campaign=f"c{n % 2}",
                  experience=("rps", "posegame", "photobooth")[n % 3]) for n in range(1, 601)]
    batches = [events[start:start + 50] for start in range(0, len(events), 25)]  # every event in two batches
    inserted, failures = [], []

    def writer(order: list[list[EventRow]]) -> None:
        store = PostgresStore(url)
        try:
            inserted.extend(store.write(batch, []).inserted for batch in order)
        except Exception as exc:  # noqa: BLE001 - a deadlock would be seen here and reported below
            failures.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(order,)) for order in (batches, batches[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and sum(inserted) == len(events)
    assert differences(conn) == []
    plays = dict(conn.execute("SELECT label, sum(n) FROM fleet_hours GROUP BY label").fetchall())
    assert plays == {"rps": 200, "posegame": 200, "photobooth": 200}


def test_the_analytics_numbers_of_known_events(url: str, conn: Any) -> None:
    write(url, known_events())
    fleet = Filter(*DAY, tz="UTC")
    assert analytics.totals(conn, fleet) == analytics.Totals(
        sessions=5, mean_dwell_s=(40 + 60 + 20 + 50 + 5) / 5, plays=4, rps_games=2, pose_games=2, photos=1,
        shared=1, printed=1, scanned=0)
    assert analytics.plays_per_experience(conn, fleet) == [("rps", 2), ("photobooth", 1), ("posegame", 1)]
    assert analytics.rps_results(conn, fleet) == analytics.RpsResults(1, 1, 0, 2, 2, 1)
    scores = analytics.pose_scores(conn, fleet)
    assert [band for band in scores.bands if band[1]] == [(30, 1), (70, 1), (100, 1)]
    assert [(day, games, mean) for day, games, mean in scores.per_day if games] == [
        (date(2026, 11, 29), 2, (72 + 35 + 100) / 3)]
    per_hour = dict(analytics.sessions_per_hour(conn, fleet))
    assert per_hour[datetime(2026, 11, 29, 22, tzinfo=timezone.utc)] == 2
    assert per_hour[datetime(2026, 11, 29, 23, tzinfo=timezone.utc)] == 3
    assert sum(per_hour.values()) == 5 and len(per_hour) == 4 * 24
    assert analytics.campaigns(conn, fleet) == ["spring", "winter"]


def test_days_and_hours_are_the_operators(url: str, conn: Any) -> None:
    write(url, known_events())
    utc = {day: n for day, n, _ in analytics.sessions_per_day(conn, Filter(*DAY, tz="UTC")) if n}
    paris = {day: n for day, n, _ in analytics.sessions_per_day(conn, Filter(*DAY, tz="Europe/Paris")) if n}
    assert utc == {date(2026, 11, 29): 5}
    assert paris == {date(2026, 11, 29): 2, date(2026, 11, 30): 3}        # 23:00 UTC is midnight in Paris
    hours = analytics.sessions_per_hour(conn, Filter(*DAY, tz="Europe/Paris"))
    busy = [(hour.isoformat(), n) for hour, n in hours if n]
    assert busy == [("2026-11-29T23:00:00+01:00", 2), ("2026-11-30T00:00:00+01:00", 3)]
    dwell = {day: mean for day, _, mean in analytics.sessions_per_day(conn, Filter(*DAY, tz="Europe/Paris"))}
    assert dwell[date(2026, 11, 29)] == 30 and dwell[date(2026, 11, 30)] == pytest.approx(115 / 3)
    pose = analytics.pose_scores(conn, Filter(*DAY, tz="Europe/Paris")).per_day
    assert [(day, games, mean) for day, games, mean in pose if games] == [(date(2026, 11, 30), 2, (72 + 35 + 100) / 3)]


def test_filters_by_campaign_site_and_screen(url: str, conn: Any) -> None:
    write(url, known_events())
    narrows: dict[str, dict[str, str]] = {
        "winter": {"campaign": "winter"}, "spring": {"campaign": "spring"}, "mall-01": {"site": "mall-01"},
        "mall-0": {"site": "mall-0"}, "mall": {"site": "mall"},
        "mall-02 spring": {"site": "mall-02", "campaign": "spring"},
        "mall-01 spring": {"site": "mall-01", "campaign": "spring"}, "screen-2": {"device": "mall-01-screen-2"},
        "screen-2 of mall-02": {"device": "mall-01-screen-2", "site": "mall-02"}}
    sessions = {name: analytics.totals(conn, Filter(*DAY, **narrow)).sessions for name, narrow in narrows.items()}
    assert sessions == {"winter": 3, "spring": 2, "mall-01": 3, "mall-0": 0, "mall": 5, "mall-02 spring": 2,
                        "mall-01 spring": 0, "screen-2": 1, "screen-2 of mall-02": 0}
    assert analytics.funnel(conn, Filter(*DAY, site="mall-01")) == [
        ("photos", 1), ("shared", 1), ("printed", 1), ("QR scanned", 0)]
    assert analytics.funnel(conn, Filter(*DAY, campaign="spring")) == [
        ("photos", 0), ("shared", 0), ("printed", 0), ("QR scanned", 0)]


def test_a_recorded_scan_counts_once_in_the_funnel(url: str, conn: Any) -> None:
    write(url, known_events())
    assert analytics.record_scan(conn, "mall-01-screen-2", "winter", "s-1", "p1", T0 + timedelta(minutes=9)) == 1
    conn.commit()
    assert analytics.funnel(conn, Filter(*DAY, campaign="winter"))[-1] == ("QR scanned", 1)
    assert analytics.funnel(conn, Filter(*DAY, device="mall-01-screen-2"))[-1] == ("QR scanned", 1)
    stored = conn.execute("SELECT seq, data FROM events WHERE type = 'qr_scanned'").fetchall()
    assert stored == [(0, {"photo_id": "p1", "session": "s-1", "campaign": "winter"})]
    progress = conn.execute("SELECT stored_upto FROM device_progress WHERE device = 'mall-01-screen-2'").fetchone()
    assert progress == (6,)                                             # seq 0 is no part of the device's seqs
    conn.commit()
    assert differences(conn) == []


def test_a_backfill_gives_what_ingest_maintained(url: str, conn: Any) -> None:
    store = PostgresStore(url)
    store.maintain(T0, 0)                                               # November has its partition
    store.close()
    write(url, known_events())
    analytics.record_scan(conn, "mall-09-screen-1", "x", None, "p9", datetime(2031, 1, 1, tzinfo=timezone.utc))
    conn.commit()                                                       # a scan in the default partition
    maintained = rollup_rows(conn)
    assert [table for table, type_, *_ in maintained if type_ == "qr_scanned"] == list(rollups.TABLES)
    conn.execute(f"DROP TABLE {', '.join(rollups.TABLES)}")               # a database from before the rollups
    conn.commit()
    assert analytics.backfill(conn) == []                               # nothing marked yet: no store opened
    PostgresStore(url).close()                                          # ingest (or the console) opens it
    assert rollup_rows(conn) == []
    done = analytics.backfill(conn)
    assert len(done) == 1 and done[0].startswith("rollups backfilled from the events stored before them")
    assert rollup_rows(conn) == maintained and differences(conn) == []
    assert analytics.backfill(conn) == []                               # once


def test_csv_exports_every_chart(url: str, conn: Any) -> None:
    write(url, known_events())
    narrow = Filter(*DAY, tz="Europe/Paris", site="mall-01")
    for chart in analytics.CSV:
        rows = analytics.csv_rows(conn, narrow, chart)
        assert rows and all(isinstance(cell, str) for cell in rows[0]) and len(rows) > 1, chart
    assert analytics.csv_rows(conn, narrow, "funnel")[1:] == [
        ("photos", 1), ("shared", 1), ("printed", 1), ("QR scanned", 0)]
    with pytest.raises(ApplianceError, match="no chart 'nope'"):
        analytics.csv_rows(conn, narrow, "nope")
    with pytest.raises(ApplianceError, match="not an IANA zone"):
        Filter(*DAY, tz="Mars/Olympus")


def test_sessions_name_the_campaign_shown() -> None:
    from appliance.events import EventBus
    from appliance.kiosk.navigation import Navigator
    from appliance.kiosk.session import Sessions

    bus, shown = EventBus(), ["winter"]
    sessions = Sessions(bus, Navigator(), lambda: shown[0])
    sessions.update(True, 1.0)
    sessions.update(False, 3.0)
    start, end = bus.drain(10)
    assert start.data["campaign"] == end.data["campaign"] == "winter"


def test_the_last_days_are_the_operators_whole_days() -> None:
    now = datetime(2026, 11, 29, 23, 30, tzinfo=timezone.utc)           # already the 30th in Paris
    week = Filter.last_days(7, "Europe/Paris", now, campaign="winter")
    assert (week.since.isoformat(), week.until.isoformat()) == ("2026-11-24T00:00:00+01:00",
                                                                 "2026-12-01T00:00:00+01:00")
    assert week.days()[0] == date(2026, 11, 24) and len(week.days()) == 7 and week.campaign == "winter"
    with pytest.raises(ApplianceError, match="not an IANA zone"):
        Filter.last_days(7, "")
