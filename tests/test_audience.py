"""Anonymous audience counts: scripted faces through the hours (each track once, its band decided after
smoothing and disjoint, k-anonymous events: no named count below K, hours carried until K faces, a stop
below K publishes nothing), off by default, and the perceiver counting the astronaut from the real estimator."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from appliance.config import Config
from appliance.experience.api import FaceAge
from appliance.experience.testkit import face
from appliance.inference.backend import BackendOptions, Inference
from appliance.perception.audience import BANDS, EVENT, AudienceCounts, K, audience_band
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.pipeline import Perceiver
from appliance.sources.base import Frame

NINE = datetime(2026, 11, 30, 9, tzinfo=timezone.utc).timestamp()
AGES = {"kid": 8.0, "teen": 15.0, "18-29": 21.0, "30-44": 35.0, "45-59": 50.0, "60+": 70.0}


def someone(track: int, band: str, guesses: int = 5, gender: str | None = None):
    return face((10 * track, 10, 20, 20), track, FaceAge(AGES[band], "screen band", guesses, gender,
                                                         0.8 if gender else None))


def recorder() -> tuple[AudienceCounts, list[tuple[str, dict]]]:
    events: list[tuple[str, dict]] = []
    return AudienceCounts(lambda kind, data: events.append((kind, data))), events


def hour(offset: int) -> str:
    return datetime.fromtimestamp(NINE + 3600 * offset, timezone.utc).isoformat()


def test_audience_bands_are_disjoint_and_cover_every_age() -> None:
    assert K == 5
    edges = {12.9: "kid", 13.0: "teen", 17.9: "teen", 18.0: "18-29", 29.9: "18-29", 30.0: "30-44",
             44.9: "30-44", 45.0: "45-59", 59.9: "45-59", 60.0: "60+", 80.0: "60+", 0.25: "kid"}
    assert {age: audience_band(age) for age in edges} == edges
    assert [audience_band(age) for age in np.arange(0.25, 81, 0.25)].count("30-44") == 60   # [30, 45) once
    assert [name for name, _ in BANDS] == list(AGES)


def test_each_track_is_counted_once_under_its_decided_band_and_small_bands_fold_into_other() -> None:
    counts, events = recorder()
    counts.see([someone(1, "30-44", guesses=2)], NINE + 10)          # not decided yet: not counted
    for second in range(11, 40):                                      # decided, seen for half a minute: once
        counts.see([someone(1, "30-44"), someone(2, "kid", guesses=6)], NINE + second)
    counts.see([someone(3, "teen", guesses=1)], NINE + 50)            # never decided: never counted
    counts.see([someone(track, "18-29") for track in range(10, 16)], NINE + 60)
    counts.see([someone(4, "kid")], NINE + 3599)
    assert events == []                                               # nothing before the hour is over
    counts.see([], NINE + 3600)
    assert events == [(EVENT, {"from": hour(0), "until": hour(1), "faces": 9, "bands": {"18-29": 6, "other": 3}})]
    counts.see([], NINE + 7300)                                       # an hour with nobody counted: no event
    assert len(events) == 1


def test_hours_below_k_are_carried_until_k_faces_and_no_named_count_is_below_k() -> None:
    counts, events = recorder()
    counts.see([someone(1, "30-44")], NINE + 5)                       # one face in the 9 o'clock hour
    counts.see([someone(2, "60+"), someone(3, "60+")], NINE + 3605)   # two at 10
    counts.see([], NINE + 7205)
    assert events == []                                               # 3 faces: carried, nothing said
    counts.see([someone(track, "60+") for track in (4, 5, 6)], NINE + 3 * 3600 + 5)   # three at 12
    counts.see([], NINE + 4 * 3600)
    assert events == [(EVENT, {"from": hour(0), "until": hour(4), "faces": 6, "bands": {"60+": 5, "other": 1}})]
    counts.see([someone(track, "kid") for track in range(7, 12)], NINE + 4 * 3600 + 5)
    counts.see([], NINE + 5 * 3600)                                   # the carry is gone: this hour alone
    assert events[1] == (EVENT, {"from": hour(4), "until": hour(5), "faces": 5, "bands": {"kid": 5}})
    for _, data in events:
        assert data["faces"] >= K and sum(data["bands"].values()) == data["faces"]
        assert all(n >= K for band, n in data["bands"].items() if band != "other")


def test_a_stop_publishes_only_counts_that_reach_k() -> None:
    counts, events = recorder()
    counts.see([someone(1, "30-44", gender="female")], NINE + 5)     # one face, then the kiosk stops
    counts.close()
    assert events == []                                               # below K: dropped, not published
    counts.see([someone(2, "30-44")], NINE + 10)                      # nothing of the dropped face is carried
    counts.see([someone(track, "30-44") for track in range(3, 7)], NINE + 20)
    counts.close()
    assert events == [(EVENT, {"from": hour(0), "until": hour(1), "faces": 5, "bands": {"30-44": 5}})]


def test_a_shopper_standing_across_the_hour_is_counted_in_the_first_only() -> None:
    counts, events = recorder()
    crowd = [someone(track, "18-29") for track in range(1, 6)]
    counts.see(crowd, NINE + 3590)
    counts.see(crowd, NINE + 3610)
    counts.see([*crowd, *(someone(track, "teen") for track in range(6, 11))], NINE + 3620)
    counts.see([], NINE + 7200)
    assert [data["bands"] for _, data in events] == [{"18-29": 5}, {"teen": 5}]


def test_after_an_event_nothing_per_face_is_kept() -> None:
    counts, _ = recorder()
    counts.see([someone(track, "kid") for track in range(1, 6)], NINE + 5)
    counts.see([], NINE + 3605)
    assert (counts._bands, counts._genders, counts._counted, counts._since) == ({}, {}, set(), None)


def test_gender_counts_only_when_on_and_small_ones_fold_into_other() -> None:
    events: list[tuple[str, dict]] = []
    counts = AudienceCounts(lambda kind, data: events.append((kind, data)), gender=True)
    women = [someone(track, "18-29", gender="female") for track in range(1, 6)]
    counts.see([*women, someone(6, "30-44", gender="male"), someone(7, "kid")], NINE)
    counts.close()                                                    # the kiosk stops: 7 faces, published
    ((kind, data),) = events
    assert data == {"from": hour(0), "until": hour(1), "faces": 7, "bands": {"18-29": 5, "other": 2},
                    "genders": {"female": 5, "other": 2}}
    numbers = [value for part in (data["bands"], data["genders"]) for value in part.values()] + [data["faces"]]
    assert all(isinstance(value, int) for value in numbers)          # counts, never an age


def test_audience_counts_are_off_by_default_and_k_is_at_least_one() -> None:
    assert (Config().audience.counts, Config().audience.gender) == (False, False)
    assert Config().face.age_gender is False
    with pytest.raises(ValueError, match="audience k 0"):
        AudienceCounts(lambda kind, data: None, k=0)


def test_the_perceiver_counts_the_astronaut_once_from_the_real_estimator(astronaut: np.ndarray) -> None:
    """With k 1 (a single face in the test image); the device always runs with K."""
    events: list[tuple[str, dict]] = []
    perceiver = Perceiver(Inference("auto", BackendOptions(threads=1, soc=None)),
                          audience=AudienceCounts(lambda kind, data: events.append((kind, data)), k=1))
    needs = Needs(hands=0, face=EVERY_FRAME, age=EVERY_FRAME)
    for index in range(8):
        perceiver.process(Frame(astronaut, index, index / 25.0), needs)
    perceiver.close()
    ((kind, data),) = events
    assert kind == EVENT and data["faces"] == 1 and data["bands"] in ({"18-29": 1}, {"30-44": 1})
    assert set(data) == {"from", "until", "faces", "bands"} and data["from"].endswith(":00:00+00:00")
