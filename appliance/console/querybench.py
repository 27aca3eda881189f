"""``python -m appliance.console.querybench --db URL``: how fast the analytics page's queries answer.

For four scopes of the last ``--days`` days of the data (the whole fleet, the busiest campaign, one site, one
screen) it runs every analytics query ``--runs`` times after one warm-up run, and prints each one's p50 and p95
in milliseconds, then the whole page's (every query in turn, as the page makes them), then the disk size of the
events, their indexes and the rollups.  Read-only: run it on a seeded database (``appliance.console.seed``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from appliance.console import analytics
from appliance.console.analytics import Filter
from appliance.console.fleet import site_of

QUERIES: dict[str, Callable[[Any, Filter], Any]] = {
    "sessions/hour": analytics.sessions_per_hour, "sessions/day": analytics.sessions_per_day,
    "plays": analytics.plays_per_experience, "rps": analytics.rps_results, "pose scores": analytics.pose_scores,
    "funnel": analytics.funnel, "totals": analytics.totals, "campaigns": analytics.campaigns}

SIZES = """
SELECT 'events (heap)', sum(pg_table_size(c.oid)) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = 'events'::regclass
UNION ALL SELECT 'events (indexes)', sum(pg_indexes_size(c.oid)) FROM pg_inherits i JOIN pg_class c
 ON c.oid = i.inhrelid WHERE i.inhparent = 'events'::regclass
UNION ALL SELECT 'event_hours', pg_total_relation_size('event_hours')
UNION ALL SELECT 'site_hours', pg_total_relation_size('site_hours')
UNION ALL SELECT 'fleet_hours', pg_total_relation_size('fleet_hours')"""


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 (median) and p95 (nearest rank) of ``samples``: the figures both benchmarks print."""
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _time(call: Callable[[], Any], runs: int) -> tuple[float, float]:
    call()  # warm
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return percentiles(samples)


def scopes(conn: Any, days: int, tz: str) -> dict[str, Filter]:
    """The whole fleet, the busiest campaign, the site and the screen of the first screen, over the last days."""
    last = conn.execute("SELECT max(hour) FROM fleet_hours WHERE type = 'session_start'").fetchone()[0]
    if last is None:
        raise SystemExit("querybench: no sessions in the rollups (seed the database first)")
    until = last + timedelta(hours=1)
    since = until - timedelta(days=days)
    campaign = conn.execute("SELECT campaign FROM fleet_hours WHERE type = 'session_start' AND hour >= %s "
                            "GROUP BY 1 ORDER BY sum(n) DESC LIMIT 1", (since,)).fetchone()[0]
    device = conn.execute("SELECT min(device) FROM event_hours WHERE type = 'session_start'").fetchone()[0]
    site = site_of(device)
    return {"fleet": Filter(since, until, tz), f"campaign {campaign}": Filter(since, until, tz, campaign=campaign),
            f"site {site}": Filter(since, until, tz, site=site), f"screen {device}": Filter(since, until, tz,
                                                                                            device=device)}


def run(url: str, days: int, runs: int, tz: str, out: Any = sys.stdout) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for name, narrow in scopes(conn, days, tz).items():
            print(f"{name}, {narrow.since:%Y-%m-%d %H:%M} .. {narrow.until:%Y-%m-%d %H:%M} UTC, {tz} "
                  f"(p50 / p95 ms over {runs} warm runs)", file=out)
            for query, function in QUERIES.items():
                p50, p95 = _time(lambda function=function, narrow=narrow: function(conn, narrow), runs)
                print(f"  {query:<14} {p50:8.1f} {p95:8.1f}", file=out)
            p50, p95 = _time(lambda narrow=narrow: [function(conn, narrow) for function in QUERIES.values()], runs)
            print(f"  {'whole page':<14} {p50:8.1f} {p95:8.1f}", file=out, flush=True)
        events = conn.execute("SELECT sum(n) FROM fleet_hours WHERE type <> 'pose_score'").fetchone()[0]
        print(f"sizes ({events:,} events):", file=out)
        for name, size in conn.execute(SIZES).fetchall():
            print(f"  {name:<17} {size / 2**30:8.2f} GiB", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.console.querybench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, metavar="URL", help="a seeded PostgreSQL database")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per query (after one warm-up)")
    parser.add_argument("--tz", default="Europe/Paris", help="the operator's zone (default Europe/Paris)")
    args = parser.parse_args(argv)
    run(args.db, args.days, args.runs, args.tz)
    return 0


if __name__ == "__main__":
    sys.exit(main())
