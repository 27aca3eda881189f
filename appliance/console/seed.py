"""``python -m appliance.console.seed``: a realistic synthetic month of a fleet's events, for trying and measuring.

``--db URL --screens 1000 --days 30 --per-day 2000`` fills an empty database (refused otherwise: seeding is never
mixed with real events) with sessions of shoppers at ``--sites`` malls (``mall-007-screen-03``), open 08:00–20:00
UTC, busier in the afternoon and on some screens than others; each session chooses an experience (rock paper
scissors rounds and results, a pose game's poses and final scores, photos taken, shared, printed and scanned, a
face fusion, an age guess) or walks away, under one of ``CAMPAIGNS`` per site (half the sites change campaign
half-way), plus each screen's daily ``boot``.  Event data have the fields the kiosk publishes.  Each screen also
gets its row in the device registry (``devices``), so the fleet pages have the same thousand screens.

Invariants: rows are generated inside PostgreSQL (``generate_series``), a day per statement, into each month's
partition before it is attached (so its indexes are built once, not row by row), then the rollups are built by
``rollups.rebuild_months``, the same SQL that backfills a database filled before the console existed.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, datetime, timedelta, timezone
from datetime import time as clock
from typing import Any

from appliance.errors import ApplianceError
from appliance.ops import partitions, rollups
from appliance.ops.eventstore import PostgresStore, shown

CAMPAIGNS = ("winter-sale", "spring-launch", "star-tour", "back-to-school", "summer-fest", "holiday-magic")
#: Events in an average session of the mix below (measured on a seeded day): sessions a day = per-day / this.
EVENTS_PER_SESSION = 6.6

#: One day of events into {table}.  Parameters: day (date), day_index, days, screens, per_site, sessions.
DAY = """
WITH screens AS (
    SELECT s, (s - 1) / %(per_site)s + 1 AS site,
           format('mall-%%s-screen-%%s', lpad(((s - 1) / %(per_site)s + 1)::text, 3, '0'),
                  lpad(((s - 1) %% %(per_site)s + 1)::text, 2, '0')) AS device,
           0.6 + ((s * 7919) %% 81) / 100.0 AS busy
    FROM generate_series(1, %(screens)s) AS s
), sessions AS (
    SELECT sc.device, k, gen_random_uuid()::text AS session,
           (%(campaigns)s::text[])[(sc.site + CASE WHEN sc.site %% 2 = 0 AND %(day_index)s * 2 >= %(days)s
                                                   THEN 1 ELSE 0 END) %% cardinality(%(campaigns)s::text[]) + 1]
               AS campaign,
           %(day)s::timestamptz + interval '8 hours' + interval '12 hours' * ((random() + random()) / 2) AS at,
           CASE WHEN r < 0.10 THEN 'none' WHEN r < 0.40 THEN 'rps' WHEN r < 0.65 THEN 'pose'
                WHEN r < 0.85 THEN 'photo' WHEN r < 0.95 THEN 'fusion' ELSE 'age' END AS experience,
           2 + floor(random() * 4)::int AS rounds, random() AS luck, random() < 0.3 AS pair,
           random() < 0.7 AS shared, random() < 0.35 AS printed, random() < 0.45 AS scanned,
           gen_random_uuid()::text AS photo
    FROM screens AS sc
    CROSS JOIN LATERAL generate_series(1, greatest(1, round(%(sessions)s * sc.busy)::int)) AS k
    CROSS JOIN LATERAL (SELECT random() + k * 0 AS r) AS pick
), slots AS (
    SELECT s.*, i, i - 3 AS j, random() AS roll,
           CASE
             WHEN i = 1 THEN 'session_start'
             WHEN i = 2 AND experience <> 'none' THEN 'experience_chosen'
             WHEN i = 12 THEN 'session_end'
             WHEN i = 13 AND k = 1 THEN 'boot'
             WHEN i < 3 OR i > 11 OR experience = 'none' THEN NULL
             WHEN experience = 'rps' THEN CASE WHEN i - 3 < rounds THEN 'rps_round'
                                               WHEN i - 3 = rounds THEN CASE WHEN luck < 0.08 THEN 'rps_abandon'
                                                                             ELSE 'rps_result' END END
             WHEN experience = 'pose' THEN CASE WHEN i = 3 THEN 'pose_round_started'
                                                    WHEN i <= 8 THEN 'pose_pose' WHEN i = 9 THEN 'pose_final' END
             WHEN experience IN ('photo', 'fusion') THEN CASE
                 WHEN i = 3 THEN CASE experience WHEN 'photo' THEN 'photo_taken' ELSE 'fusion_made' END
                 WHEN i = 4 AND shared THEN 'photo_shared'
                 WHEN i = 5 AND printed THEN CASE WHEN luck < 0.05 THEN 'print_failed' ELSE 'photo_printed' END
                 WHEN i = 6 AND shared AND scanned THEN 'qr_scanned' END
             WHEN experience = 'age' AND i = 3 THEN 'age_played'
           END AS kind
    FROM sessions AS s CROSS JOIN generate_series(1, 13) AS i
)
INSERT INTO {table} (id, device, seq, ts, type, data, historical, received_at)
SELECT gen_random_uuid(), device, CASE WHEN kind = 'qr_scanned' THEN 0 ELSE %(day_index)s * 100000 + k * 16 + i END,
       ts, type, data, false, ts + interval '2 seconds'
