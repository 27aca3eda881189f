"""Is somebody in front of the screen?  Decided from mask coverage, with hysteresis both ways."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Presence:
    """Wakes after ``enter_frames`` frames above ``enter``; sleeps after ``leave_after_s`` below ``leave``.

    The asymmetry is deliberate: a passer-by's arm must not wake the screen, and
    a shopper who steps half out of frame must not lose their session.

    Each ``update`` counts as one look: while nobody is present the perception thread segments
    every frame once a mask may show somebody (``appliance.perception.schedule.watching``), so the
    ``enter_frames`` counted are masks of successive frames, not one mask repeated on the frames
    segmentation skipped at the presence rate.
    """

    enter: float
    leave: float
    leave_after_s: float
    enter_frames: int = 3
    present: bool = False
    _above: int = 0
    _empty_since: float | None = None

    def update(self, coverage: float, now: float) -> bool:
        if not self.present:
            self._above = self._above + 1 if coverage >= self.enter else 0
            if self._above >= self.enter_frames:
                self.present, self._empty_since = True, None
        elif coverage < self.leave:
            if self._empty_since is None:
                self._empty_since = now
            elif now - self._empty_since >= self.leave_after_s:
                self.present, self._above = False, 0
        else:
            self._empty_since = None
        return self.present
