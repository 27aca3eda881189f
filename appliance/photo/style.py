"""Painted styles for a finished photo: one of the 26 built-in styles or the campaign's own painting, with a
stroke size, the shopper's face given back where the painting made it unrecognisable; off the render loop.

How the stroke size is set: a style network's receptive field is fixed in its input's pixels, so the size of
the image it sees sets the size of the strokes on the print.  The built-in styles (``multistyle26``, any
size) see the photo at STROKE_SIDES' long side; the campaign's own painting (Magenta's arbitrary style
transformer, 384x384 only) sees it at TILE_SIDES' long side in overlapping 384-pixel tiles, feathered
together.  Either is scaled back to the photo's size and laid over it at the style's ``strength``.

The face: the shopper's faces (found by perception's still face stage on the unstyled photo, those whose
centre lies in the shopper's box) are measured before and after (``likeness``: the agreement of the face's
grey gradients at the scale of eyes and mouth, brush texture smoothed away).  Below LIKE_ENOUGH the original
face is blended back inside a feathered mask of the mesh's outline, by how much was lost: nothing at
LIKE_ENOUGH, RESTORE_MAX at LOST or below.  The threshold is measured on the astronaut's face in a print
(168 px wide), painted at full strength: the styles that leave it recognisable by eye (built-in 5 and 19 at
fine and medium strokes, a painting at any stroke) keep 0.73-0.89; style 19 at bold strokes, where eyes and
mouth are gone, 0.53 (0.59 at strength 0.9: given back at 0.37, then 0.76); the block style 17, 0.03-0.25 (given back
at RESTORE_MAX).  The star is left painted: it is part of the painting, and its
face is the campaign's drawing, not a person who must recognise themselves.

Memory: a style network's activations grow with the image it paints (the built-in styles' first layer alone
is 69 MB at a print's 896 pixels, and the run holds two such at once), so a ``Styler`` holds its models only
for a job (``Styler.job``: the samples, one photo's painting) and releases them, and the memory they and the
painting used is handed back to the system, when the job is done: between photos a kiosk keeps none of it.
Loading them again costs about 0.1 s a job (the strips' parts 0.15 s).  An image of more than
WHOLE_MAX_PIXELS (fine strokes: 1440 pixels) is painted in strips (appliance/photo/stylenet.py): the same
painting for less than a medium stroke's whole run takes (measured at 1440x960: 129 MB against 417, in
1.35 s against 0.77).

Invariants: the result has the photo's size and dtype (BGR uint8); the photo itself is never changed; each
arbitrary style's 100-number vector is computed once, when the ``Styler`` is made (a bad painting or model
fails then, naming its file); the models are loaded at the first paint of a job and released at its end
(a paint outside a job is a job of its own); one photo at a time per ``Styler`` (a lock: its runners are
not shared between threads).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from appliance.content import Bundle
from appliance.errors import ApplianceError
from appliance.experience.photo import BUILT_IN_STYLES, ORIGINAL, PhotoStyle, Stroke
from appliance.inference.backend import Inference, Runner
from appliance.media import DEFAULT_LIMITS, MediaLimits, read_image
from appliance.memory import hand_back
from appliance.perception.face import Face
from appliance.perception.pose_tracker import PoseSettings
from appliance.photo.compose import Photo
from appliance.photo.desk import PhotoDesk
from appliance.photo.stylenet import MODEL as MULTISTYLE
from appliance.photo.stylenet import StripedStyles

Box = tuple[int, int, int, int]
T = TypeVar("T")

PREDICT, TRANSFORM = "arbitrary_style_predict", "arbitrary_style_transform"
#: The long side the built-in styles see the photo at, per stroke size (measured on a 1800x1200 print).
STROKE_SIDES: dict[str, int] = {"fine": 1440, "medium": 896, "bold": 512}
#: Above this many pixels the built-in styles paint in strips (fine strokes; medium's 896x597 runs whole).
WHOLE_MAX_PIXELS = 600_000
#: The long side the campaign's painting style sees the photo at (in TILE-pixel tiles), per stroke size.
TILE_SIDES: dict[str, int] = {"fine": 1152, "medium": 768, "bold": 384}
TILE, OVERLAP = 384, 64
PREDICT_SIDE = 256
#: A face whose likeness falls below this is given back (see the module's docstring for the measurements).
LIKE_ENOUGH = 0.7
#: At this likeness or below the original face is given back at RESTORE_MAX.
LOST = 0.45
RESTORE_MAX = 0.85
#: The width faces are compared at, pixels; the blur that smooths strokes away, in face widths.
LIKENESS_WIDTH, LIKENESS_BLUR = 96, 1 / 48
#: The mask's feather, in face widths.
FEATHER = 0.08
#: The sample each style is shown on in the booth's preview (w, h), and the stroke it is painted with there.
SAMPLE_SIZE, SAMPLE_STROKE = (360, 240), "bold"


@dataclass(frozen=True)
class FaceRestored:
    """One face of the shopper: its box, its likeness before and after, and how much of it was given back."""

    box: Box
    likeness: float
    restored: float
    after: float


@dataclass(frozen=True)
class Styled:
    image: np.ndarray
    faces: tuple[FaceRestored, ...]
    timings_ms: dict[str, float]


def likeness(original: np.ndarray, styled: np.ndarray, box: Box) -> float:
    """How much of the face in ``box`` ``styled`` keeps (-1..1): the agreement of both crops' grey gradients
    (the cosine of the two gradient fields) at LIKENESS_WIDTH, blurred by LIKENESS_BLUR of the face's width so
    that brush texture is smoothed away and the edges of eyes, nose, mouth and face outline remain."""
    x, y, w, h = box
    if w < 4 or h < 4:
        raise ApplianceError(f"a face box {box} is too small to compare")
    size = (LIKENESS_WIDTH, max(4, round(LIKENESS_WIDTH * h / w)))
    fields = []
    for image in (original, styled):
        grey = cv2.cvtColor(cv2.resize(image[y:y + h, x:x + w], size, interpolation=cv2.INTER_AREA),
                            cv2.COLOR_BGR2GRAY).astype(np.float32)
        grey = cv2.GaussianBlur(grey, (0, 0), LIKENESS_WIDTH * LIKENESS_BLUR)
        fields.append(np.stack([cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)]).ravel())
    a, b = fields
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norm) if norm > 0 else 0.0


def restoring(like: float) -> float:
    """How much of the original face is given back for a face kept at ``like``."""
    return float(np.clip((LIKE_ENOUGH - like) / (LIKE_ENOUGH - LOST), 0.0, 1.0)) * RESTORE_MAX


def face_mask(face: Face, size: tuple[int, int]) -> np.ndarray:
    """float32 0..1 of ``size`` (w, h): the mesh's outline filled, feathered by FEATHER of the face's width."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    hull = cv2.convexHull(np.round(face.landmarks[:, :2]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    sigma = max(1.0, face.box[2] * FEATHER)
    return cv2.GaussianBlur(mask, (0, 0), sigma).astype(np.float32) / 255.0


