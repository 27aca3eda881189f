"""The face fusion's scene: the shopper live with the star's poster beside them, "Look at the screen" while their
face is turned, a held thumbs up → countdown → the sharpest frontal frame of the countdown's last second (its
face meshed again by the still face stage, unsmoothed) fused into the poster off the loop → the picture with the
notice → a fresh thumbs up keeps it (QR, print) → the menu.

Invariants: the visit's logic is the photo booth's ``Booth`` (countdown on the clock, consent only by a thumbs up
raised on the review screen after the reading time, limited retakes, timeouts); the fusion runs in
``Keepsakes.picture`` (off the loop; filed, shared, printed and deleted like a photo); the preview never fuses
(the poster is shown beside the shopper, nothing flickers); the countdown is started only while the face can be
fused; every line goes through a ``TextBlock`` (clear of faces); the finished picture's part of the visit is the
photo booth's ``KeepsakeVisit`` (nothing leaves before the consent; while the picture is on screen the screen is
private; dropped on a retake or exit).  The template's pixels (``Context.pixels``) and its face
(``Keepsakes.faces``, the still face stage) are asked once per campaign (``TemplateCache``), in a job as the scene
enters: a poster without a usable face fails the experience with the file's name a frame later; once known, a gold
ring marks on the poster the face the shopper's will take.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.errors import ApplianceError
from appliance.experience.api import MENU, Action, Context, Face, Moment, TextBlock, held_gesture, sharpness
from appliance.experiences.facefusion.config import FusionConfig
from appliance.experiences.facefusion.fusion import (
    FACE_OVAL,
    FaceRefused,
    TemplateFace,
    fuse,
    pose,
    refusal,
    template_face,
)
from appliance.experiences.photobooth.booth import Booth, Phase, Rules
from appliance.experiences.photobooth.keepsake_visit import GOLD, KeepsakeVisit, Wording, retake_asked

#: The stills considered: those of the countdown's last this many seconds (and its end).
STILL_WINDOW_S = 1.0
POSTER_SHARE = 0.62   # the poster beside the shopper: this share of the screen's height


def desk(context: Context) -> Any:
    """The kiosk's photo desk (``Context.keepsakes``), which the fusion files its picture with and asks for a still's
    faces; an ApplianceError when the kiosk gives none."""
    if context.keepsakes is None:
        raise ApplianceError("fusion needs the kiosk's photo desk (Context.keepsakes)")
    return context.keepsakes


class TemplateCache:
    """The template's face, found once per template and campaign (each campaign shown has a context of its own;
    the still face stage is slow)."""

    def __init__(self) -> None:
        self._known: weakref.WeakKeyDictionary[Any, dict[str, TemplateFace]] = weakref.WeakKeyDictionary()

    def face(self, context: Context, asset: str) -> TemplateFace:
        known = self._known.setdefault(context, {})
        if asset not in known:
            image = context.pixels(asset)
            known[asset] = template_face(image, desk(context).faces(image), asset)
        return known[asset]


TEMPLATES = TemplateCache()


@dataclass(frozen=True)
class Still:
    """A frame of the countdown with its face, and how good a still it is (sharper and more frontal: higher)."""

    image: np.ndarray
    landmarks: np.ndarray
    score: float


def still_score(image: np.ndarray, face: Face) -> float:
    """The face's sharpness (``sharpness`` of its box) lowered by its turn."""
    turn = pose(face.landmarks)
    box = tuple(round(v) for v in face.box)
    return sharpness(image, box) / (1.0 + abs(turn.yaw) / 10.0 + abs(turn.roll) / 10.0)


def still_mesh(found: tuple[Face, ...], tracked: np.ndarray) -> np.ndarray:
    """The still's own mesh of the tracked face (the still face stage's, unsmoothed: the tracker's smoothing trails a
    moving face by a little), the face found nearest the tracked one within half its width; the tracked mesh when
    none is."""
    centre, width = tracked[:, :2].mean(axis=0), float(np.ptp(tracked[:, 0]))
    near = [face for face in found if np.linalg.norm(face.landmarks[:, :2].mean(axis=0) - centre) < width / 2]
    return near[0].landmarks if near else tracked


def fusable(moment: Moment) -> tuple[Face | None, FaceRefused | None]:
    """The shopper's face in this moment (the largest) and why it cannot be fused (None: it can, or no face)."""
    perception = moment.perception
    if perception is None or not perception.faces:
        return None, None
    face = perception.faces[0]
    height, width = perception.frame.image.shape[:2]
    return face, refusal(face.landmarks, (width, height))


