"""What shoppers did, for the brand: the analytics page's numbers, read from the hourly rollups, never the events.

Every query takes a psycopg connection and a ``Filter`` (a time range, the operator's IANA zone, and optionally a
campaign, a site, a screen) and reads ``fleet_hours`` (the whole fleet, or one campaign), ``site_hours`` or
``event_hours`` (a screen), all maintained by ingest (``appliance.ops.rollups``), so a month of a thousand screens
is a few thousand rows whatever the events number.

Invariants:

- The range is whole UTC hours (``rollups.hours``): an hour counts when it starts in [since, until).  Hours are
  shown in the operator's zone; days are the operator's days, an hour counted on the day it starts (exact for
  zones whose offset is whole hours; a :30 zone's days are cut at the half hour).
- A site is a site as the console lists them (``rollups.SITE_SQL``), or a prefix of such sites ending before a
  dash (``mall`` holds ``mall-01`` and ``mall-02``): read from ``site_hours``; a screen from ``event_hours``.
- Sessions are ``session_start`` events; their dwell is ``session_end``'s ``dwell_s``.  Plays are
  ``experience_chosen`` by experience; RPS games are ``rps_result`` by winner (``rps_abandon`` the games left)
  and rounds ``rps_round`` by outcome (a draw is a round's); pose scores are each player's final score
  (``pose_final``'s ``scores``), in bands of ten.  The funnel is photos made (``photo_taken`` and
  ``fusion_made``) → shared → printed → QR scanned (``qr_scanned``, which the console records: ``record_scan``).
- ``record_scan`` stores its event through ``PostgresStore.insert``, the very statement ingest uses, so the scan
  is in the rollups in the same transaction and counted once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.errors import ApplianceError
from appliance.ops import rollups
from appliance.ops.eventstore import PostgresStore

#: The console's own tables for analytics: none (the rollups are the fleet's, created with its events).
SCHEMA: tuple[str, ...] = ()

FUNNEL = (("photos", ("photo_taken", "fusion_made")), ("shared", ("photo_shared",)),
          ("printed", ("photo_printed",)), ("QR scanned", ("qr_scanned",)))


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApplianceError(f"time zone {tz!r} is not an IANA zone (e.g. Europe/Paris)") from exc


@dataclass(frozen=True)
class Filter:
    """[since, until) (aware datetimes), the operator's zone, and what to narrow to (None: everything)."""

    since: datetime
    until: datetime
    tz: str = "UTC"
    campaign: str | None = None
    site: str | None = None
    device: str | None = None
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", _zone(self.tz))
        if self.since.tzinfo is None or self.until.tzinfo is None or not self.since < self.until:
            raise ApplianceError(f"analytics range {self.since} .. {self.until}: two aware times, since < until")

    @classmethod
    def last_days(cls, days: int, tz: str, now: datetime | None = None, **narrow: str | None) -> Filter:
        """The operator's last ``days`` days, today's included (from local midnight to the next)."""
        zone = _zone(tz)
        today = (now or datetime.now(timezone.utc)).astimezone(zone).date()
        since = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), zone)
        until = datetime.combine(today + timedelta(days=1), datetime.min.time(), zone)
        return cls(since, until, tz, **narrow)

    @property
    def hours(self) -> tuple[datetime, datetime]:
        return rollups.hours(self.since, self.until)

    def days(self) -> list[date]:
        """The operator's days the range touches."""
        first = self.since.astimezone(self.zone).date()
        last = (self.until - timedelta(microseconds=1)).astimezone(self.zone).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


Row = tuple[Any, str, str, int, float]  # bucket (None, an aware UTC hour or a local date), type, label, n, total

BUCKETS = {"all": "NULL::date", "hour": "hour", "day": "(hour AT TIME ZONE %(tz)s)::date"}


