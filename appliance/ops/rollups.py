"""Hourly counts of the fleet's events in PostgreSQL: what the console's analytics read instead of ``events``.

A month of a thousand screens is some 60 million events; a chart over it must not read them.  Each event is
one *fact* of its type (``pose_final`` also one ``pose_score`` fact per player, its score), with a ``label``
(the dimension a chart splits by: the experience chosen, an RPS round's outcome or game's winner, a pose
score's band of ten) and a numeric ``value`` (a session's dwell seconds, a pose score; else none).

Invariants:

- ``event_hours`` holds, per (type, device, hour, campaign, label), ``n`` facts and ``total``, the sum of their
  values (0 for none); ``site_hours`` the same summed over each site's screens (``SITE_SQL``: the id up to
  ``-screen-`` when present, else up to its last dash, as the console lists sites) and ``fleet_hours`` over
  all screens.  ``hour`` is the UTC hour of the event's ``ts``; ``campaign`` is the event data's ``campaign``
  ('' when absent); labels and campaigns are cut to ``MAX_TEXT`` characters and values outside ±1e12 (or not
  JSON numbers) count as none, so that no event a device can send makes the rollups refuse it.
- Counts follow the events exactly: ``PostgresStore`` inserts events with ``INSERT … ON CONFLICT DO NOTHING
  RETURNING`` into this session's ``events_new``, and ``fold`` adds those rows to the three tables in the same
  transaction.  A redelivered event is not returned, so it never counts twice; a rolled-back transaction takes
  its counts back with its events.
- No deadlock: a writer inserts its events first (the whole INSERT finishes before ``fold``), then upserts
  ``event_hours``, ``site_hours`` and ``fleet_hours`` in that order (``TABLES``), each in its primary key's
  order, then (``PostgresStore._advance``) locks ``device_progress`` rows in device order.  Every writer takes
  row locks in that one global order, so concurrent ingest workers (and the console recording a scan) wait for
  each other but never in a cycle.
- ``rebuild(since, until)`` recomputes the whole hours of [since, until) from ``events`` under a SHARE ROW
  EXCLUSIVE lock on the three tables (taken in ``TABLES`` order): a writer that committed before it is in what
  it reads, a writer still running waits at its first upsert and adds its rows after the rebuild commits.
  ``site_hours`` and ``fleet_hours`` are rebuilt from ``event_hours``.  ``check`` lists where the tables differ
  from a direct aggregate (empty when they agree).
- Tables created in a database that already holds events are marked (``rollup_backfill``, no scan of the
  events: that is done under ingest's schema lock) until ``backfill`` rebuilds every month partition and the
  default partition's range; counts of months that retention dropped from ``events`` stay (they are small).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from appliance.ops import partitions
from appliance.ops.partitions import Month

#: Labels and campaigns are cut to this many characters (a primary key's text must stay small).
MAX_TEXT = 100
#: Values beyond this magnitude are no value (a JSON number may be far beyond a float's range).
MAX_VALUE = 10 ** 12

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS event_hours (type text NOT NULL, device text COLLATE \"C\" NOT NULL, "
    "hour timestamptz NOT NULL, campaign text NOT NULL, label text NOT NULL, n bigint NOT NULL, "
    "total double precision NOT NULL, PRIMARY KEY (type, device, hour, campaign, label))",
    "CREATE TABLE IF NOT EXISTS site_hours (type text NOT NULL, site text COLLATE \"C\" NOT NULL, "
    "hour timestamptz NOT NULL, campaign text NOT NULL, label text NOT NULL, n bigint NOT NULL, "
    "total double precision NOT NULL, PRIMARY KEY (type, site, hour, campaign, label))",
    "CREATE TABLE IF NOT EXISTS fleet_hours (type text NOT NULL, hour timestamptz NOT NULL, campaign text NOT NULL, "
    "label text NOT NULL, n bigint NOT NULL, total double precision NOT NULL, "
    "PRIMARY KEY (type, hour, campaign, label))",
)
MARK = "CREATE TABLE IF NOT EXISTS rollup_backfill (marked_at timestamptz NOT NULL DEFAULT now())"
#: The session's newly inserted events, waiting for ``fold``.
NEW = ("CREATE TEMPORARY TABLE IF NOT EXISTS events_new (device text, ts timestamptz, type text, data jsonb) "
       "ON COMMIT DELETE ROWS")
#: The rollups, in the order every writer locks them.
TABLES = ("event_hours", "site_hours", "fleet_hours")
MISSING = "SELECT " + " OR ".join(f"to_regclass('{table}') IS NULL" for table in TABLES)
#: A device's site, in SQL over ``device``: the id up to ``-screen-`` when present, else up to its last dash.
SITE_SQL = ("CASE WHEN strpos(device, '-screen-') > 0 THEN left(device, strpos(device, '-screen-') - 1) "
            "ELSE regexp_replace(device, '-[^-]*$', '') END")
#: What an INSERT INTO events appends to return its new rows into ``events_new``.
RETURNING = "RETURNING device, ts, type, data"


def _number(json: str) -> str:
    """SQL: the JSON value ``json`` as a double, NULL unless it is a number within ±MAX_VALUE."""
    return (f"CASE WHEN jsonb_typeof({json}) = 'number' AND abs(({json})::numeric) <= {MAX_VALUE} "
            f"THEN ({json})::double precision END")


#: The facts of the events of ``{source}`` (a table or subquery aliased ``e``).
FACTS = f"""
SELECT f.type, e.device COLLATE "C" AS device, date_trunc('hour', e.ts, 'UTC') AS hour,
       left(coalesce(e.data->>'campaign', ''), {MAX_TEXT}) AS campaign,
       left(coalesce(f.label, ''), {MAX_TEXT}) AS label, f.value
