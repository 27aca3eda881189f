"""The analytics page for brands: what shoppers did, per campaign, site and screen, as charts and CSV.

Invariants: every number comes from ``appliance.console.analytics`` (SQL over ingest's rollups of the events),
never from the page; the range is the operator's whole days (``PERIODS``), hours and days in their zone; the
filters are plain query parameters, so a view can be bookmarked and shared; each chart's CSV is the same
query's rows (``analytics.csv_rows``) under the same filters, a text that a spreadsheet would run as a formula
quoted as text.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from appliance.console import analytics, auth, charts, fleet, web
from appliance.console.analytics import Filter
from appliance.identity import check_device_id

router = APIRouter()
#: The periods offered, in the operator's days (today included).
PERIODS = {1: "Today", 7: "Last 7 days", 30: "Last 30 days", 90: "Last 90 days"}
#: Up to this many days sessions are charted per hour; beyond, per day only.
HOURLY_DAYS = 7


def _filter(request: Request, days: int, campaign: str, site: str, device: str) -> Filter:
    if days not in PERIODS:
        raise HTTPException(400, f"Period of {days} days: one of {', '.join(map(str, PERIODS))}.")
    if device:
        check_device_id(device, "screen")
    return Filter.last_days(days, web.zone(request).key, now=request.app.state.console.clock(),
                            campaign=campaign or None, site=site or None, device=device or None)


def _figures(conn: Any, narrow: Filter, days: int) -> dict[str, Any]:
    totals = analytics.totals(conn, narrow)
    per_day = analytics.sessions_per_day(conn, narrow)
    plays = analytics.plays_per_experience(conn, narrow)
    rps = analytics.rps_results(conn, narrow)
    pose = analytics.pose_scores(conn, narrow)
    funnel = analytics.funnel(conn, narrow)
    figures = {"totals": totals}
    if days <= HOURLY_DAYS:
        hours = analytics.sessions_per_hour(conn, narrow)
        figures["sessions-per-hour"] = charts.embed("sessions-per-hour", charts.lines(
            "Sessions per hour", [hour for hour, _ in hours], {"sessions": [n for _, n in hours]}, bars=True))
    figures["sessions-per-day"] = charts.embed("sessions-per-day", charts.lines(
        "Sessions per day", [day for day, _, _ in per_day], {"sessions": [n for _, n, _ in per_day]}, bars=True))
    figures["plays"] = charts.embed("plays", charts.bars(
        "Plays per experience", [name for name, _ in plays], [n for _, n in plays], horizontal=True)) \
        if plays else None
    figures["rps"] = charts.embed("rps", charts.bars(
        "Rock–paper–scissors games", ["shopper won", "star won", "left before the end"],
        [rps.shopper_wins, rps.star_wins, rps.abandoned])) if rps.shopper_wins + rps.star_wins + rps.abandoned else None
    figures["rps_rounds"] = rps
    players = sum(n for _, n in pose.bands)
    figures["pose-bands"] = charts.embed("pose-bands", charts.bars(
        "Pose game: players' final scores", [f"{low}–{low + 9}" if low < 100 else "100" for low, _ in pose.bands],
        [n for _, n in pose.bands])) if players else None
    figures["funnel"] = charts.embed("funnel", charts.funnel(
        "Photo funnel", [step for step, _ in funnel], [n for _, n in funnel])) \
        if funnel[0][1] else None
    return figures


@router.get("/analytics")
def page(request: Request, user: auth.User = Depends(web.viewer), days: int = 7, campaign: str = "", site: str = "",
         device: str = "") -> Response:
    narrow = _filter(request, days, campaign, site, device)
    console = request.app.state.console
    with console.db.connection() as conn:
        figures = _figures(conn, narrow, days)
        campaigns = analytics.campaigns(conn, Filter.last_days(90, narrow.tz, now=console.clock()))
        sites = fleet.sites(conn)
    query = urlencode({"days": days, "campaign": campaign, "site": site, "device": device})
    return web.render(request, "analytics.html", figures=figures, totals=figures["totals"], periods=PERIODS,
                      days=days, campaign=campaign, site=site, device=device, campaigns=campaigns, sites=sites,
                      query=query, narrow=narrow, last_day=narrow.days()[-1])


@router.get("/analytics.csv")
def export(request: Request, chart: str, user: auth.User = Depends(web.viewer), days: int = 7, campaign: str = "",
           site: str = "", device: str = "") -> Response:
    narrow = _filter(request, days, campaign, site, device)
    with request.app.state.console.db.connection() as conn:
        rows = analytics.csv_rows(conn, narrow, chart)
    out = io.StringIO()
    csv.writer(out).writerows([[_inert(cell) for cell in row] for row in rows])
    scope = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(part for part in (campaign, site, device) if part)) or "fleet"
    name = f"oivis-{chart}-{scope}-{narrow.since.date()}-{days}d.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _inert(cell: Any) -> Any:
    """A text cell a spreadsheet would take for a formula (labels come from screens) quoted as text."""
    return f"'{cell}" if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
