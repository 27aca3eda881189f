"""Helpers of the experience API for reading gestures over time (the navigation uses them too).

Invariants: pure, no clock of their own (each call takes ``now``), so an experience's
state machine stays testable with scripted input.
"""

from __future__ import annotations

from appliance.perception.hand import GestureState


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
