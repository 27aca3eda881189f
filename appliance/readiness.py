"""When the kiosk counts as ready: a pure state machine, the clock passed in.

Ready is the first camera frame on the screen (display, models and camera all
work) or, when the camera is missing, the campaign's attract screen after a
grace period: the screen is then doing what it can, and waiting longer would
not bring the camera back.  systemd's READY and the end of a configuration's
trial go by this one rule (the kiosk and the systemd notifier each keep one).
"""

from __future__ import annotations

#: Seconds to wait for a first camera frame before counting as ready anyway (while a problem is reported).
READY_GRACE_S = 20.0


class Readiness:
    def __init__(self, grace_s: float = READY_GRACE_S) -> None:
        self.grace_s = grace_s
        self.ready = False
        self._started: float | None = None

    def update(self, now: float, frame_shown: bool, problem: str | None) -> str | None:
        """One loop turn; the reason the kiosk just became ready (once), else None."""
        if self._started is None:
            self._started = now
        if self.ready:
            return None
        if frame_shown:
            self.ready = True
            return "first camera frame shown"
        if problem is not None and now - self._started >= self.grace_s:
            self.ready = True
            return f"without a camera frame: {problem}"
        return None

    def overdue(self, now: float, deadline_s: float) -> bool:
        """Not ready ``deadline_s`` after the first update."""
        return not self.ready and self._started is not None and now - self._started >= deadline_s
