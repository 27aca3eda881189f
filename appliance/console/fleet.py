"""The fleet's pages: every screen from ingest's device registry, filtered, and one screen's page.

Invariants:

- Screens come from the ``devices`` table (``appliance.ops.registry``: what ingest heard), never from the
  broker, so the list is complete at any fleet size; a screen's state is the registry's: ``online`` (ready
  and reporting), ``alert`` (online with alerts, each shown with its reason), ``offline`` (stopped cleanly),
  ``lost`` (its will, or silent for longer than ``SILENT_PERIODS`` health periods), ``unknown`` (no status yet).
- The list is paged (``PAGE`` screens) and reads only the health fields it shows, so a thousand screens cost
  one indexed query; counts per state are over the whole filter.
- A site is the device id up to ``-screen-`` when present, else up to its last dash (``site_of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from appliance.console import auth, charts, commands, web
from appliance.fleet.setconfig import remote_keys
from appliance.identity import check_device_id
from appliance.ops.registry import DEFAULT_HEALTH_PERIOD_S, SILENT_PERIODS
from appliance.ops.rollups import SITE_SQL

router = APIRouter()
PAGE = 100
STATES = ("online", "alert", "lost", "offline", "unknown")
HISTORY_HOURS = 24
HISTORY_STEP = "5 minutes"

#: A screen's state in SQL (the registry's rule: ``DeviceRecord.silent``), for filtering and counting.
STATE_SQL = f"""CASE
    WHEN status IS NULL THEN 'unknown'
    WHEN status->>'state' IN ('offline', 'lost') THEN status->>'state'
    WHEN coalesce(health_at, last_seen) < %(now)s - make_interval(
         secs => {SILENT_PERIODS} * coalesce(health_period_s, {DEFAULT_HEALTH_PERIOD_S})) THEN 'lost'
    WHEN status->>'state' = 'alert' THEN 'alert'
    ELSE 'online' END"""
LIST_SQL = f"""SELECT device, {STATE_SQL} AS state, status->'alerts', status->>'app', reported->'applied_version',
    reported->'pending_version', reported->>'phase', reported->'progress', reported->'errors', health->'fps',
    health->'temperature_c', health->'disk_free_mb', last_seen,
    coalesce(health_at, last_seen) > %(now)s - make_interval(
         secs => {SILENT_PERIODS} * coalesce(health_period_s, {DEFAULT_HEALTH_PERIOD_S}))
    FROM devices WHERE (%(site)s::text IS NULL OR left(device, length(%(site)s) + 1) = %(site)s || '-')"""


@dataclass(frozen=True)
class Screen:
    device: str
    state: str
    alerts: list[dict[str, Any]]
    app: str | None
    applied: Any
    pending: Any
    phase: str | None
    progress: Any
    errors: list[Any]
    fps: Any
    temperatures: dict[str, Any]
    disk_free_mb: Any
    last_seen: datetime
    reporting: bool

    @property
    def site(self) -> str:
        return site_of(self.device)

    @property
    def hottest(self) -> float | None:
        values = [v for v in (self.temperatures or {}).values() if isinstance(v, (int, float))]
        return max(values) if values else None


def site_of(device: str) -> str:
    if "-screen-" in device:
        return device.split("-screen-", 1)[0]
    return device.rsplit("-", 1)[0]


def screens(conn: Any, now: datetime, site: str | None = None, state: str | None = None, offset: int = 0,
            limit: int = PAGE) -> tuple[list[Screen], dict[str, int]]:
    """One page of screens (by id) in ``site`` and ``state``, and the count per state of the whole site."""
    params = {"now": now, "site": site}
    counts = dict(conn.execute(f"SELECT state, count(*) FROM ({LIST_SQL}) s GROUP BY state", params).fetchall())
    rows = conn.execute(f"SELECT * FROM ({LIST_SQL}) s WHERE %(state)s::text IS NULL OR state = %(state)s "
                        "ORDER BY device OFFSET %(offset)s LIMIT %(limit)s",
                        {**params, "state": state, "offset": offset, "limit": limit}).fetchall()
    page = [Screen(row[0], row[1], list(row[2] or []), row[3], row[4], row[5], row[6], row[7], list(row[8] or []),
                   row[9], dict(row[10] or {}), row[11], row[12], row[13]) for row in rows]
    return page, {name: counts.get(name, 0) for name in STATES}


def sites(conn: Any) -> list[tuple[str, int]]:
    return conn.execute(f"SELECT {SITE_SQL} AS site, count(*) FROM devices GROUP BY 1 ORDER BY 1").fetchall()


def device_row(conn: Any, device: str, now: datetime) -> dict[str, Any] | None:
    """The screen's registry row and its state at ``now``, or None."""
    row = conn.execute(f"SELECT status, reported, health, health_at, health_period_s, last_seen, {STATE_SQL} "
                       "FROM devices WHERE device = %(device)s", {"device": device, "now": now}).fetchone()
    keys = ("status", "reported", "health", "health_at", "health_period_s", "last_seen", "state")
    return None if row is None else dict(zip(keys, row, strict=True))


