"""Anonymous audience counts for operators: faces seen per hour by age band (and gender), opt-in.

Off unless the device's ``[audience] counts`` is true.  Counted are the faces whose age perception
guessed (while an experience asks for age: face and age do not run in attract, where they would cost
every idle frame); each track once, when its smoothed estimate stands on ``DECIDED`` guesses, under
the band of that estimate.

Invariants (privacy): what leaves is one ``audience_hour`` event per hour with faces seen,
``{"hour": "2026-11-30T19:00:00+00:00", "faces": n, "bands": {band: n}}`` (and ``"genders": {...}``
when gender counts are on; "unknown" for faces whose gender was not guessed) — counts only, no image,
no per-person record, no time finer than the hour.  In memory: the hour's counts and the track
numbers of faces still in front (so one standing across the hour is not counted twice); a track
that is gone is forgotten at the next frame, and after an hour is published nothing of it remains
but zeroed counts.  A stop publishes the hour so far, so one hour may come in two events: add them.
The clock is an argument (wall-clock seconds), so the counts are tested with
scripted input.
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
HOUR_S = 3600


class AudienceCounts:
    def __init__(self, publish: Callable[[str, Mapping[str, Any]], Any], gender: bool = False,
                 decided: int = DECIDED) -> None:
        self.publish, self.gender, self.decided = publish, gender, decided
        self._hour: int | None = None
        self._bands: Counter[str] = Counter()
        self._genders: Counter[str] = Counter()
        self._counted: set[int] = set()

    def see(self, faces: Iterable[Face], now: float) -> None:
        """This frame's faces at wall-clock ``now``: the hour before is published first when it is over."""
        hour = math.floor(now / HOUR_S) * HOUR_S
        if self._hour is not None and hour != self._hour:
            self.publish_hour()
        self._hour = hour
        faces = [face for face in faces if face.track_id]
        self._counted &= {face.track_id for face in faces}
        for face in faces:
            estimate = face.age
            if face.track_id in self._counted or estimate is None or estimate.guesses < self.decided:
                continue
            self._counted.add(face.track_id)
            self._bands[estimate.band] += 1
            if self.gender:
                self._genders[estimate.gender or "unknown"] += 1

    def publish_hour(self) -> None:
        """The hour's counts as one event (none when nobody was counted), then zeroed."""
        if self._hour is not None and self._bands:
            data: dict[str, Any] = {"hour": datetime.fromtimestamp(self._hour, timezone.utc).isoformat(),
                                    "faces": sum(self._bands.values()), "bands": dict(sorted(self._bands.items()))}
            if self.gender:
                data["genders"] = dict(sorted(self._genders.items()))
            self.publish(EVENT, data)
        self._bands.clear()
        self._genders.clear()

    def close(self) -> None:
        """The kiosk stops: the hour so far is published, and the tracks forgotten."""
        self.publish_hour()
        self._counted.clear()
        self._hour = None