FROM (
    SELECT device, k, i, kind,
           CASE WHEN kind = 'boot' THEN %(day)s::timestamptz + interval '7 hours 55 minutes'
                WHEN kind = 'session_end' THEN at + interval '20 seconds' + interval '9 seconds' * i * (0.8 + luck)
                ELSE at + interval '9 seconds' * i * (0.8 + luck) END AS ts,
           CASE WHEN kind = 'pose_pose' THEN CASE WHEN roll < 0.7 THEN 'pose_matched' ELSE 'pose_missed' END
                ELSE kind END AS type,
           CASE kind
             WHEN 'boot' THEN jsonb_build_object('version', '1.4.2', 'reason', 'power')
             WHEN 'session_start' THEN jsonb_build_object('session', session, 'campaign', campaign)
             WHEN 'session_end' THEN jsonb_build_object('session', session, 'campaign', campaign,
                 'dwell_s', round((20 + 9 * 12 * (0.8 + luck) * CASE experience WHEN 'none' THEN 0.2 ELSE 1 END)
                                  ::numeric, 2),
                 'gestures', jsonb_build_object('next', floor(roll * 4)::int, 'confirm', 1))
             WHEN 'experience_chosen' THEN jsonb_build_object('session', session, 'campaign', campaign,
                 'experience', experience)
             WHEN 'rps_round' THEN jsonb_build_object('session', session, 'campaign', campaign, 'round', j + 1,
                 'shopper', (ARRAY['rock', 'paper', 'scissors'])[1 + floor(roll * 3)::int],
                 'star', (ARRAY['rock', 'paper', 'scissors'])[1 + floor(luck * 3)::int],
                 'outcome', CASE WHEN roll < 0.4 THEN 'win' WHEN roll < 0.8 THEN 'lose' ELSE 'draw' END,
                 'typed', false, 'score', jsonb_build_object('shopper', j, 'star', j))
             WHEN 'rps_result' THEN jsonb_build_object('session', session, 'campaign', campaign,
                 'winner', CASE WHEN luck < 0.5 THEN 'shopper' ELSE 'star' END, 'rounds', rounds,
                 'score', jsonb_build_object('shopper', 2, 'star', 1))
             WHEN 'rps_abandon' THEN jsonb_build_object('session', session, 'campaign', campaign,
                 'reason', 'palm', 'round', rounds)
             WHEN 'pose_round_started' THEN jsonb_build_object('session', session, 'campaign', campaign,
                 'players', CASE WHEN pair THEN 2 ELSE 1 END, 'poses', 5)
             WHEN 'pose_pose' THEN jsonb_build_object('session', session, 'campaign', campaign, 'pose', i - 3,
                 'name', 'star-' || (i - 3), 'player', 'you', 'score', floor(40 + roll * 60)::int,
                 'seconds', round((2 + roll * 8)::numeric, 2), 'players', 1)
             WHEN 'pose_final' THEN jsonb_build_object('session', session, 'campaign', campaign,
                 'players', CASE WHEN pair THEN 2 ELSE 1 END, 'poses', 5,
                 'scores', CASE WHEN pair THEN jsonb_build_object('left', floor(30 + luck * 70)::int,
                                                                  'right', floor(30 + roll * 70)::int)
                                ELSE jsonb_build_object('you', floor(25 + luck * 75)::int) END,
                 'matched', jsonb_build_object('you', floor(luck * 6)::int),
                 'winner', CASE WHEN NOT pair THEN NULL WHEN luck > roll THEN 'left' ELSE 'right' END)
             WHEN 'photo_taken' THEN jsonb_build_object('session', session, 'campaign', campaign, 'photo_id', photo,
                 'take', 1, 'ms', floor(800 + roll * 900)::int, 'style', 'original')
             WHEN 'fusion_made' THEN jsonb_build_object('session', session, 'campaign', campaign, 'photo_id', photo,
                 'take', 1, 'ms', floor(1500 + roll * 2000)::int)
             WHEN 'age_played' THEN jsonb_build_object('session', session, 'campaign', campaign,
                 'duration_s', round((5 + roll * 20)::numeric, 1), 'faces', 1)
             WHEN 'print_failed' THEN jsonb_build_object('session', session, 'campaign', campaign,
                 'photo_id', photo, 'reason', 'out of paper')
             ELSE jsonb_build_object('session', session, 'campaign', campaign, 'photo_id', photo)
           END AS data
    FROM slots WHERE kind IS NOT NULL
) AS events"""


#: The registry's row of each screen (``devices``, as ingest keeps it): mostly online, some with an alert, a few
#: silent for an hour (lost).  Parameters: screens, per_site, now.
REGISTRY = """
INSERT INTO devices (device, status, status_session, status_final, status_at, reported, reported_at, health,
                     health_ts, health_at, health_period_s, last_seen)