def health_history(conn: Any, device: str, since: datetime) -> list[tuple[Any, ...]]:
    """(start, fps, hottest °C, disk free MB, memory MB) of the screen's stored health samples since ``since``,
    averaged over ``HISTORY_STEP`` (a day is 288 points, not 1,440)."""
    return conn.execute(f"SELECT date_bin('{HISTORY_STEP}', ts, %s) AS start, avg(fps), avg(temperature_c), "
                        "avg(disk_free_mb), avg(rss_mb) FROM health_history WHERE device = %s AND ts >= %s "
                        "GROUP BY start ORDER BY start", (since, device, since)).fetchall()


@router.get("/fleet")
def fleet(request: Request, user: auth.User = Depends(web.viewer), site: str = "", state: str = "",
          page: int = 1) -> Response:
    console = request.app.state.console
    if state and state not in STATES:
        raise HTTPException(400, f"Unknown state {state!r}: one of {', '.join(STATES)}.")
    page = max(1, page)
    with console.db.connection() as conn:
        rows, counts = screens(conn, console.clock(), site or None, state or None, (page - 1) * PAGE)
        all_sites = sites(conn)
    total = counts[state] if state else sum(counts.values())
    context = {"screens": rows, "counts": counts, "sites": all_sites, "site": site, "state": state, "page": page,
               "pages": max(1, -(-total // PAGE)), "total": total, "states": STATES}
    template = "fleet_rows.html" if request.headers.get("x-fragment") else "fleet.html"
    return web.render(request, template, **context)


@router.get("/screens/{device}")
def screen(request: Request, device: str, user: auth.User = Depends(web.viewer)) -> Response:
    check_device_id(device, "screen")
    console = request.app.state.console
    now = console.clock()
    with console.db.connection() as conn:
        row = device_row(conn, device, now)
        if row is None:
            raise HTTPException(404, f"No screen {device} has reported to this fleet.")
        history = health_history(conn, device, now - timedelta(hours=HISTORY_HOURS))
        recent = commands.recent(conn, device)
    chart = None
    if history:
        zone = web.zone(request)
        chart = charts.embed("health", charts.lines(
            f"Last {HISTORY_HOURS} h", [h[0].astimezone(zone) for h in history],
            {"frames/s": [h[1] for h in history], "hottest °C": [h[2] for h in history]},
            x_range=((now - timedelta(hours=HISTORY_HOURS)).astimezone(zone), now.astimezone(zone))))
    return web.render(request, "screen.html", device=device, row=row, state=row["state"], chart=chart, commands=recent,
                      settings=remote_keys(), now=now, site=site_of(device),
                      link_problem=console.link_problem("commands"))
