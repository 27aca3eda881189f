"""Gestures to UI actions: the per-frame GestureState stream becomes next / previous / confirm / back.

The render loop sees only the newest perception and may skip frames, so nothing
here depends on seeing a particular frame: swipes are recognised by their
serial number, fist and victory by a change of the *held* gesture (an edge of a
level that stays up while the hand does), and the open palm by how long its
level has lasted.
"""

from __future__ import annotations

from collections import Counter

from appliance.experience.api import Action, Hold, held_gesture
from appliance.perception.hand import GestureState

#: How long an open palm must stay up to mean "back".
BACK_HOLD_S = 1.0


#: A swipe moves content with the hand, as on a phone: a leftward swipe brings in the next item.
SWIPE_ACTIONS = {"left": Action.NEXT, "right": Action.PREVIOUS}


class Navigator:
    """Feeds on every frame's GestureState; counts what it recognised for the session's telemetry."""

    def __init__(self, hold_s: float = BACK_HOLD_S) -> None:
        self.back = Hold(hold_s)
        self.counts: Counter[str] = Counter()
        self._serial: int | None = None
        self._held: str | None = None
        self._started: float | None = None

    def update(self, gestures: GestureState, now: float) -> list[Action]:
        if self._started is None:
            self._started = now
        actions: list[Action] = []
        swipe = gestures.swipe
        if swipe is not None:
            # The first swipe seen may predate this navigator: it counts only if it happened since.
            new = swipe.serial > self._serial if self._serial is not None else swipe.at >= self._started
            if new:
                actions.append(SWIPE_ACTIONS[swipe.direction])
                self.counts["swipe"] += 1
            self._serial = swipe.serial
        held = held_gesture(gestures)
        if held != self._held:
            if held == "rock":
                actions.append(Action.CONFIRM)
                self.counts["fist"] += 1
            elif held == "scissors":
                actions.append(Action.SWITCH)
                self.counts["victory"] += 1
        self._held = held
        if self.back.update(held == "paper", now):
            actions.append(Action.BACK)
            self.counts["palm"] += 1
        return actions

    def take_counts(self) -> dict[str, int]:
        """The counts since the last call, which starts a new tally."""
        counts, self.counts = dict(self.counts), Counter()
        return counts