SELECT device, jsonb_build_object('state', state, 'session', 1, 'app', '1.4.2', 'campaign_version', 3,
                                  'alerts', CASE WHEN state = 'alert' THEN jsonb_build_array(jsonb_build_object(
                                      'code', 'camera', 'reason', 'no frames from the camera for 30 s',
                                      'since', seen::text)) ELSE '[]'::jsonb END),
       1, 0, seen, jsonb_build_object('phase', 'applied', 'applied_version', 3, 'pending_version', NULL,
                                      'progress', 1.0, 'errors', '[]'::jsonb), seen,
       jsonb_build_object('ts', seen, 'fps', 24 + s %% 7,
                          'temperature_c', jsonb_build_object('cpu-thermal', 48 + s %% 20),
                          'disk_free_mb', 20000 - s * 3,
                          'memory_mb', jsonb_build_object('rss', 900, 'available', 2500)),
       seen, seen, 30, seen
FROM (SELECT s, format('mall-%%s-screen-%%s', lpad(((s - 1) / %(per_site)s + 1)::text, 3, '0'),
                       lpad(((s - 1) %% %(per_site)s + 1)::text, 2, '0')) AS device,
             CASE WHEN s %% 97 = 0 THEN 'alert' ELSE 'ready' END AS state,
             %(now)s::timestamptz - CASE WHEN s %% 151 = 0 THEN interval '1 hour' ELSE interval '10 seconds' END AS seen
      FROM generate_series(1, %(screens)s) AS s) AS screens
ON CONFLICT (device) DO UPDATE SET status = excluded.status, status_at = excluded.status_at,
    reported = excluded.reported, reported_at = excluded.reported_at, health = excluded.health,
    health_ts = excluded.health_ts, health_at = excluded.health_at, last_seen = excluded.last_seen"""

#: Each screen's health samples of the last ``HEALTH_HOURS`` hours, one a minute (as ingest keeps them:
#: ``eventstore.HEALTH_STEP_S``), frame rate and temperature wandering with the day.  Parameters: now.
HEALTH_HOURS = 24
HEALTH = f"""
INSERT INTO health_history (device, ts, fps, temperature_c, disk_free_mb, rss_mb)
SELECT d.device, t, 24 + (abs(hashtext(d.device)) %% 7) - 3 * sin(extract(epoch FROM t) / 7200.0) ^ 2,
       48 + (abs(hashtext(d.device)) %% 20) + 6 * sin(extract(epoch FROM t) / 43200.0 * pi()), 20000, 900
FROM devices AS d
CROSS JOIN generate_series(date_trunc('minute', %(now)s::timestamptz) - interval '{HEALTH_HOURS} hours',
                           date_trunc('minute', %(now)s::timestamptz), interval '1 minute') AS t