class FusionScene:
    def enter(self, context: Context, moment: Moment) -> None:
        config: FusionConfig = context.config
        self._config = config
        self.booth = Booth(Rules(countdown_s=config.countdown_s, retakes=config.retakes), moment.now)
        self._best: Still | None = None
        self._refused: FaceRefused | None = None
        self.visit = KeepsakeVisit(self.booth, Wording(
            retake_event="fusion_retake", scan="Scan to take it home", printed="Your picture will be printed",
            gone="Sorry, that picture is no longer here", notice=config.notice, review_share=0.7, done_share=0.55))
        desk(context)   # once the visit exists: the exit after this failure finds it
        asset = config.template   # its face found off the loop now: the outline drawn on it, the first fusion sooner
        self._template_job = context.jobs.submit(lambda: TEMPLATES.face(context, asset), "fusion template")
        self._template: TemplateFace | None = None

    # -- what happens -------------------------------------------------------------------------------

    def update(self, context: Context, moment: Moment) -> str | None:
        booth = self.booth
        if Action.BACK in moment.actions:
            return MENU
        if self._template_job is not None and self._template_job.done:
            job, self._template_job = self._template_job, None
            self._template = job.result()   # a poster without a usable face fails here, naming the file
        before = booth.phase
        face, self._refused = fusable(moment)
        held = held_gesture(moment.gestures)
        if before is Phase.PREVIEW and (face is None or self._refused is not None):
            held = None   # no countdown for a face that cannot be fused: the screen says why instead
        retake = retake_asked(moment)
        shoot = "shoot" in moment.inputs and face is not None and self._refused is None
        booth.update(moment.now, held, shoot, retake, "consent" in moment.inputs)
        if booth.phase is Phase.COUNTDOWN and before is Phase.PREVIEW:
            self._best = None
        if before is Phase.COUNTDOWN and face is not None and self._refused is None \
                and booth.seconds_left(moment.now) <= STILL_WINDOW_S:
            self._consider(moment, face)
        if booth.want_photo and self.visit.job is None:
            self._start(context, moment)
        job = self.visit.made()
        if job is not None:
            self._finish(context, moment, job)
        self.visit.follow(context, moment, before)
        return MENU if booth.finished else None

    def _consider(self, moment: Moment, face: Face) -> None:
        image = moment.perception.frame.image
        score = still_score(image, face)
        if self._best is None or score > self._best.score:
            self._best = Still(image.copy(), face.landmarks.copy(), score)

    def _start(self, context: Context, moment: Moment) -> None:
        """The fusion of the best still, off the loop; without one (the face turned away throughout), a retry."""
        still, self._best = self._best, None
        if still is None:
            self.visit.problem = "Look at the screen"
            self.booth.failed(moment.now)
            return
        asset = self._config.template
        faces = desk(context).faces

        def make() -> np.ndarray:
            started = time.monotonic()
            landmarks = still_mesh(faces(still.image), still.landmarks)
            fused = fuse(TEMPLATES.face(context, asset), still.image, landmarks).image
            self._fusion_ms = (time.monotonic() - started) * 1000
            return fused

        self._fusion_ms = 0.0
        self.visit.job = context.keepsakes.picture(make)

    def _finish(self, context: Context, moment: Moment, job: Any) -> None:
        try:
            keepsake = job.result()
        except FaceRefused as exc:   # the still's face: said on screen, then tried again (other errors: failsafe)
            self.visit.problem = exc.line
            self.booth.failed(moment.now)
        else:
            self.visit.problem = ""
            self.visit.show(context, moment, keepsake)
            context.publish("fusion_made", {"photo_id": keepsake.photo_id, "take": self.booth.takes,
                                            "ms": round(self._fusion_ms)})

    def exit(self, context: Context, reason: str) -> None:
        self.visit.exit(context)

    # -- what it looks like -----------------------------------------------------------------------------

    def draw(self, context: Context, moment: Moment) -> None:
        phase, canvas = self.booth.phase, context.canvas
        width, height = canvas.size
        lines = TextBlock(context)
        small = height // 22
        if self.visit.backdrop(context, moment):
            self._draw_poster(context)
        self.visit.draw(context, moment, lines)   # the countdown, the review and the done screen
        if phase is Phase.PREVIEW:
            if self._refused is not None:
                lines.text(self._refused.line, (width // 2, int(height * 0.12)), size=small * 2, colour=GOLD,
                           backdrop=True)
            else:
                lines.text(self._config.pose_prompt, (width // 2, int(height * 0.12)), size=small * 3 // 2,
                           backdrop=True)
            context.stage.cursor(moment, moment.hold_progress)
        elif phase is Phase.COUNTDOWN:
            if self._refused is not None:
                lines.text(self._refused.line, (width // 2, int(height * 0.5)), size=small * 3 // 2, backdrop=True)
        elif phase is Phase.DEVELOPING:
            lines.text(f"Putting you in {self._config.star_name}'s poster…", (width // 2, int(height * 0.12)),
                       size=small * 3 // 2, backdrop=True)
        elif phase is Phase.FAILED:
            lines.text(self.visit.problem or "Sorry, that did not work", (width // 2, int(height * 0.3)),
                       size=small * 2, colour=GOLD, backdrop=True)
            lines.text("Let's try again", (width // 2, int(height * 0.4)), size=small * 3 // 2, backdrop=True)
        lines.draw()

    def _draw_poster(self, context: Context) -> None:
        """The star's poster beside the shopper, where the layout keeps it clear of their head, and a gold ring
        round the face theirs will take (once the poster's face is known)."""
        height = context.canvas.size[1]
        image = context.image(self._config.template, round(height * POSTER_SHARE))
        (w, h) = image.get_size()
        centre = context.stage.layout.place((w, h), (0.8, 0.55))
        context.canvas.blit(image, centre)
        if self._template is not None:
            scale = h / self._template.image.shape[0]
            oval = self._template.points[list(FACE_OVAL)]
            middle = (oval.min(axis=0) + oval.max(axis=0)) / 2
            radius = float(np.ptp(oval, axis=0).max()) / 2 * scale * 1.1
            face = (round(centre[0] - w / 2 + middle[0] * scale), round(centre[1] - h / 2 + middle[1] * scale))
            context.canvas.ring(face, round(radius), 1.0, GOLD, max(2, height // 200))