FROM {{source}} AS e CROSS JOIN LATERAL (
    SELECT e.type,
           CASE e.type WHEN 'experience_chosen' THEN e.data->>'experience' WHEN 'rps_round' THEN e.data->>'outcome'
                       WHEN 'rps_result' THEN e.data->>'winner' END AS label,
           CASE e.type WHEN 'session_end' THEN {_number("e.data->'dwell_s'")} END AS value
    UNION ALL
    SELECT 'pose_score', (floor(least(greatest(({_number('p.score')}), 0), 100) / 10) * 10)::int::text,
           {_number('p.score')}
    FROM jsonb_each(CASE WHEN e.type = 'pose_final' AND jsonb_typeof(e.data->'scores') = 'object'
                         THEN e.data->'scores' END) AS p(side, score)
    WHERE {_number('p.score')} IS NOT NULL
) AS f"""

DEVICE_KEY = "type, device, hour, campaign, label"
SITE_KEY = "type, site, hour, campaign, label"
FLEET_KEY = "type, hour, campaign, label"
ADD = "ON CONFLICT ({key}) DO UPDATE SET n = r.n + excluded.n, total = r.total + excluded.total"
ADD_DEVICES = (f"INSERT INTO event_hours AS r (type, device, hour, campaign, label, n, total) "
               f"SELECT type, device, hour, campaign, label, count(*), coalesce(sum(value), 0) "
               f"FROM ({FACTS}) AS facts GROUP BY {DEVICE_KEY} ORDER BY {DEVICE_KEY} "
               + ADD.format(key=DEVICE_KEY))
ADD_SITES = (f"INSERT INTO site_hours AS r (type, site, hour, campaign, label, n, total) "
             f"SELECT type, {SITE_SQL} AS site, hour, campaign, label, count(*), coalesce(sum(value), 0) "
             f"FROM ({FACTS}) AS facts GROUP BY {SITE_KEY} ORDER BY {SITE_KEY} " + ADD.format(key=SITE_KEY))
ADD_FLEET = (f"INSERT INTO fleet_hours AS r (type, hour, campaign, label, n, total) "
             f"SELECT type, hour, campaign, label, count(*), coalesce(sum(value), 0) "
             f"FROM ({FACTS}) AS facts GROUP BY {FLEET_KEY} ORDER BY {FLEET_KEY} " + ADD.format(key=FLEET_KEY))
CLEAR_NEW = "DELETE FROM events_new"

LOCK = f"LOCK TABLE {', '.join(TABLES)} IN SHARE ROW EXCLUSIVE MODE"
IN_RANGE = "SELECT * FROM events WHERE ts >= %(since)s AND ts < %(until)s"
SITES_FROM_DEVICES = ("INSERT INTO site_hours (type, site, hour, campaign, label, n, total) "
                      f"SELECT type, {SITE_SQL} AS site, hour, campaign, label, sum(n), sum(total) FROM event_hours "
                      f"WHERE hour >= %(since)s AND hour < %(until)s GROUP BY {SITE_KEY}")
FLEET_FROM_DEVICES = ("INSERT INTO fleet_hours (type, hour, campaign, label, n, total) "
                      "SELECT type, hour, campaign, label, sum(n), sum(total) FROM event_hours "
                      "WHERE hour >= %(since)s AND hour < %(until)s GROUP BY type, hour, campaign, label")


def create_schema(cursor: Any) -> list[str]:
    """Inside the schema's transaction (under its lock): the tables; when they are new and ``events`` already
    holds rows, the mark that ``backfill`` looks for.  What was done."""
    new = cursor.execute(MISSING).fetchone()[0]
    for statement in (*SCHEMA, MARK):
        cursor.execute(statement)
    if new and cursor.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0]:
        cursor.execute("INSERT INTO rollup_backfill DEFAULT VALUES")
        return [f"the rollups ({', '.join(TABLES)}) created: the events stored before need a backfill (the "
                "console's migration runs it)"]
    return []


def fold(cursor: Any) -> None:
    """Inside the transaction that inserted them: the rows of ``events_new`` added to the three tables (in the
    lock order), then cleared."""
    for statement in (ADD_DEVICES, ADD_SITES, ADD_FLEET):
        cursor.execute(statement.format(source="events_new"))
    cursor.execute(CLEAR_NEW)


def hours(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """[since, until) widened to whole UTC hours."""
    start = since.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    end = until.astimezone(timezone.utc)
    floor = end.replace(minute=0, second=0, microsecond=0)
    return start, floor if floor == end else floor + timedelta(hours=1)


def rebuild(cursor: Any, since: datetime, until: datetime) -> int:
    """Inside a READ COMMITTED transaction: the hours of [since, until) recomputed from ``events``; how many
    ``event_hours`` rows they now have.  Writers wait until the caller commits."""
    start, end = hours(since, until)
    bounds = {"since": start, "until": end}
    cursor.execute(LOCK)
    for table in TABLES:
        cursor.execute(f"DELETE FROM {table} WHERE hour >= %(since)s AND hour < %(until)s", bounds)
    rows = cursor.execute(ADD_DEVICES.format(source=f"({IN_RANGE})"), bounds).rowcount
    cursor.execute(SITES_FROM_DEVICES, bounds)
    cursor.execute(FLEET_FROM_DEVICES, bounds)
    return rows


def rebuild_months(conn: Any, since: datetime, until: datetime,
                   say: Callable[[str], None] = lambda line: None) -> int:
    """[since, until) rebuilt a UTC month at a time (one partition scan each), each month committed on its own so
    writers wait for one month at most; ``conn`` has autocommit off and no transaction block open.  Rows made."""
    made = 0
    start, end = hours(since, until)
    while start < end:
        month_end = min(Month.of(start).plus(1).start, end)
        made += rebuild(conn.cursor(), start, month_end)
        conn.commit()
        say(f"rollups rebuilt for {start:%Y-%m-%d %H:00} to {month_end:%Y-%m-%d %H:00} UTC ({made:,} rows so far)")
        start = month_end
    return made


def backfill(conn: Any, say: Callable[[str], None] = lambda line: None) -> int | None:
    """When the tables are marked: every month partition's range and the default partition's rebuilt
    (``rebuild_months``), then the mark removed; rows made, None when nothing was marked."""
    if not conn.execute("SELECT EXISTS (SELECT 1 FROM rollup_backfill)").fetchone()[0]:
        conn.commit()
        return None
    months = sorted(Month.named(name) for (name,) in conn.execute(partitions.PARTITIONS).fetchall())
    ranges = [(month.start, month.plus(1).start) for month in months]
    first, last = conn.execute("SELECT min(ts), max(ts) FROM events_default").fetchone()
    conn.commit()
    if first is not None:
        ranges.append((first, last + timedelta(hours=1)))
    made = sum(rebuild_months(conn, since, until, say) for since, until in ranges)
    conn.execute("DELETE FROM rollup_backfill")
    conn.commit()
    return made


CHECK_DEVICES = f"""
SELECT coalesce(r.type, a.type), coalesce(r.device, a.device), coalesce(r.hour, a.hour),
       coalesce(r.campaign, a.campaign), coalesce(r.label, a.label), r.n, a.n, r.total, a.total
