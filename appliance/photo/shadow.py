"""Shadows that set a cut-out into the world: a soft cast shadow behind it and a contact shadow at its feet.

Invariants: shadows only darken the canvas (multiplied by 1 - shade, shade in 0..opacity) and only
inside the figure's box grown by its blur; the cast shadow is the figure's alpha shifted down and
to the right by CAST_OFFSET of its height and blurred by CAST_BLUR of it (worked at 1/WORK_SCALE
resolution: a shadow has no detail); the contact shadow is a flat blurred ellipse on the ground line,
drawn only when that line is inside the photo (a waist-up figure has no feet to stand on).
"""

from __future__ import annotations

import cv2
import numpy as np

CAST_OFFSET = 0.02
CAST_BLUR = 0.04
CAST_OPACITY = 0.35
CONTACT_OPACITY = 0.5
CONTACT_HEIGHT = 0.035   # the ellipse's height as a share of the figure's
WORK_SCALE = 4


def shade(canvas: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int], ground: float | None) -> None:
    """Darken ``canvas`` in place under the figure whose canvas-sized uint8 ``alpha`` lies in ``box`` (x, y, w, h).

    The light comes from the upper left, so the cast shadow falls down and right; ``ground`` is the y of
    the figure's feet, or None.
    """
    x, y, w, h = box
    height, width = canvas.shape[:2]
    reach = round(h * (CAST_OFFSET + 2 * CAST_BLUR))
    left, top = max(0, x - reach), max(0, y - reach)
    right, bottom = min(width, x + w + reach), min(height, y + h + reach)
    if right <= left or bottom <= top or h <= 0:
        return
    size = ((right - left) // WORK_SCALE + 1, (bottom - top) // WORK_SCALE + 1)
    small = cv2.resize(alpha[top:bottom, left:right], size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    offset = h * CAST_OFFSET / WORK_SCALE
    shift = np.float32([[1, 0, offset], [0, 1, offset]])
    cast = cv2.warpAffine(small, shift, size, borderValue=0)
    sigma = max(1.0, h * CAST_BLUR / WORK_SCALE)
    amount = cv2.GaussianBlur(cast, (0, 0), sigma) * CAST_OPACITY
    if ground is not None and ground < height:
        contact = np.zeros_like(amount)
        centre = (round((x + w / 2 - left) / WORK_SCALE), round((ground - top) / WORK_SCALE))
        axes = (max(1, round(w * 0.45 / WORK_SCALE)), max(1, round(h * CONTACT_HEIGHT / WORK_SCALE)))
        cv2.ellipse(contact, centre, axes, 0, 0, 360, 1.0, -1)
        contact = cv2.GaussianBlur(contact, (0, 0), max(1.0, axes[1] / 2)) * CONTACT_OPACITY
        amount = np.maximum(amount, contact)
    dark = cv2.resize(amount, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
    region = canvas[top:bottom, left:right]
    region[:] = cv2.blendLinear(region, np.zeros_like(region), 1.0 - dark, dark)
