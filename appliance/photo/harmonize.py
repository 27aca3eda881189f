"""The photo's colour harmony: a cut-out made to look lit by the world it stands in, by Reinhard's colour
transfer (``appliance.colour``) toward the world around it.

Invariants: the photo moves lightness less than colour (``strengths``); the world's statistics are those of the
canvas around where the cut-out stands (``surroundings``); the transfer's own invariants are appliance.colour's.
"""

from __future__ import annotations

import numpy as np

from appliance.colour import lab_statistics

LIGHTNESS_SHARE = 0.4  # a campaign's strength moves lightness this share as far as colour (``strengths``)


def strengths(strength: float) -> np.ndarray:
    """Per-channel (L, a, b) strengths for a campaign's ``strength``: lightness moves LIGHTNESS_SHARE as far as
    colour, so a night world tints a shopper without sinking them into the dark."""
    return np.array([strength * LIGHTNESS_SHARE, strength, strength], np.float32)


def surroundings(canvas: np.ndarray, box: tuple[int, int, int, int],
                 surround: float = 0.5) -> tuple[np.ndarray, np.ndarray] | None:
    """The Lab statistics of ``canvas`` (the world) around ``box`` (x, y, w, h): the box grown by ``surround`` of
    its size on each side, clipped to the canvas; None when that leaves nothing."""
    x, y, w, h = box
    height, width = canvas.shape[:2]
    gx, gy = round(w * surround), round(h * surround)
    around = canvas[max(0, y - gy):min(height, y + h + gy), max(0, x - gx):min(width, x + w + gx)]
    return lab_statistics(around) if around.size else None
