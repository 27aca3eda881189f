"""A finished keepsake's part of a booth visit, shared by the photo booth and the face fusion: the job that makes it,
the keepsake on the review screen, the shopper's consent that keeps it (shared, printed when the prompt offered it),
its QR code and the done screen (the keepsake at the left, the QR or what will happen instead, the print's status),
over the shopper live or a dark panel, with the countdown's number. Each scene owns one ``KeepsakeVisit`` beside its
``booth.Booth`` and says what its keepsake is called (``Wording``); the scene makes the keepsake and publishes its
own events.

Invariants: nothing leaves the device before the shopper's consent (``keep`` only on the booth's review → done); the
QR is made once, and only once the keepsake's link exists; while a keepsake is on screen the screen is private (no
fleet screenshot shows it) and it is private no longer once the keepsake is dropped; a keepsake is dropped (discarded
from the desk) on a retake, on exit and when it passed its retention before the consent (the booth then fails, with
``Wording.gone`` as the problem); a job still pending on exit is cancelled (its keepsake deleted once made); the
review's prompt offers only what the desk can do when it is drawn, and a print is sent only when it was offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from appliance.errors import ApplianceError
from appliance.experience.api import Action, Context, Moment, TextBlock
from appliance.experience.keepsake import Keepsake
from appliance.experiences.photobooth.booth import Booth, Phase

GOLD, WHITE, SOFT = (255, 214, 90), (255, 255, 255), (220, 220, 230)
#: The technician's keys of a keepsake's visit: take it, consent, try again.
KEYS = {"space": "shoot", "y": "consent", "r": "retake"}


def retake_asked(moment: Moment) -> bool:
    """A swipe either way, or the technician's key: try again (on the review screen)."""
    return any(action in (Action.NEXT, Action.PREVIOUS) for action in moment.actions) or "retake" in moment.inputs
#: The phases with the shopper live on screen.
LIVE = (Phase.PREVIEW, Phase.COUNTDOWN, Phase.DEVELOPING, Phase.FAILED)


@dataclass(frozen=True)
class Wording:
    """What a scene calls its keepsake and where it shows it."""

    retake_event: str          # published when the shopper tries again (with photo_id and take)
    scan: str                  # above the QR code
    printed: str               # on the done screen when the keepsake will only be printed
    gone: str                  # the problem when it passed its retention on the review screen
    notice: str                # the campaign's notice under the review's prompt
    review_share: float        # the keepsake's size on the review screen (share of the screen)
    done_share: float          # its size on the done screen
    both_prompt: str | None = None   # the review's prompt while sharing, printing and a retake are offered