def _face_box(face: Face, size: tuple[int, int]) -> Box:
    x, y, w, h = face.box
    x0, y0 = max(0, int(x)), max(0, int(y))
    return x0, y0, min(size[0], int(np.ceil(x + w))) - x0, min(size[1], int(np.ceil(y + h))) - y0


def _inside(face: Face, box: Box) -> bool:
    x, y, w, h = face.box
    cx, cy = x + w / 2, y + h / 2
    return box[0] <= cx < box[0] + box[2] and box[1] <= cy < box[1] + box[3]


def _padded(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` reflect-padded at the bottom and right to at least ``height`` x ``width``."""
    return cv2.copyMakeBorder(image, 0, max(0, height - image.shape[0]), 0, max(0, width - image.shape[1]),
                              cv2.BORDER_REFLECT_101)


def _scaled(image: np.ndarray, long_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    size = (max(4, round(width * scale)), max(4, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def _rgb_batch(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)[None])


def _bgr(output: np.ndarray) -> np.ndarray:
    """A model's HxWx3 RGB output in 0..1 as BGR uint8 (one float copy, scaled in place)."""
    scaled = np.clip(output, 0.0, 1.0)
    scaled *= 255.0
    scaled += 0.5
    return cv2.cvtColor(scaled.astype(np.uint8), cv2.COLOR_RGB2BGR)


def _window(size: int, overlap: int) -> np.ndarray:
    """A tile's 1-D weight: ramps up over ``overlap`` at both ends (never zero), 1 in between."""
    ramp = np.minimum(np.arange(size, dtype=np.float32) + 1, np.arange(size, 0, -1, dtype=np.float32))
    return np.minimum(1.0, ramp / overlap)


def _starts(length: int) -> list[int]:
    if length <= TILE:
        return [0]
    count = int(np.ceil((length - OVERLAP) / (TILE - OVERLAP)))
    return [round(i * (length - TILE) / (count - 1)) for i in range(count)]


class Styler:
    """The campaign's styles, ready to paint photos: each painting's style vector computed, the models loaded
    for each job (``job``)."""

    def __init__(self, styles: Sequence[PhotoStyle], directory: Path, inference: Inference,
                 limits: MediaLimits = DEFAULT_LIMITS,
                 find_faces: Callable[[np.ndarray], Sequence[Face]] | None = None) -> None:
        self.styles = {style.name: style for style in styles}
        self._inference = inference
        self._lock = threading.Lock()
        self._holding = threading.Lock()
        self._jobs = 0
        self._held: dict[str, Runner | StripedStyles] = {}   # the job's models, by name
        self._vectors: dict[str, np.ndarray] = {}
        painted = [style for style in styles if style.image is not None]
        with self.job():
            for model in ([MULTISTYLE] if any(s.index is not None for s in styles) else []) + \
                         ([TRANSFORM] if painted else []):
                self._runner(model)
            if painted:
                predict = inference.load(PREDICT)
                for style in painted:
                    self._vectors[style.name] = self._style_vector(predict, directory / style.image, limits)
                del predict
        self._faces = find_faces   # a still's faces (``StillFaces``); None: no face given back

    @property
    def loaded(self) -> list[str]:
        """The style models held now (none between jobs); the built-in styles cut in strips as ``...:strips``."""
        return sorted(self._held)

    @contextmanager
    def job(self) -> Iterator[None]:
        """Everything painted inside is one job: the models are loaded once (at its first paint) and released,
        their memory handed back, when the outermost job ends (jobs may nest and overlap across threads)."""
        with self._holding:
            self._jobs += 1
        try:
            yield
        finally:
            with self._holding:
                self._jobs -= 1
                if self._jobs == 0 and self._held:
                    self._held.clear()
                    hand_back()

    def _runner(self, model: str) -> Runner:
        """``model``'s runner for the job in progress, loaded at its first use (call within ``job``)."""
        return self._hold(model, lambda: self._inference.load(model))

    def _striped_styles(self) -> StripedStyles:
        """The built-in styles cut for painting in strips, for the job in progress (call within ``job``)."""
        return self._hold(f"{MULTISTYLE}:strips", lambda: StripedStyles(self._inference))

    def _hold(self, name: str, load: Callable[[], T]) -> T:
        with self._holding:
            if name not in self._held:
                self._held[name] = load()
            return self._held[name]

    @staticmethod
    def _style_vector(predict, path: Path, limits: MediaLimits) -> np.ndarray:
        painting = read_image(path, limits=limits)
        height, width = painting.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        square = cv2.resize(painting[top:top + side, left:left + side], (PREDICT_SIDE, PREDICT_SIDE),
                            interpolation=cv2.INTER_AREA)
        (vector,) = predict.run([_rgb_batch(square)])
        return vector.reshape(1, 1, 1, -1)

    def style(self, name: str) -> PhotoStyle:
        if name not in self.styles:
            raise ApplianceError(f"no style {name!r} (the campaign's: {', '.join(self.styles) or 'none'})")
        return self.styles[name]

    def paint(self, image: np.ndarray, name: str, stroke: Stroke | None = None) -> np.ndarray:
        """``image`` (BGR uint8) in style ``name`` at ``stroke`` (default: the style's), at ``image``'s size,
        laid over it at the style's strength; no face given back.  A job of its own outside one (the models
        are released before ``apply`` looks for faces)."""
        style = self.style(name)
        stroke = stroke or style.stroke
        with self.job(), self._lock:
            if style.index is not None:
                painted = self._built_in(image, style.index, STROKE_SIDES[stroke])
            else:
                painted = self._painting(image, self._vectors[name], TILE_SIDES[stroke])
        painted = cv2.resize(painted, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_CUBIC)
        if style.strength < 1.0:
            painted = cv2.addWeighted(painted, style.strength, image, 1.0 - style.strength, 0.0)
        return painted

    def apply(self, image: np.ndarray, name: str, person_box: Box | None, stroke: Stroke | None = None) -> Styled:
        """``image`` painted (``paint``), the shopper's faces (those centred in ``person_box``; None: every face)
        given back where the painting made them unrecognisable."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ApplianceError(f"a style paints a BGR uint8 HxWx3 photo, got {image.dtype} {image.shape}")
        timings: dict[str, float] = {}
        start = time.perf_counter()
        painted = self.paint(image, name, stroke)
        timings["paint"] = round((time.perf_counter() - start) * 1000.0, 1)
        start = time.perf_counter()
        restored = self._give_faces_back(image, painted, person_box)
        timings["faces"] = round((time.perf_counter() - start) * 1000.0, 1)
        return Styled(painted, restored, timings)

    def _give_faces_back(self, image: np.ndarray, painted: np.ndarray, person_box: Box | None
                         ) -> tuple[FaceRestored, ...]:
        if self._faces is None:
            return ()
        size = (image.shape[1], image.shape[0])
        faces = self._faces(image)
        restored = []
        for face in faces:
            box = _face_box(face, size)
            if (person_box is not None and not _inside(face, person_box)) or box[2] < 4 or box[3] < 4:
                continue
            before = likeness(image, painted, box)
            strength = restoring(before)
            if strength > 0:
                x, y, w, h = box
                margin = round(w * FEATHER * 3)
                x0, y0 = max(0, x - margin), max(0, y - margin)
                x1, y1 = min(size[0], x + w + margin), min(size[1], y + h + margin)
                weight = face_mask(face, size)[y0:y1, x0:x1, None] * strength
                region = painted[y0:y1, x0:x1].astype(np.float32)
                painted[y0:y1, x0:x1] = np.round(region + (image[y0:y1, x0:x1] - region) * weight).astype(np.uint8)
            restored.append(FaceRestored(box, round(before, 3), round(strength, 3),
                                         round(likeness(image, painted, box), 3)))
        return tuple(restored)

    def _built_in(self, image: np.ndarray, index: int, long_side: int) -> np.ndarray:
        small = _scaled(image, long_side)
        height, width = small.shape[:2]
        batch = _rgb_batch(_padded(small, -(-height // 4) * 4, -(-width // 4) * 4))
        del small   # while the network runs, only its input is alive
        weights = np.zeros(BUILT_IN_STYLES, np.float32)
        weights[index] = 1.0
        if batch.shape[1] * batch.shape[2] > WHOLE_MAX_PIXELS:
            output = self._striped_styles().paint(batch, weights)
        else:
            (output,) = self._runner(MULTISTYLE).run([batch, weights])
        return _bgr(output[0].transpose(1, 2, 0)[:height, :width])

    def _painting(self, image: np.ndarray, vector: np.ndarray, long_side: int) -> np.ndarray:
        small = _scaled(image, long_side)
        height, width = small.shape[:2]
        padded = _padded(small, max(height, TILE), max(width, TILE))
        total = np.zeros(padded.shape, np.float32)
        weight = np.zeros(padded.shape[:2] + (1,), np.float32)
        window = np.outer(_window(TILE, OVERLAP), _window(TILE, OVERLAP))[:, :, None]
        transform = self._runner(TRANSFORM)
        for top in _starts(padded.shape[0]):
            for left in _starts(padded.shape[1]):
                tile = padded[top:top + TILE, left:left + TILE]
                (output,) = transform.run([_rgb_batch(tile), vector])
                total[top:top + TILE, left:left + TILE] += output[0] * window
                weight[top:top + TILE, left:left + TILE] += window
        return _bgr((total / weight)[:height, :width])


def styled_photo(photo: Photo, styler: Styler, name: str, jpeg_quality: int, screen_size: tuple[int, int],
                 stroke: Stroke | None = None) -> Photo:
    """``photo`` in style ``name`` (the shopper's faces given back as ``Styler.apply`` does), encoded again;
    its timings gain ``style`` (painting, faces and encoding) and their ``total`` includes it."""
    start = time.perf_counter()
    styled = styler.apply(photo.image, name, photo.person_box, stroke)
    ok, encoded = cv2.imencode(".jpg", styled.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise ApplianceError("the styled photo could not be encoded as JPEG")
    screen = cv2.resize(styled.image, screen_size, interpolation=cv2.INTER_AREA)
    spent = round((time.perf_counter() - start) * 1000.0, 1)
    timings = {**photo.timings_ms, "style": spent, "total": round(photo.timings_ms.get("total", 0.0) + spent, 1)}
    return replace(photo, image=styled.image, jpeg=encoded.tobytes(), screen=screen, timings_ms=timings)


def sample_picture(background: np.ndarray, star: np.ndarray) -> np.ndarray:
    """What the styles are shown on in the preview: the world's background with the star (BGRA) standing in
    the middle, SAMPLE_SIZE."""
    width, height = SAMPLE_SIZE
    picture = cv2.resize(background, SAMPLE_SIZE, interpolation=cv2.INTER_AREA)
    scale = height * 0.85 / star.shape[0]
    small = cv2.resize(star, (max(1, round(star.shape[1] * scale)), max(1, round(star.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    small = small[:, :width]
    x, y = (width - small.shape[1]) // 2, height - small.shape[0]
    alpha = small[:, :, 3:].astype(np.float32) / 255.0
    region = picture[y:y + small.shape[0], x:x + small.shape[1]].astype(np.float32)
    picture[y:y + small.shape[0], x:x + small.shape[1]] = np.round(region + (small[:, :, :3] - region) * alpha
                                                                   ).astype(np.uint8)
    return picture


def samples(styler: Styler, picture: np.ndarray) -> dict[str, np.ndarray]:
    """Each style painted on ``picture`` at SAMPLE_STROKE (no face to give back), by name, and ``picture``
    itself as ``Original``; one job."""
    with styler.job():
        return {ORIGINAL: picture, **{name: styler.paint(picture, name, SAMPLE_STROKE) for name in styler.styles}}


def desk_and_styles(bundle: Bundle, world: str, inference: Inference, limits: MediaLimits, pose: PoseSettings,
                    find_faces: Callable[[np.ndarray], Sequence[Face]] | None) -> tuple[PhotoDesk, Styler]:
    """The photo desk of ``bundle``'s ``world`` and its campaign's styles (their models load for each job)."""
    desk = PhotoDesk(bundle, inference, world, limits, pose=pose)
    return desk, Styler(desk.config.styles, Path(bundle.directory), inference, limits, find_faces)
