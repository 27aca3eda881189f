"""The photo booth's scene: the live preview with the star beside the shopper, the countdown, the flash, the
finished photo with the notice, then the QR code and the print's status.  With the campaign's styles, the
preview says "swipe: change style" with the chosen style's name and its sample beside the shopper ("Original"
first), and the photo is painted in it ("Painting…" while the job runs; the countdown never waits); styles
whose samples cannot be painted (no style models on this kiosk) are not offered.

Invariants: drawing and asking only (the visit's logic is ``booth.Booth``, the finished photo's part of it
``keepsake_visit.KeepsakeVisit``; the photo, the upload and the print are the kiosk's photo desk,
``Context.keepsakes``); nothing leaves the screen before the shopper's thumbs up on the finished photo; while a
finished photo is on screen the screen is private (no fleet screenshot shows it); every line of text goes
through a ``TextBlock`` (clear of faces).
"""

from __future__ import annotations

import cv2
import numpy as np

from appliance.experience.api import MENU, Action, Context, Moment, TextBlock, held_gesture, mask_box, screen_corners
from appliance.experience.photo import ORIGINAL, PhotoConfig
from appliance.experiences.photobooth.booth import Booth, Phase, Rules
from appliance.experiences.photobooth.keepsake_visit import GOLD, KeepsakeVisit, Wording, retake_asked

FLASH_S = 0.35
STAR_STEP_PX = 24   # the star's drawn height is rounded to this, so few sizes are decoded
SAMPLE_SHARE = 0.2  # the style's sample: this share of the screen's height


