"""Gestures to UI actions: the per-frame GestureState stream becomes next / previous / confirm / back.

The render loop sees only the newest perception and may skip frames, so nothing
here depends on seeing a particular frame: swipes are recognised by their
serial number, fist and victory by a change of the *held* gesture (an edge of a
level that stays up while the hand does), and the open palm by how long its
level has lasted.
"""

from __future__ import annotations

from collections import Counter
from enum import Enum

from appliance.perception.hand import GestureState

#: How long an open palm must stay up to mean "back".
BACK_HOLD_S = 1.0


class Action(Enum):
    PREVIOUS = "previous"
    NEXT = "next"
    CONFIRM = "confirm"
    BACK = "back"
    SWITCH = "switch"          # victory sign: another world in the live mirror
    ROCK = "rock"              # throws typed by a technician (R / P / S), so RPS runs without a camera
    PAPER = "paper"
    SCISSORS = "scissors"


#: A swipe moves content with the hand, as on a phone: a leftward swipe brings in the next item.
SWIPE_ACTIONS = {"left": Action.NEXT, "right": Action.PREVIOUS}


class Hold:
    """A level that must last ``seconds`` to count; it fires once, then waits for a release."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._since: float | None = None
        self._spent = False

    def update(self, active: bool, now: float) -> bool:
        """True on the one update at which the level has lasted long enough."""
        if not active:
            self._since, self._spent = None, False
            return False
        if self._spent:
            return False
        if self._since is None:
            self._since = now
        if now - self._since >= self.seconds:
            self._spent = True
            return True
        return False

    def consume(self) -> None:
        """Cancel the current hold: it counts again only after a release (e.g. a palm that was a throw)."""
        self._spent = True

    def progress(self, now: float) -> float:
        """0..1 while the level is building up; 0 when idle or already fired."""
        if self._since is None or self._spent:
            return 0.0
        return min(1.0, max(0.0, (now - self._since) / self.seconds))


def held_gesture(gestures: GestureState) -> str | None:
    """The stabilised gesture of the hand that drives the screen, if any."""
    return gestures.primary.held if gestures.primary else None


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
