"""Gestures to UI actions, from scripted GestureState streams with a fake clock."""

from __future__ import annotations

from scripted import frames, state

from appliance.experience.api import Action, Hold
from appliance.kiosk.navigation import Navigator
from appliance.perception.hand import Swipe


def run(navigator: Navigator, script: list[tuple[float, object]]) -> list[tuple[float, Action]]:
    fired = []
    for now, gestures in script:
        fired += [(now, action) for action in navigator.update(gestures, now)]
    return fired


def test_each_new_swipe_serial_is_one_step_however_often_it_is_seen() -> None:
    navigator = Navigator()
    left = Swipe("left", 1, at=0.5)
    right = Swipe("right", 2, at=1.0)
    script = [(t, state(swipe=None)) for t in frames(0.0, 0.5)]
    script += [(t, state(swipe=left)) for t in frames(0.5, 1.0)]
    script += [(t, state(swipe=right)) for t in frames(1.0, 1.5)]
    assert [action for _, action in run(navigator, script)] == [Action.NEXT, Action.PREVIOUS]
    assert navigator.counts["swipe"] == 2


def test_swipes_missed_between_skipped_frames_still_count_and_old_ones_do_not() -> None:
    navigator = Navigator()
    assert navigator.update(state(swipe=Swipe("left", 7, at=-3.0)), 0.0) == []   # before this navigator
    assert navigator.update(state(swipe=Swipe("right", 9, at=0.9)), 1.0) == [Action.PREVIOUS]
    fresh = Navigator()
    assert fresh.update(state(hand=False), 0.0) == []
    assert fresh.update(state(swipe=Swipe("left", 1, at=0.2), hand=False), 0.4) == [Action.NEXT]


def test_a_fist_confirms_once_per_fist_not_every_frame() -> None:
    navigator = Navigator()
    script = [(t, state(None, label="rock")) for t in frames(0.0, 0.2)]     # settling: no held reading yet
    script += [(t, state("rock")) for t in frames(0.2, 2.0)]
    script += [(t, state(None)) for t in frames(2.0, 2.3)]
    script += [(t, state("rock")) for t in frames(2.3, 2.6)]
    fired = run(navigator, script)
    assert [action for _, action in fired] == [Action.CONFIRM, Action.CONFIRM]
    assert abs(fired[0][0] - 0.2) < 1e-9


def test_victory_switches_once_and_other_gestures_do_nothing() -> None:
    navigator = Navigator()
    script = [(t, state(label)) for label, (a, b) in
              (("thumb_up", (0, 1)), ("point", (1, 2)), ("scissors", (2, 3)), ("other", (3, 4)))
              for t in frames(a, b)]
    assert [action for _, action in run(navigator, script)] == [Action.SWITCH]


def test_open_palm_fills_the_ring_then_goes_back_once() -> None:
    navigator = Navigator()
    navigator.update(state("paper"), 0.0)
    navigator.update(state("paper"), 0.5)
    assert abs(navigator.back.progress(0.5) - 0.5) < 1e-9
    fired = run(navigator, [(t, state("paper")) for t in frames(0.5, 4.0)])
    assert [action for _, action in fired] == [Action.BACK]
    assert 1.0 <= fired[0][0] < 1.0 + 1.5 / 30
    assert navigator.back.progress(3.9) == 0.0                  # fired: the ring is gone while the palm stays
    navigator.update(state(hand=False), 4.0)                    # lowered...
    fired = run(navigator, [(t, state("paper")) for t in frames(4.1, 5.5)])
    assert [action for _, action in fired] == [Action.BACK]     # ...and raised again: back again


def test_a_short_palm_does_nothing() -> None:
    navigator = Navigator()
    script = [(t, state("paper")) for t in frames(0.0, 0.8)] + [(t, state("rock")) for t in frames(0.8, 1.6)]
    script += [(t, state("paper")) for t in frames(1.6, 2.4)]
    assert Action.BACK not in [action for _, action in run(navigator, script)]


def test_skipped_frames_neither_lose_nor_repeat_actions() -> None:
    navigator = Navigator()
    sparse = [(0.0, state("paper")), (0.6, state("paper")), (1.3, state("paper")), (2.9, state("paper")),
              (3.1, state("rock")), (3.9, state("rock"))]
    assert [(t, a) for t, a in run(navigator, sparse)] == [(1.3, Action.BACK), (3.1, Action.CONFIRM)]


def test_counts_are_taken_per_session() -> None:
    navigator = Navigator()
    run(navigator, [(0.0, state("rock")), (0.1, state("scissors")), (0.2, state("rock"))])
    assert navigator.take_counts() == {"fist": 2, "victory": 1}
    assert navigator.take_counts() == {}


def test_a_consumed_hold_waits_for_a_release() -> None:
    hold = Hold(1.0)
    assert not hold.update(True, 0.0)
    hold.consume()
    assert not hold.update(True, 5.0) and hold.progress(5.0) == 0.0
    hold.update(False, 5.1)
    assert not hold.update(True, 5.2) and hold.update(True, 6.2)
