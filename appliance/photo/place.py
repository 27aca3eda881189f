"""Where the shopper and the star go in the photo: one affine map for the camera frame, one box for the star.

The shopper is measured on the (mirrored, as shown) camera frame's alpha: the box of its
pixels at or above one half, and their full height: the mask's own when their feet are in the
frame, else from the pose's torso (shoulders' middle to hips' middle is TORSO_SHARE of a
body's height) or shoulders (SHOULDER_SHARE), else the visible part taken as VISIBLE_SHARE.
The star is a full-length cut-out ``star_scale`` times the shopper's height, standing on the
shopper's ground line at the side asked for (``auto``: the side with more room), GAP_SHARE of
the photo's width away.

Invariants: the frame is cover-fitted to the photo (as the screen shows it), then, only when the
shopper and the star do not both fit between the margins, shrunk (never below MIN_SHRINK) about
the photo's bottom edge so a body cut by the frame stays cut by the photo, then shifted sideways
as far as the shopper may go (the shopper's box never moves off the photo).  A star still past the
margin then steps in behind the shopper (it is drawn under them), by at most MAX_OVERLAP of its
width, and what still does not fit is made up by a smaller star (never below MIN_STAR of its size,
feet kept on the ground line): a close-up or a portrait photo keeps the star's head in the picture.
The star's box may still reach past the photo's bottom (its feet below a waist-up shopper's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from appliance.boxes import mask_box
from appliance.perception.body import LEFT_HIP, LEFT_SHOULDER, RIGHT_HIP, RIGHT_SHOULDER, Pose

TORSO_SHARE = 0.30
SHOULDER_SHARE = 0.21
VISIBLE_SHARE = 0.6
SEEN = 0.5
GAP_SHARE = 0.02
MARGIN_SHARE = 0.03
MIN_SHRINK = 0.5
MAX_OVERLAP = 0.35   # of the star's width, behind the shopper
MIN_STAR = 0.6
CUT_PX = 2           # a mask this close to the frame's bottom is cut by it

Side = Literal["left", "right"]


@dataclass(frozen=True)
class Shopper:
    """The shopper in the camera frame: the box (x0, y0, x1, y1) of their pixels and their full height."""

    box: tuple[float, float, float, float]
    height: float


@dataclass(frozen=True)
class Layout:
    transform: np.ndarray            # 2x3 float32: camera frame pixels → photo pixels
    star_box: tuple[int, int, int, int]  # x, y, w, h in photo pixels (may reach past its edges)
    side: Side


def measure(alpha: np.ndarray, pose: Pose | None = None) -> Shopper | None:
    """The shopper in uint8 ``alpha`` (and ``pose``, in the same pixels), or None when nobody is in it."""
    box = mask_box(alpha >= 128)
    if box is None:
        return None
    x0, y0, x1, y1 = float(box[0]), float(box[1]), float(box[0] + box[2]), float(box[1] + box[3])
    visible = y1 - y0
    if not reaches_bottom(alpha):
        return Shopper((x0, y0, x1, y1), visible)
    return Shopper((x0, y0, x1, y1), max(visible, _height_from_pose(pose) or visible / VISIBLE_SHARE))


def reaches_bottom(alpha: np.ndarray) -> bool:
    """Whether the person in ``alpha`` is cut by the frame's bottom edge (their height is then estimated)."""
    return bool((alpha[-CUT_PX - 1:] >= 128).any())


def _height_from_pose(pose: Pose | None) -> float | None:
    if pose is None:
        return None
    points, seen = pose.landmarks[:, :2], pose.landmarks[:, 3] >= SEEN
    shoulders = seen[LEFT_SHOULDER] and seen[RIGHT_SHOULDER]
    if shoulders and seen[LEFT_HIP] and seen[RIGHT_HIP]:
        top = (points[LEFT_SHOULDER] + points[RIGHT_SHOULDER]) / 2
        bottom = (points[LEFT_HIP] + points[RIGHT_HIP]) / 2
        return float(np.linalg.norm(bottom - top)) / TORSO_SHARE
    if shoulders:
        return float(np.linalg.norm(points[LEFT_SHOULDER] - points[RIGHT_SHOULDER])) / SHOULDER_SHARE
    return None


def layout(shopper: Shopper, frame_size: tuple[int, int], photo_size: tuple[int, int], star_size: tuple[int, int],
           side: Literal["left", "right", "auto"], star_scale: float) -> Layout:
    """The frame's map into the photo and the star's box there (see the module's invariants)."""
    frame_w, frame_h = frame_size
    width, height = photo_size
    k = max(width / frame_w, height / frame_h)
    ox, oy = (width - frame_w * k) / 2, (height - frame_h * k) / 2
    x0, y0, x1, y1 = (value * k + offset for value, offset in zip(shopper.box, (ox, oy, ox, oy), strict=True))
    body = shopper.height * k
    star_h = body * star_scale
    star_w = star_h * star_size[0] / star_size[1]
    gap, margin = GAP_SHARE * width, MARGIN_SHARE * width
    if side == "auto":
        side = "right" if (x0 + x1) / 2 < width / 2 else "left"
    room = width - 2 * margin
    shrink = min(1.0, max(MIN_SHRINK, room / (x1 - x0 + gap + star_w)))
    centre = (x0 + x1) / 2
    x0, x1 = centre + (x0 - centre) * shrink, centre + (x1 - centre) * shrink
    y0 = height + (y0 - height) * shrink
    body, star_h, star_w, gap = body * shrink, star_h * shrink, star_w * shrink, gap * shrink
    star_x = x1 + gap if side == "right" else x0 - gap - star_w
    left, right = min(x0, star_x), max(x1, star_x + star_w)
    shift = 0.0
    if right > width - margin:
        shift = width - margin - right
    if left + shift < margin:
        shift = margin - left
    shift = min(max(shift, -x0), width - x1)   # the shopper stays on the photo
    star_x += shift
    off = star_x + star_w - (width - margin) if side == "right" else margin - star_x
    ground, top = y0 + body, y0 + body - star_h
    if off > 0:   # behind the shopper first, then a smaller star
        step_in = min(off, MAX_OVERLAP * star_w)
        star_x += -step_in if side == "right" else step_in
        fit = max(MIN_STAR, 1 - (off - step_in) / star_w)
        if side == "left":
            star_x += star_w * (1 - fit)
        star_w, star_h = star_w * fit, star_h * fit
    # on the ground line when it is in the photo; below it (a waist-up shopper) the head stays where it was
    star_y = max(ground - star_h if ground <= height else top, MARGIN_SHARE * height)
    scale = k * shrink
    transform = np.array([[scale, 0.0, centre + (ox - centre) * shrink + shift],
                          [0.0, scale, height + (oy - height) * shrink]], np.float32)
    return Layout(transform, (round(star_x), round(star_y), round(star_w), round(star_h)), side)