class KeepsakeVisit:
    """The keepsake's job, the keepsake and its QR for one visit of a scene (``booth`` is the scene's own)."""

    def __init__(self, booth: Booth, wording: Wording) -> None:
        self.booth = booth
        self.wording = wording
        self.job: Any = None            # the keepsake being made (a photo desk's job)
        self.keepsake: Keepsake | None = None
        self.qr: np.ndarray | None = None
        self.problem = ""               # what the failed screen may say: the scene's line, or ``Wording.gone``
        self._offered_print = False     # what the review's prompt offered when it was last drawn
        self._shown: tuple[tuple[str, int, int], np.ndarray] | None = None   # the keepsake at its size on screen

    # -- what happens -------------------------------------------------------------------------------

    def made(self) -> Any:
        """The keepsake's job once it is done (no longer held here), else None."""
        if self.job is None or not self.job.done:
            return None
        job, self.job = self.job, None
        return job

    def show(self, context: Context, moment: Moment, keepsake: Keepsake) -> None:
        """The made keepsake on the review screen: the booth told, the screen private and new."""
        self.keepsake = keepsake
        self.booth.taken(moment.now)
        context.keepsakes.private(True)
        context.new_screen()

    def follow(self, context: Context, moment: Moment, before: Phase) -> None:
        """After the booth's update from ``before``: a retake drops the keepsake, the consent keeps it, the done
        screen's QR is made once the link exists."""
        booth, desk = self.booth, context.keepsakes
        if before is Phase.REVIEW and booth.phase is Phase.PREVIEW:
            context.publish(self.wording.retake_event, {"photo_id": self.keepsake.photo_id, "take": booth.takes})
            self.drop(context)
        if before is Phase.REVIEW and booth.phase is Phase.DONE:
            try:   # printed only when the prompt offered it: a job sent to a paused queue prints once it is enabled
                desk.keep(self.keepsake, share=True, print=self._offered_print)
            except ApplianceError:   # gone past its retention while on screen: say so, try again
                self.problem = self.wording.gone
                self.drop(context)
                booth.failed(moment.now)
        if booth.phase is Phase.DONE and self.qr is None and self.keepsake is not None:
            link = desk.link(self.keepsake)
            if link is not None:
                self.qr = desk.qr(link, context.canvas.size[1] * 2 // 5)

    def drop(self, context: Context) -> None:
        """The keepsake off the desk and the screen, which is private no longer."""
        if self.keepsake is not None:
            context.keepsakes.discard(self.keepsake)
        self.keepsake, self.qr = None, None
        context.keepsakes.private(False)

    def exit(self, context: Context) -> None:
        """Left: a pending job cancelled (deleted once made), the keepsake dropped."""
        if context.keepsakes is not None:
            if self.job is not None:
                context.keepsakes.cancel(self.job)
            self.drop(context)

    # -- what it looks like -----------------------------------------------------------------------------

    def backdrop(self, context: Context, moment: Moment) -> bool:
        """The shopper live until there is a keepsake to look at (True: the scene draws its star beside them),
        then a dark panel under the review and done screens."""
        if self.booth.phase in LIVE:
            context.stage.show(moment.perception)
            return True
        width, height = context.canvas.size
        context.canvas.panel((0, 0, width, height), (12, 14, 30), opacity=1.0)
        return False

    def draw(self, context: Context, moment: Moment, lines: TextBlock) -> None:
        """The countdown's number, the review or the done screen, while the booth is on one (the scene draws the
        rest)."""
        width, height = context.canvas.size
        if self.booth.phase is Phase.COUNTDOWN:
            lines.text(str(self.booth.seconds_left(moment.now)), (width // 2, int(height * 0.3)),
                       size=height // 8 * 2, colour=GOLD, backdrop=True)
        elif self.keepsake is not None and self.booth.phase is Phase.REVIEW:
            self._draw_review(context, lines)
        elif self.keepsake is not None and self.booth.phase is Phase.DONE:
            self._draw_done(context, lines)

    def _draw_review(self, context: Context, lines: TextBlock) -> None:
        """The keepsake, the prompt and the notice."""
        width, height = context.canvas.size
        small = height // 22
        self._draw_keepsake(context, (width // 2, int(height * 0.43)), self.wording.review_share)
        lines.text(self._prompt(context), (width // 2, int(height * 0.86)), size=small, colour=WHITE)
        lines.text(context.keepsakes.notice(self.wording.notice), (width // 2, int(height * 0.93)),
                   size=small * 2 // 3, colour=SOFT)

    def _prompt(self, context: Context) -> str:
        """The review's prompt, true to what this screen can do now (share, print, retake)."""
        desk = context.keepsakes
        share, prints = desk.can_share(), desk.can_print()
        self._offered_print = prints
        keep = ("print and take it home" if share and prints else "take it home by QR" if share
                else "print it" if prints else "keep it on screen")
        retake = " · swipe: try again" if self.booth.retakes_left > 0 else ""
        if share and prints and self.wording.both_prompt is not None:
            return self.wording.both_prompt if retake else f"Thumbs up: {keep}"
        return f"Thumbs up: {keep}{retake}"

    def _draw_done(self, context: Context, lines: TextBlock) -> None:
        """The keepsake at the left; at the right the QR (or what will happen instead) and the print's status."""
        width, height = context.canvas.size
        small = height // 22
        desk = context.keepsakes
        right = width * 3 // 4
        self._draw_keepsake(context, (width * 3 // 10, height // 2), self.wording.done_share)
        if self.qr is not None:
            context.canvas.picture(self.qr, (right, int(height * 0.45)))
            lines.text(self.wording.scan, (right, int(height * 0.12)), size=small, colour=GOLD)
        elif desk.can_share():
            lines.text("Getting your link ready…", (right, int(height * 0.45)), size=small)
        elif desk.can_print():
            lines.text(self.wording.printed, (right, int(height * 0.45)), size=small)
        else:
            lines.text("Sharing and printing are not available right now", (right, int(height * 0.45)),
                       size=small * 3 // 4)
        status = desk.print_status(self.keepsake)
        if status:
            lines.text(status[:1].upper() + status[1:], (right, int(height * 0.82)), size=small, colour=WHITE)

    def _draw_keepsake(self, context: Context, centre: tuple[int, int], share: float) -> None:
        """The keepsake at ``share`` of the screen, resized once per keepsake and size, not every frame."""
        width, height = context.canvas.size
        image = self.keepsake.screen
        scale = min(width * share / image.shape[1], height * share / image.shape[0])
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        key = (self.keepsake.photo_id, *size)
        if self._shown is None or self._shown[0] != key:
            self._shown = key, cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        context.canvas.picture(self._shown[1], centre)
