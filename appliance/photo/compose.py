"""``compose_photo``: a captured camera frame made into the campaign's finished photo, off the render loop.

The steps, each timed (``Photo.timings_ms``): matte (still segmentation and edge refinement) →
pose (only when the shopper is cut by the frame's bottom, none was given and the desk finds
poses) → layout (shopper measured, star placed) → shopper (the frame mapped into the photo and
colour-matched to the world around them) → star (scaled, colour-matched) → shadows → blend (the
star, then the shopper in front) → layers (the world's snow and overlays, frame, logo) → encode
(the print JPEG and the screen version).

Invariants: the frame is shown as the screen showed it (mirrored when the world mirrors); the
world's background is never changed (the desk's copy serves every photo); boxes are (x, y, w, h)
in the photo's pixels, clipped to it; a frame with nobody in it is an ApplianceError, never a
photo of the star alone; no pygame and no shared state beyond the desk, so it runs on a job
thread (one photo at a time per desk: its model runners are not shared between threads).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import cv2
import numpy as np

from appliance.boxes import mask_box
from appliance.colour import transfer
from appliance.errors import ApplianceError
from appliance.memory import hand_back
from appliance.perception.body import Pose
from appliance.photo.desk import PhotoDesk
from appliance.photo.harmonize import strengths, surroundings
from appliance.photo.place import layout, measure, reaches_bottom
from appliance.photo.shadow import shade

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Photo:
    image: np.ndarray                 # BGR uint8 at the print size
    jpeg: bytes                       # ``image`` encoded at the campaign's JPEG quality: the file printed and shared
    screen: np.ndarray                # BGR uint8, the print's aspect at the screen size
    person_box: Box
    star_box: Box
    timings_ms: dict[str, float]


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[name] = round((time.perf_counter() - start) * 1000.0, 1)


def _clip(box: tuple[float, float, float, float], size: tuple[int, int]) -> Box:
    """(x0, y0, x1, y1) as an (x, y, w, h) box of whole pixels inside ``size`` (w, h)."""
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(size[0], int(np.ceil(box[2]))), min(size[1], int(np.ceil(box[3])))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def _visible_box(alpha: np.ndarray, near: Box) -> Box:
    """The box of ``alpha``'s pixels at or above one half, looked for within ``near``."""
    x, y, w, h = near
    box = mask_box(alpha[y:y + h, x:x + w] >= 128)
    return (x, y, 0, 0) if box is None else (x + box[0], y + box[1], box[2], box[3])


def _blend(canvas: np.ndarray, layer: np.ndarray, alpha: np.ndarray, box: Box) -> None:
    """``layer`` over ``canvas`` in place within ``box``, weighted by uint8 ``alpha`` (all three canvas-sized)."""
    x, y, w, h = box
    if w <= 0 or h <= 0:
        return
    weight = alpha[y:y + h, x:x + w].astype(np.float32)
    region = canvas[y:y + h, x:x + w]
    region[:] = cv2.blendLinear(layer[y:y + h, x:x + w], region, weight, 255.0 - weight)


def _mirrored(pose: Pose, width: int) -> Pose:
    landmarks = pose.landmarks.copy()
    landmarks[:, 0] = width - landmarks[:, 0]
    return replace(pose, landmarks=landmarks)


def compose_photo(frame: np.ndarray, desk: PhotoDesk, pose: Pose | None = None, now: float = 0.0) -> Photo:
    """The finished photo of BGR uint8 ``frame`` (the camera's full resolution) for ``desk``'s campaign.

    ``pose`` is the shopper's, in ``frame``'s pixels as captured (unmirrored), when the caller has it
    (the live perception's); ``now`` is the time the world's snow is drawn at.  The print-size planes
    the steps made are freed and handed back to the system before it returns.
    """
    try:
        return _compose(frame, desk, pose, now)
    finally:
        hand_back()


