"""Anonymous audience counts: scripted faces through the hours (each track once, its band decided after
smoothing, one event per hour with counts only, nothing per face kept), off by default, and the perceiver
counting the astronaut from the real estimator."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from appliance.config import Config
from appliance.experience.api import FaceAge
from appliance.experience.testkit import face
from appliance.inference.backend import BackendOptions, Inference
from appliance.perception.audience import EVENT, AudienceCounts
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.pipeline import Perceiver
from appliance.sources.base import Frame

NINE = datetime(2026, 11, 30, 9, tzinfo=timezone.utc).timestamp()


def someone(track: int, band: str, guesses: int = 5, gender: str | None = None):
    ages = {"kid": 8.0, "teen": 15.0, "18-25": 21.0, "30-40": 35.0}
    return face((10 * track, 10, 20, 20), track, FaceAge(ages[band], band, guesses, gender, 0.8 if gender else None))


def test_each_track_is_counted_once_under_its_decided_band_and_the_hour_published_once_over() -> None:
    events: list[tuple[str, dict]] = []
    counts = AudienceCounts(lambda kind, data: events.append((kind, data)))
    counts.see([someone(1, "30-40", guesses=2)], NINE + 10)          # not decided yet: not counted
    for second in range(11, 40):                                      # decided, seen for half a minute: once
        counts.see([someone(1, "30-40"), someone(2, "kid", guesses=6)], NINE + second)
    counts.see([someone(3, "teen", guesses=1)], NINE + 50)            # never decided: never counted
    counts.see([someone(4, "kid")], NINE + 3599)
    assert events == []                                               # nothing before the hour is over
    counts.see([], NINE + 3600)
    assert events == [(EVENT, {"hour": "2026-11-30T09:00:00+00:00", "faces": 3, "bands": {"30-40": 1, "kid": 2}})]
    counts.see([], NINE + 7300)                                       # an hour with nobody counted: no event
    assert len(events) == 1


def test_a_shopper_standing_across_the_hour_is_counted_in_the_first_only() -> None:
    events: list[tuple[str, dict]] = []
    counts = AudienceCounts(lambda kind, data: events.append((kind, data)))
    counts.see([someone(1, "18-25")], NINE + 3590)
    counts.see([someone(1, "18-25")], NINE + 3610)
    counts.see([someone(1, "18-25"), someone(2, "teen")], NINE + 3620)
    counts.see([], NINE + 7200)
    assert [data["bands"] for _, data in events] == [{"18-25": 1}, {"teen": 1}]


def test_after_the_hour_nothing_per_face_is_kept() -> None:
    counts = AudienceCounts(lambda kind, data: None)
    counts.see([someone(1, "18-25"), someone(2, "kid")], NINE + 5)
    counts.see([], NINE + 3605)
    assert (counts._bands, counts._genders, counts._counted) == ({}, {}, set())


def test_gender_counts_only_when_on_and_the_event_holds_counts_only() -> None:
    events: list[tuple[str, dict]] = []
    counts = AudienceCounts(lambda kind, data: events.append((kind, data)), gender=True)
    counts.see([someone(1, "18-25", gender="female"), someone(2, "30-40", gender="male"), someone(3, "kid")], NINE)
    counts.close()                                                    # the kiosk stops: the hour so far
    ((kind, data),) = events
    assert data == {"hour": "2026-11-30T09:00:00+00:00", "faces": 3, "bands": {"18-25": 1, "30-40": 1, "kid": 1},
                    "genders": {"female": 1, "male": 1, "unknown": 1}}
    numbers = [value for part in (data["bands"], data["genders"]) for value in part.values()] + [data["faces"]]
    assert all(isinstance(value, int) for value in numbers)          # counts, never an age


def test_audience_counts_are_off_by_default() -> None:
    assert (Config().audience.counts, Config().audience.gender) == (False, False)
    assert Config().face.age_gender is False


def test_the_perceiver_counts_the_astronaut_once_from_the_real_estimator(astronaut: np.ndarray) -> None:
    events: list[tuple[str, dict]] = []
    perceiver = Perceiver(Inference("auto", BackendOptions(threads=1, soc=None)),
                          audience=AudienceCounts(lambda kind, data: events.append((kind, data))))
    needs = Needs(hands=0, face=EVERY_FRAME, age=EVERY_FRAME)
    for index in range(8):
        perceiver.process(Frame(astronaut, index, index / 25.0), needs)
    perceiver.close()
    ((kind, data),) = events
    assert kind == EVENT and data["faces"] == 1 and list(data["bands"].values()) == [1]
    assert set(data) == {"hour", "faces", "bands"} and data["hour"].endswith(":00:00+00:00")