FROM (SELECT * FROM event_hours WHERE hour >= %(since)s AND hour < %(until)s) AS r
FULL JOIN (SELECT type, device, hour, campaign, label, count(*) AS n, coalesce(sum(value), 0) AS total
           FROM ({FACTS.format(source=f"({IN_RANGE})")}) AS facts GROUP BY type, device, hour, campaign, label) AS a
  USING (type, device, hour, campaign, label)
WHERE r.n IS DISTINCT FROM a.n OR abs(r.total - a.total) > 1e-6 * greatest(1, abs(a.total))
ORDER BY 1, 2, 3, 4, 5 LIMIT %(limit)s"""
CHECK_SITES = f"""
SELECT coalesce(r.type, a.type), coalesce(r.site, a.site), coalesce(r.hour, a.hour),
       coalesce(r.campaign, a.campaign), coalesce(r.label, a.label), r.n, a.n, r.total, a.total
FROM (SELECT * FROM site_hours WHERE hour >= %(since)s AND hour < %(until)s) AS r
FULL JOIN (SELECT type, {SITE_SQL} AS site, hour, campaign, label, sum(n) AS n, sum(total) AS total
           FROM event_hours WHERE hour >= %(since)s AND hour < %(until)s
           GROUP BY type, site, hour, campaign, label) AS a
  USING (type, site, hour, campaign, label)