def _compose(frame: np.ndarray, desk: PhotoDesk, pose: Pose | None, now: float) -> Photo:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ApplianceError(f"a photo needs a BGR uint8 HxWx3 frame, got {frame.dtype} {frame.shape}")
    config, size = desk.config, desk.size
    frame_size = (frame.shape[1], frame.shape[0])
    clock = _Clock()
    with clock.step("matte"):
        alpha = desk.matte.matte(frame)
    if pose is None and desk.finds_pose and reaches_bottom(alpha):
        with clock.step("pose"):
            poses = desk.poses(frame)
            pose = poses[0] if poses else None
    with clock.step("layout"):
        if desk.scene.mirror:
            frame, alpha = cv2.flip(frame, 1), cv2.flip(alpha, 1)
            pose = pose and _mirrored(pose, frame_size[0])
        shopper = measure(alpha, pose)
        if shopper is None:
            raise ApplianceError("no person found in the picture")
        placed = layout(shopper, frame_size, size, (desk.star.shape[1], desk.star.shape[0]), config.star_side,
                        config.star_scale)
    with clock.step("shopper"):
        layer = cv2.warpAffine(frame, placed.transform, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        matte = cv2.warpAffine(alpha, placed.transform, size, flags=cv2.INTER_LINEAR, borderValue=0)
        corners = np.array(shopper.box, np.float32).reshape(2, 2) @ placed.transform[:, :2].T + placed.transform[:, 2]
        person_box = _visible_box(matte, _clip(tuple(corners.reshape(-1)), size))
        _harmonize(desk.background, layer, matte, person_box, config.harmonize)
    with clock.step("star"):
        star_layer, star_matte, star_box = _star(desk, placed.star_box)
    canvas = desk.background.copy()
    with clock.step("shadows"):
        if config.shadow:
            star_feet = placed.star_box[1] + placed.star_box[3]
            shade(canvas, star_matte, star_box, star_feet if star_feet < size[1] else None)
            feet = person_box[1] + person_box[3]
            shade(canvas, matte, person_box, feet if feet < size[1] - 1 else None)
    with clock.step("blend"):
        _blend(canvas, star_layer, star_matte, star_box)
        _blend(canvas, layer, matte, person_box)
    with clock.step("layers"):
        for drawn in desk.layers:
            drawn.draw(canvas, now)
    with clock.step("encode"):
        ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality])
        if not ok:
            raise ApplianceError("the photo could not be encoded as JPEG")
        screen = cv2.resize(canvas, config.screen_size(), interpolation=cv2.INTER_AREA)
    timings = {**clock.timings, "total": round(sum(clock.timings.values()), 1)}
    return Photo(canvas, encoded.tobytes(), screen, person_box, _visible_box(star_matte, star_box), timings)


def _harmonize(world: np.ndarray, layer: np.ndarray, alpha: np.ndarray, box: Box, strength: float) -> None:
    """``layer`` under ``box`` colour-matched in place to the world around ``box``."""
    x, y, w, h = box
    target = surroundings(world, box) if strength > 0 and w > 0 and h > 0 else None
    if target is not None:
        layer[y:y + h, x:x + w] = transfer(layer[y:y + h, x:x + w], alpha[y:y + h, x:x + w], target,
                                           strengths(strength))


def _star(desk: PhotoDesk, box: Box) -> tuple[np.ndarray, np.ndarray, Box]:
    """The star scaled into ``box`` on photo-sized colour and alpha planes, and the part of ``box`` on the photo."""
    width, height = desk.size
    x, y, w, h = box
    shrinking = w * h < desk.star.shape[0] * desk.star.shape[1]
    star = cv2.resize(desk.star, (max(1, w), max(1, h)),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    visible = _clip((x, y, x + w, y + h), desk.size)
    vx, vy, vw, vh = visible
    colour = np.zeros((height, width, 3), np.uint8)
    matte = np.zeros((height, width), np.uint8)
    colour[vy:vy + vh, vx:vx + vw] = star[vy - y:vy - y + vh, vx - x:vx - x + vw, :3]
    matte[vy:vy + vh, vx:vx + vw] = star[vy - y:vy - y + vh, vx - x:vx - x + vw, 3]
    _harmonize(desk.background, colour, matte, visible, desk.config.star_harmonize)
    return colour, matte, visible