class BoothScene:
    def enter(self, context: Context, moment: Moment) -> None:
        config: PhotoConfig = context.config
        self._config = config
        self.choices = (ORIGINAL, *(style.name for style in config.styles))
        default = self.choices.index(config.style_default) if config.style_default else 0
        self.booth = Booth(Rules(countdown_s=config.countdown_s, retakes=config.retakes, styles=len(self.choices),
                                 style=default), moment.now)
        self._samples_job = context.keepsakes.samples() if config.styles and context.keepsakes is not None else None
        self._samples: dict[str, np.ndarray] = {}
        self._sample_shown: tuple[tuple[str, tuple[int, int]], np.ndarray] | None = None
        self._flash_at = -1.0
        self.visit = KeepsakeVisit(self.booth, Wording(
            retake_event="photo_retake", scan="Scan to take your photo home", printed="Your photo will be printed",
            gone="Sorry, that photo is no longer here", notice=config.notice, review_share=0.66, done_share=0.5,
            both_prompt=config.review_prompt))

    # -- what happens -------------------------------------------------------------------------------

    def update(self, context: Context, moment: Moment) -> str | None:
        booth, desk, visit = self.booth, context.keepsakes, self.visit
        if desk is None:
            raise RuntimeError("the photo booth needs the kiosk's photo desk (Context.keepsakes)")
        if Action.BACK in moment.actions:
            return MENU
        before = booth.phase
        step = (Action.NEXT in moment.actions) - (Action.PREVIOUS in moment.actions)
        retake = retake_asked(moment)
        booth.update(moment.now, held_gesture(moment.gestures), "shoot" in moment.inputs, retake,
                     "consent" in moment.inputs, step)
        if self._samples_job is not None and self._samples_job.done:
            job, self._samples_job = self._samples_job, None
            try:
                self._samples = job.result()
            except Exception:  # noqa: BLE001 - styles this kiosk cannot paint are not offered; the photo still is
                self.choices = (ORIGINAL,)
                booth.without_styles()
        if booth.want_photo and visit.job is None:
            visit.job, self._flash_at = desk.take(self.style), moment.now
        job = visit.made()
        if job is not None:
            try:
                keepsake = job.result()
            except Exception:  # noqa: BLE001 - a photo that cannot be made is said on screen, then retried
                booth.failed(moment.now)
            else:
                visit.show(context, moment, keepsake)
                context.publish("photo_taken", {"photo_id": keepsake.photo_id, "take": booth.takes,
                                                "ms": round(keepsake.timings_ms.get("total", 0.0)),
                                                "style": keepsake.style or ORIGINAL})
        visit.follow(context, moment, before)
        return MENU if booth.finished else None

    @property
    def style(self) -> str | None:
        """The campaign style chosen now, None for the original photo."""
        return self.choices[self.booth.style] if self.booth.style else None

    def exit(self, context: Context, reason: str) -> None:
        self.visit.exit(context)

    # -- what it looks like -----------------------------------------------------------------------------

    def draw(self, context: Context, moment: Moment) -> None:
        phase, canvas = self.booth.phase, context.canvas
        width, height = canvas.size
        if self.visit.backdrop(context, moment):
            self._draw_star(context, moment)
        lines = TextBlock(context)
        small = height // 22
        self.visit.draw(context, moment, lines)   # the countdown, the review and the done screen
        if phase is Phase.PREVIEW:
            lines.text(self._config.pose_prompt, (width // 2, int(height * 0.12)), size=small * 3 // 2,
                       backdrop=True)
            context.stage.cursor(moment, moment.hold_progress)
            if len(self.choices) > 1:
                self._draw_style(context)
        elif phase is Phase.DEVELOPING:
            lines.text("Painting…" if self.style else "Developing…", (width // 2, int(height * 0.12)),
                       size=small * 3 // 2, backdrop=True)
        elif phase is Phase.FAILED:
            lines.text("Sorry, that photo did not work", (width // 2, int(height * 0.3)), size=small * 2,
                       backdrop=True)
            lines.text("Let's try again", (width // 2, int(height * 0.4)), size=small * 3 // 2, backdrop=True)
        lines.draw()
        flash = moment.now - self._flash_at
        if 0 <= flash < FLASH_S:
            canvas.panel((0, 0, width, height), (255, 255, 255), opacity=1.0 - flash / FLASH_S)

    def _draw_star(self, context: Context, moment: Moment) -> None:
        """The star's cut-out beside the shopper, their size, at the side the campaign says (or with more room)."""
        perception = moment.perception
        if perception is None:
            return
        box = mask_box(perception.alpha >= 128)
        if box is None:
            return
        corners = screen_corners(context.stage, box, (perception.alpha.shape[1], perception.alpha.shape[0]))
        if corners is None:
            return
        left, top, right, bottom = corners
        screen_w, screen_h = context.canvas.size
        star_h = max(STAR_STEP_PX, round((bottom - top) * self._config.star_scale / STAR_STEP_PX) * STAR_STEP_PX)
        star_h = min(star_h, screen_h)
        image = context.image(self._config.star, star_h)
        star_w = image.get_size()[0]
        side = self._config.star_side
        if side == "auto":
            side = "left" if left > screen_w - right else "right"
        centre_x = left - star_w // 2 if side == "left" else right + star_w // 2
        centre_x = min(max(centre_x, star_w // 2), screen_w - star_w // 2)
        context.canvas.blit(image, (round(centre_x), round(min(screen_h, bottom))), anchor="midbottom")

    def _draw_style(self, context: Context) -> None:
        """The chosen style's sample (once painted) beside the shopper, its name and the swipe under it."""
        width, height = context.canvas.size
        small = height // 22
        name = self.choices[self.booth.style]
        sample = self._samples.get(name)
        side = round(height * SAMPLE_SHARE)
        box = (round(side * 1.5), side) if sample is not None else (0, 0)
        label = (max(context.canvas.text_size(f"Style: {name}", small * 3 // 2)[0],
                     context.canvas.text_size("Swipe: change style", small)[0]), small * 3)
        block = (max(box[0], label[0]), box[1] + label[1])
        centre_x, centre_y = context.stage.layout.place(block, (0.84, 0.62))
        top = centre_y - block[1] // 2
        if sample is not None:
            if self._sample_shown is None or self._sample_shown[0] != (name, box):   # resized once per style and size
                self._sample_shown = (name, box), cv2.resize(sample, box, interpolation=cv2.INTER_AREA)
            shown = self._sample_shown[1]
            context.canvas.panel((centre_x - box[0] // 2 - 6, top - 6, box[0] + 12, box[1] + 12), GOLD, opacity=1.0)
            context.canvas.picture(shown, (centre_x, top + box[1] // 2))
        lines = TextBlock(context)
        lines.text(f"Style: {name}", (centre_x, top + box[1] + small), size=small * 3 // 2, colour=GOLD,
                   backdrop=True)
        lines.text("Swipe: change style", (centre_x, top + box[1] + small * 5 // 2), size=small, backdrop=True)
        lines.draw()