WHERE r.n IS DISTINCT FROM a.n OR abs(r.total - a.total) > 1e-6 * greatest(1, abs(a.total))
ORDER BY 1, 2, 3, 4, 5 LIMIT %(limit)s"""
CHECK_FLEET = """
SELECT coalesce(r.type, a.type), '*', coalesce(r.hour, a.hour), coalesce(r.campaign, a.campaign),
       coalesce(r.label, a.label), r.n, a.n, r.total, a.total
FROM (SELECT * FROM fleet_hours WHERE hour >= %(since)s AND hour < %(until)s) AS r
FULL JOIN (SELECT type, hour, campaign, label, sum(n) AS n, sum(total) AS total FROM event_hours
           WHERE hour >= %(since)s AND hour < %(until)s GROUP BY type, hour, campaign, label) AS a
  USING (type, hour, campaign, label)
WHERE r.n IS DISTINCT FROM a.n OR abs(r.total - a.total) > 1e-6 * greatest(1, abs(a.total))
ORDER BY 1, 2, 3, 4, 5 LIMIT %(limit)s"""


def check(cursor: Any, since: datetime, until: datetime, limit: int = 20) -> list[str]:
    """Where the hours of [since, until) differ from a direct aggregate over ``events`` (``event_hours``) or
    over ``event_hours`` (``site_hours``, ``fleet_hours``): a line each, at most ``limit`` per table; empty when
    they agree."""
    start, end = hours(since, until)
    bounds = {"since": start, "until": end, "limit": limit}
    return [f"{table} {kind} {device} {hour:%Y-%m-%d %H:00Z} campaign={campaign!r} label={label!r}: "
            f"n {held} (expected {expected}), total {total} (expected {expected_total})"
            for table, statement in (("event_hours", CHECK_DEVICES), ("site_hours", CHECK_SITES),
                                     ("fleet_hours", CHECK_FLEET))
            for kind, device, hour, campaign, label, held, expected, total, expected_total
            in cursor.execute(statement, bounds).fetchall()]
