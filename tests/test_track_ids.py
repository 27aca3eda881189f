"""Track ids (perception/track_ids.py), shared by the pose and face trackers: kept, given back, never reused."""

from __future__ import annotations

from appliance.perception.track_ids import REMEMBER_S, TrackIds


def test_a_track_found_again_soon_in_the_same_place_gets_its_id_back_and_others_new_ones() -> None:
    ids = TrackIds()
    first, second = ids.assign((0, 0, 100, 100)), ids.assign((300, 0, 100, 100))
    assert (first, second) == (1, 2)
    ids.lost(first, (0, 0, 100, 100), at=10.0)
    ids.forget(10.0 + REMEMBER_S)
    assert ids.assign((300, 300, 100, 100)) == 3, "elsewhere: a new id"
    assert ids.assign((10, 5, 100, 100)) == first, "the same place, within REMEMBER_S: its id back"
    assert ids.assign((10, 5, 100, 100)) == 4, "given back once"
    ids.lost(second, (300, 0, 100, 100), at=20.0)
    ids.forget(20.0 + REMEMBER_S + 0.1)
    assert ids.assign((300, 0, 100, 100)) == 5, "lost too long ago"
    ids.lost(5, (300, 0, 100, 100), at=30.0)
    ids.reset()
    assert ids.assign((300, 0, 100, 100)) == 6, "after a reset nobody is remembered, and no id is reused"
