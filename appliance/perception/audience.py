"""Anonymous audience counts for operators: faces seen by age band (and gender), per hour, opt-in, k-anonymous.

Off unless the device's ``[audience] counts`` is true.  Counted are the faces whose age perception
guessed (while an experience asks for age: face and age do not run in attract, where they would cost
every idle frame); each track once, when its smoothed estimate stands on ``DECIDED`` guesses, under
the audience band of that estimate's age (``BANDS``: disjoint, unlike the screen's overlapping
10-year ranges, so a face is in exactly one).

Invariants (privacy, k-anonymity with ``K``): every number that leaves is a count of at least ``K``
faces, or the "other" remainder that names no band or gender.
- An hour's counts are published when the hour is over, and only when at least ``K`` faces are in
  them; an hour with fewer is carried into the next hour, and the hours add up until ``K`` faces are
  reached, so one event may cover several hours (``from`` .. ``until``, whole hours).  Counts are
  never dropped while the kiosk runs.
- In an event, a band (or gender) is named only with a count of at least ``K``; the smaller ones are
  added up under "other" (present only when not zero).  ``faces`` is the total: the named counts and
  "other" add up to it.
- A stop publishes the counts so far only when they reach ``K`` (``until``: the end of the running
  hour, so a restart within that hour can give a second event over it: add them); fewer are dropped,
  never written anywhere, so the operator's totals are a lower bound, short by less than ``K`` faces
  per stop.
- The event: ``{"from": "2026-11-30T09:00:00+00:00", "until": "2026-11-30T10:00:00+00:00",
  "faces": n, "bands": {band: n, "other": n}}`` (and ``"genders": {...}`` when gender counts are on;
  "unknown" for faces whose gender was not guessed): counts only, no image, no per-person record, no
  time finer than the hour.  In memory: the counts not yet published and the track numbers of faces
  still in front (so one standing across the hour is not counted twice); a track that is gone is
  forgotten at the next frame.

The clock is an argument (wall-clock seconds), so the counts are tested with scripted input.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from appliance.perception.face import Face

EVENT = "audience_hour"
#: Guesses a face's band must stand on before it is counted (the age experience shows it from 5 too).
DECIDED = 5
#: The k of k-anonymity: no count below it is published under a name, and no event has fewer faces.
K = 5
HOUR_S = 3600
#: Audience bands, disjoint: (name, the age it starts at), youngest first; each runs to the next's start.
BANDS = (("kid", 0.0), ("teen", 13.0), ("18-29", 18.0), ("30-44", 30.0), ("45-59", 45.0), ("60+", 60.0))
OTHER = "other"


def audience_band(age: float) -> str:
    """The one audience band ``age`` falls in."""
    return [name for name, start in BANDS if age >= start][-1] if age >= 0 else BANDS[0][0]


def suppressed(counts: Counter[str], k: int) -> dict[str, int]:
    """``counts`` with every count below ``k`` added up under "other" (absent when nothing is), sorted."""
    named = {name: n for name, n in sorted(counts.items()) if n >= k}
    other = sum(counts.values()) - sum(named.values())
    return {**named, OTHER: other} if other else named


def _iso(hour: float) -> str:
    return datetime.fromtimestamp(hour, timezone.utc).isoformat()


class AudienceCounts:
    def __init__(self, publish: Callable[[str, Mapping[str, Any]], Any], gender: bool = False,
                 decided: int = DECIDED, k: int = K) -> None:
        if k < 1:
            raise ValueError(f"audience k {k}: at least 1")
        self.publish, self.gender, self.decided, self.k = publish, gender, decided, k
        self._hour: float | None = None      # the running hour's start
        self._since: float | None = None     # the start of the first hour in the unpublished counts
        self._bands: Counter[str] = Counter()
        self._genders: Counter[str] = Counter()
        self._counted: set[int] = set()

    def see(self, faces: Iterable[Face], now: float) -> None:
        """This frame's faces at wall-clock ``now``: the counts are published first when an hour is over."""
        hour = math.floor(now / HOUR_S) * HOUR_S
        if self._hour is not None and hour != self._hour:
            self._publish(until=self._hour + HOUR_S)
        self._hour = hour
        faces = [face for face in faces if face.track_id]
        self._counted &= {face.track_id for face in faces}
        for face in faces:
            estimate = face.age
            if face.track_id in self._counted or estimate is None or estimate.guesses < self.decided:
                continue
            self._counted.add(face.track_id)
            if self._since is None:
                self._since = hour
            self._bands[audience_band(estimate.age)] += 1
            if self.gender:
                self._genders[estimate.gender or "unknown"] += 1

    def close(self) -> None:
        """The kiosk stops: the counts so far are published if they reach ``k``, else dropped; tracks forgotten."""
        if self._hour is not None:
            self._publish(until=self._hour + HOUR_S)
        self._bands.clear()
        self._genders.clear()
        self._counted.clear()
        self._hour = self._since = None

    def _publish(self, until: float) -> None:
        """The counts since ``_since`` as one event when they reach ``k`` (then zeroed); else they are kept."""
        faces = sum(self._bands.values())
        if faces < self.k or self._since is None:
            return
        data: dict[str, Any] = {"from": _iso(self._since), "until": _iso(until), "faces": faces,
                                "bands": suppressed(self._bands, self.k)}
        if self.gender:
            data["genders"] = suppressed(self._genders, self.k)
        self.publish(EVENT, data)
        self._bands.clear()
        self._genders.clear()
        self._since = None