ON CONFLICT DO NOTHING"""


def registry(conn: Any, screens: int, per_site: int, now: datetime) -> int:
    """Each screen's registry row (``REGISTRY``), seen just before ``now``, and its health samples of the last
    day (``HEALTH``); how many screens."""
    count = conn.execute(REGISTRY, {"screens": screens, "per_site": per_site, "now": now}).rowcount
    conn.execute(HEALTH, {"now": now})
    return count


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _month_table(cursor: Any, month: partitions.Month) -> None:
    """``month``'s partition as a plain table, to be filled before it is attached (an empty one from ``maintain``
    is replaced: the database holds no events)."""
    cursor.execute(f"DROP TABLE IF EXISTS {month.name}")
    cursor.execute(f"CREATE TABLE {month.name} (LIKE events INCLUDING DEFAULTS)")


def _attach(cursor: Any, month: partitions.Month) -> None:
    low, high = month.start.isoformat(), month.plus(1).start.isoformat()  # computed text only
    check = f"CHECK (ts >= '{low}' AND ts < '{high}')"  # attaching then needs no scan of the rows
    cursor.execute(f"ALTER TABLE {month.name} ADD CONSTRAINT {month.name}_range {check}")
    cursor.execute(f"ALTER TABLE events ATTACH PARTITION {month.name} FOR VALUES FROM ('{low}') TO ('{high}')")
    cursor.execute(f"ALTER TABLE {month.name} DROP CONSTRAINT {month.name}_range")


def seed(url: str, screens: int, days: int, per_day: int, sites: int, end: date) -> int:
    """The events of ``days`` days up to ``end`` (excluded) in the empty database at ``url``; how many."""
    import psycopg

    PostgresStore(url).close()  # the fleet's schema, as ingest makes it
    first = end - timedelta(days=days)
    months = sorted({partitions.Month(day.year, day.month) for day in (first + timedelta(n) for n in range(days))})
    per_site = -(-screens // sites)
    sessions = per_day / EVENTS_PER_SESSION
    started = time.monotonic()
    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET work_mem = '256MB'")
        if conn.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0]:
            raise ApplianceError(f"{shown(url)} already holds events: seed only an empty database "
                                 "(createdb a new one)")
        for month in months:
            _month_table(conn.cursor(), month)
        conn.commit()
        total = 0
        for index in range(days):
            day = first + timedelta(index)
            table = partitions.Month(day.year, day.month).name
            total += conn.execute(DAY.format(table=table), {
                "per_site": per_site, "screens": screens, "campaigns": list(CAMPAIGNS), "day_index": index,
                "days": days, "day": datetime.combine(day, clock(), timezone.utc), "sessions": sessions}).rowcount
            conn.commit()
            _say(f"{day}: {total:,} events ({time.monotonic() - started:,.0f} s)")
        for month in months:
            _attach(conn.cursor(), month)
            conn.commit()
            _say(f"{month.name} attached, its indexes built ({time.monotonic() - started:,.0f} s)")
        added = registry(conn, screens, per_site, datetime.now(timezone.utc))
        conn.commit()
        _say(f"{added:,} screens in the registry, with a day of health samples")
        begin, until = (datetime.combine(day, clock(), timezone.utc) for day in (first, end))
        rollups.rebuild_months(conn, begin, until, _say)
        conn.autocommit = True
        for table in (*(month.name for month in months), *rollups.TABLES, "devices", "health_history"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        _say(f"vacuumed and analysed ({time.monotonic() - started:,.0f} s)")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.console.seed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, metavar="URL", help="an empty PostgreSQL database")
    parser.add_argument("--screens", type=int, default=1000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=2000, help="events per screen per day (about)")
    parser.add_argument("--end", type=date.fromisoformat, default=date.today(),
                        help="the day after the last one seeded (default: today)")
    parser.add_argument("--screens-now", action="store_true", help="on a seeded database: only bring the screens "
                        "up to now (registry rows seen a moment ago, the last day's health samples), e.g. before "
                        "pagebench on a database seeded days ago")
    args = parser.parse_args(argv)
    if args.screens_now:
        import psycopg

        with psycopg.connect(args.db) as conn:
            count = registry(conn, args.screens, -(-args.screens // args.sites), datetime.now(timezone.utc))
        _say(f"{count:,} screens brought up to now")
        return 0
    if not (1 <= args.sites <= args.screens <= 100_000 and 1 <= args.days <= 400 and 10 <= args.per_day <= 100_000):
        parser.error("expected 1 <= sites <= screens <= 100000, 1 <= days <= 400, 10 <= per-day <= 100000")
    started = time.monotonic()
    try:
        total = seed(args.db, args.screens, args.days, args.per_day, args.sites, args.end)
    except ApplianceError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 1
    _say(f"seeded {total:,} events in {time.monotonic() - started:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
