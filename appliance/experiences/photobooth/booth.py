"""The photo booth as a pure, time-driven state machine: pose, countdown, flash, review, consent, take-home.

No drawing and no clock of its own: ``update(now, ...)`` is called every frame with what the
shopper did, so tests script a whole visit with a fake clock.

Invariants:

- The countdown starts only from a held thumbs up or victory sign (or the technician's key) in
  the preview, and runs on ``now``: it never blocks.  At its end the photo is asked for once
  (``want_photo`` turns true until ``taken`` or ``failed`` is called).
- Nothing leaves the screen before ``consent``: sharing and printing are started only by the
  shopper's thumbs up on the review screen, after the notice was shown for the reading time,
  and only a thumbs up raised on that screen (one held since the countdown, often part of the
  photo's pose, must be lowered and raised again).  The review screen left alone for
  ``review_s`` ends the visit without consent.
- A retake is allowed ``retakes`` times; the last photo's review offers no retake.
- The style (``style``, an index into the ``styles`` choices, 0 the original photo) is chosen by swipes in
  the preview only (next/previous, wrapping round); it stays through the countdown and retakes, so a photo
  is taken in the style shown when the countdown started.  On the review screen a swipe is a retake.
- The done screen (QR and print status) stays ``done_s``, then the booth is over (``finished``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from appliance.experience.api import Hold

#: The held gestures that start the countdown and that consent.
START = ("thumb_up", "scissors")
CONSENT = ("thumb_up",)


class Phase(Enum):
    PREVIEW = "preview"        # the shopper with the star beside them, live
    COUNTDOWN = "countdown"    # 3-2-1
    DEVELOPING = "developing"  # the flash, then the photo being composed off the loop
    REVIEW = "review"          # the finished photo and the notice: thumbs up or try again
    DONE = "done"              # the QR and the print's status
    FAILED = "failed"          # the photo could not be made: a word, then back to the preview
    OVER = "over"


@dataclass(frozen=True)
class Rules:
    countdown_s: float = 3.0
    retakes: int = 2
    hold_s: float = 0.6        # a gesture held this long counts
    reading_s: float = 1.0     # the review screen is up this long before a thumbs up consents
    done_s: float = 25.0
    failed_s: float = 3.0
    review_s: float = 60.0
    styles: int = 1            # the choices of style: the original photo, then the campaign's styles
    style: int = 0             # the choice the preview opens on


class Booth:
    def __init__(self, rules: Rules, now: float) -> None:
        self.rules = rules
        self.phase = Phase.PREVIEW
        self.since = now
        self.takes = 0
        self.want_photo = False
        self.consented = False
        self.style = rules.style % rules.styles
        self._hold = Hold(rules.hold_s)
        self._last_held: str | None = None

    @property
    def retakes_left(self) -> int:
        return self.rules.retakes - (self.takes - 1)

    def seconds_left(self, now: float) -> int:
        """The countdown's number (3, 2, 1), 0 once it is over."""
        return max(0, int(self.rules.countdown_s - (now - self.since) + 0.999)) if self.phase is Phase.COUNTDOWN \
            else 0

    def _enter(self, phase: Phase, now: float) -> None:
        self.phase, self.since = phase, now
        self._hold = Hold(self.rules.hold_s)

    def update(self, now: float, held: str | None, shoot: bool = False, retake: bool = False,
               consent_key: bool = False, step: int = 0) -> None:
        """One frame: ``held`` is the driving hand's held gesture, ``shoot``/``consent_key`` the technician's keys,
        ``retake`` a swipe (or its key), ``step`` the swipe's direction (+1 next, -1 previous; 0: none)."""
        self._last_held = held
        if self.phase is Phase.PREVIEW:
            if self._hold.update(held in START, now) or shoot:
                self._enter(Phase.COUNTDOWN, now)
            elif step:
                self.style = (self.style + step) % self.rules.styles
        elif self.phase is Phase.COUNTDOWN:
            if now - self.since >= self.rules.countdown_s:
                self.takes += 1
                self.want_photo = True
                self._enter(Phase.DEVELOPING, now)
        elif self.phase is Phase.REVIEW:
            readable = now - self.since >= self.rules.reading_s
            if not readable and held not in CONSENT:
                self._hold.update(False, now)   # lowered while the notice is read: the next one is fresh
            if now - self.since >= self.rules.review_s:
                self._enter(Phase.OVER, now)
            elif readable and (self._hold.update(held in CONSENT, now) or consent_key):
                self.consented = True
                self._enter(Phase.DONE, now)
            elif retake and self.retakes_left > 0:
                self._enter(Phase.PREVIEW, now)
        elif self.phase is Phase.DONE:
            if now - self.since >= self.rules.done_s:
                self._enter(Phase.OVER, now)
        elif self.phase is Phase.FAILED:
            if now - self.since >= self.rules.failed_s:
                self._enter(Phase.PREVIEW, now)

    def without_styles(self) -> None:
        """The styles cannot be painted here: only the original photo is offered from now on."""
        self.rules = replace(self.rules, styles=1, style=0)
        self.style = 0

    def taken(self, now: float) -> None:
        """The photo asked for is finished and on screen."""
        self.want_photo = False
        self._enter(Phase.REVIEW, now)
        if self._last_held in CONSENT:   # a thumbs up still up from the photo is spent: consent is a new one
            self._hold.update(True, now)
            self._hold.consume()

    def failed(self, now: float) -> None:
        """The photo asked for could not be made (it does not count as a take)."""
        self.want_photo = False
        self.takes -= 1
        self._enter(Phase.FAILED, now)

    @property
    def finished(self) -> bool:
        return self.phase is Phase.OVER