def _sums(conn: Any, narrow: Filter, types: Sequence[str], by: str = "all") -> list[Row]:
    """The rollup's (bucket, type, label, n, total) for ``types`` in ``narrow``, ``by`` all / hour / day."""
    since, until = narrow.hours
    params: dict[str, Any] = {"types": list(types), "since": since, "until": until, "tz": narrow.tz}
    where = ["type = ANY(%(types)s)", "hour >= %(since)s", "hour < %(until)s"]
    if narrow.campaign is not None:
        where.append("campaign = %(campaign)s")
        params["campaign"] = narrow.campaign
    if narrow.site is not None:  # names starting "<site>-" ('-' and '.' are neighbours in C order)
        params.update(site=narrow.site, site_low=f"{narrow.site}-", site_high=f"{narrow.site}.")
    if narrow.device is not None:
        table = "event_hours"
        where.append("device = %(device)s")
        params["device"] = narrow.device
        if narrow.site is not None:
            where.append("device >= %(site_low)s AND device < %(site_high)s")
    elif narrow.site is not None:
        table = "site_hours"
        where.append("(site = %(site)s OR site >= %(site_low)s AND site < %(site_high)s)")
    else:
        table = "fleet_hours"
    bucket = BUCKETS[by]
    query = (f"SELECT {bucket} AS bucket, type, label, sum(n)::bigint, sum(total) FROM {table} "
             f"WHERE {' AND '.join(where)} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
    return [(bucket_, type_, label, n, total) for bucket_, type_, label, n, total
            in conn.execute(query, params).fetchall()]


def _count(rows: Sequence[Row], *types: str, label: str | None = None) -> int:
    return sum(row[3] for row in rows if row[1] in types and (label is None or row[2] == label))


def _mean(rows: Sequence[Row], type_: str) -> float | None:
    n = _count(rows, type_)
    return sum(row[4] for row in rows if row[1] == type_) / n if n else None


def sessions_per_hour(conn: Any, narrow: Filter) -> list[tuple[datetime, int]]:
    """Each hour of the range (local aware datetimes, hours without sessions included) and its sessions."""
    counts = {row[0]: row[3] for row in _sums(conn, narrow, ("session_start",), "hour")}
    start, end = narrow.hours
    hours = [start + timedelta(hours=n) for n in range(int((end - start) / timedelta(hours=1)))]
    return [(hour.astimezone(narrow.zone), counts.get(hour, 0)) for hour in hours]


def sessions_per_day(conn: Any, narrow: Filter) -> list[tuple[date, int, float | None]]:
    """Each local day: sessions, and their mean dwell in seconds (None without a finished session)."""
    rows = _sums(conn, narrow, ("session_start", "session_end"), "day")
    return [(day, _count(on, "session_start"), _mean(on, "session_end"))
            for day in narrow.days() for on in ([row for row in rows if row[0] == day],)]


def plays_per_experience(conn: Any, narrow: Filter) -> list[tuple[str, int]]:
    """Each experience chosen, most played first."""
    rows = _sums(conn, narrow, ("experience_chosen",))
    return sorted(((row[2], row[3]) for row in rows), key=lambda play: (-play[1], play[0]))


@dataclass(frozen=True)
class RpsResults:
    shopper_wins: int   # games
    star_wins: int
    abandoned: int
    rounds_won: int     # rounds, from the shopper's side
    rounds_lost: int
    rounds_drawn: int


def rps_results(conn: Any, narrow: Filter) -> RpsResults:
    rows = _sums(conn, narrow, ("rps_result", "rps_abandon", "rps_round"))
    return RpsResults(_count(rows, "rps_result", label="shopper"), _count(rows, "rps_result", label="star"),
                      _count(rows, "rps_abandon"), _count(rows, "rps_round", label="win"),
                      _count(rows, "rps_round", label="lose"), _count(rows, "rps_round", label="draw"))


@dataclass(frozen=True)
class PoseScores:
    bands: list[tuple[int, int]]                    # (band's lowest score: 0, 10 … 100, players)
    per_day: list[tuple[date, int, float | None]]   # (local day, games, players' mean final score)


def pose_scores(conn: Any, narrow: Filter) -> PoseScores:
    rows = _sums(conn, narrow, ("pose_final", "pose_score"), "day")
    bands: dict[int, int] = dict.fromkeys(range(0, 101, 10), 0)
    for row in rows:
        if row[1] == "pose_score" and row[2].isdigit() and int(row[2]) in bands:
            bands[int(row[2])] += row[3]
    per_day = [(day, _count(on, "pose_final"), _mean(on, "pose_score"))
               for day in narrow.days() for on in ([row for row in rows if row[0] == day],)]
    return PoseScores(sorted(bands.items()), per_day)


def funnel(conn: Any, narrow: Filter) -> list[tuple[str, int]]:
    """Photos made → shared → printed → QR scanned."""
    rows = _sums(conn, narrow, [type_ for _, types in FUNNEL for type_ in types])
    return [(step, _count(rows, *types)) for step, types in FUNNEL]


@dataclass(frozen=True)
class Totals:
    sessions: int
    mean_dwell_s: float | None
    plays: int
    rps_games: int
    pose_games: int
    photos: int
    shared: int
    printed: int
    scanned: int


def totals(conn: Any, narrow: Filter) -> Totals:
    steps = [type_ for _, types in FUNNEL for type_ in types]
    rows = _sums(conn, narrow, ("session_start", "session_end", "experience_chosen", "rps_result", "pose_final",
                                *steps))
    photos, shared, printed, scanned = (_count(rows, *types) for _, types in FUNNEL)
    return Totals(_count(rows, "session_start"), _mean(rows, "session_end"), _count(rows, "experience_chosen"),
                  _count(rows, "rps_result"), _count(rows, "pose_final"), photos, shared, printed, scanned)


def campaigns(conn: Any, narrow: Filter) -> list[str]:
    """The campaigns that had sessions in the range (named: '' is left out), for the page's filter."""
    since, until = narrow.hours
    return [name for (name,) in conn.execute(
        "SELECT DISTINCT campaign FROM fleet_hours WHERE type = 'session_start' AND hour >= %s AND hour < %s "
        "AND campaign <> '' ORDER BY 1", (since, until)).fetchall()]


def _number(value: float | None) -> float | str:
    return "" if value is None else round(value, 2)


#: Each chart's CSV: its header and its rows.
CSV: dict[str, Callable[[Any, Filter], list[Sequence[Any]]]] = {
    "sessions-per-hour": lambda conn, narrow: [("hour", "sessions")] + [
        (hour.isoformat(), n) for hour, n in sessions_per_hour(conn, narrow)],
    "sessions-per-day": lambda conn, narrow: [("day", "sessions", "mean_dwell_s")] + [
        (day.isoformat(), n, _number(dwell)) for day, n, dwell in sessions_per_day(conn, narrow)],
    "plays": lambda conn, narrow: [("experience", "plays")] + plays_per_experience(conn, narrow),
    "rps": lambda conn, narrow: [("result", "count")] + [
        (name, getattr(results, name)) for results in (rps_results(conn, narrow),)
        for name in RpsResults.__dataclass_fields__],
    "pose-scores": lambda conn, narrow: [("day", "games", "mean_score")] + [
        (day.isoformat(), games, _number(mean)) for day, games, mean in pose_scores(conn, narrow).per_day],
    "pose-bands": lambda conn, narrow: [("score_from", "players")] + pose_scores(conn, narrow).bands,
    "funnel": lambda conn, narrow: [("step", "count")] + funnel(conn, narrow),
    "totals": lambda conn, narrow: [("measure", "value")] + [
        (name, _number(value) if isinstance(value, float) or value is None else value)
        for found in (totals(conn, narrow),) for name, value in vars(found).items()],
}


def csv_rows(conn: Any, narrow: Filter, chart: str) -> list[Sequence[Any]]:
    """``chart``'s CSV rows (``CSV``'s names), header first, for ``csv.writer``."""
    if chart not in CSV:
        raise ApplianceError(f"no chart {chart!r} to export (one of {', '.join(CSV)})")
    return CSV[chart](conn, narrow)


def record_scan(conn: Any, device: str, campaign: str, session: str | None, photo_id: str, ts: datetime) -> int:
    """A share page was opened: a ``qr_scanned`` event about ``device`` (seq 0: the fleet's record, not one the
    device sent), stored and counted in the rollups inside the caller's transaction; 1 (the rows it added)."""
    data = json.dumps({"photo_id": photo_id, "session": session, "campaign": campaign}, separators=(",", ":"))
    with conn.cursor() as cursor:
        for statement in PostgresStore.TEMPORARY:
            cursor.execute(statement)
        return PostgresStore.insert(cursor, [(str(uuid.uuid4()), device, 0, ts, "qr_scanned", data, False)])


def backfill(conn: Any, say: Callable[[str], None] = lambda line: None) -> list[str]:
    """At the console's migration: the rollups of the events stored before they existed (a month per transaction;
    ``conn`` with autocommit off, no transaction open); what was done."""
    made = rollups.backfill(conn, say)
    return [] if made is None else [f"rollups backfilled from the events stored before them ({made:,} rows)"]
