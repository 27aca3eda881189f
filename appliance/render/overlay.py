"""PNG overlays (logos, frames) alpha-blended onto the screen.

The overlay is scaled and placed once per screen size, then cut into patches that cover
only its visible pixels: a full-screen frame is mostly transparent, and blending its
empty middle every frame would cost more than the rest of the compositor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.content import OverlaySpec
from appliance.media import DEFAULT_LIMITS, MediaLimits, read_bgra

BAND_ROWS = 64
MERGE_GAP = 32


@dataclass(frozen=True)
class _Patch:
    """A screen rectangle and what to put there: an opaque copy or a weighted blend."""

    y: int
    x: int
    colour: np.ndarray
    weight: np.ndarray | None
    weight_behind: np.ndarray | None


def _placement(spec: OverlaySpec, image_size: tuple[int, int], screen: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where the scaled overlay goes: (x, y, w, h) in screen pixels, possibly partly off-screen."""
    screen_w, screen_h = screen
    if spec.anchor == "fill":
        return 0, 0, screen_w, screen_h
    height = max(1, round(spec.scale * screen_h))
    width = max(1, round(image_size[0] * height / image_size[1]))
    margin = round(spec.margin * screen_h)
    left, right, centre_x = margin, screen_w - margin - width, (screen_w - width) // 2
    top, bottom, centre_y = margin, screen_h - margin - height, (screen_h - height) // 2
    x, y = {
        "top-left": (left, top),
        "top-right": (right, top),
        "bottom-left": (left, bottom),
        "bottom-right": (right, bottom),
        "center": (centre_x, centre_y),
    }[spec.anchor]
    return x, y, width, height


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True in a 1-D mask, with gaps shorter than MERGE_GAP bridged."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    runs: list[tuple[int, int]] = []
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if runs and start - runs[-1][1] < MERGE_GAP:
            runs[-1] = (runs[-1][0], int(end))
        else:
            runs.append((int(start), int(end)))
    return runs


def _patches(image: np.ndarray, origin: tuple[int, int]) -> list[_Patch]:
    alpha = image[..., 3]
    patches = []
    for band in range(0, alpha.shape[0], BAND_ROWS):
        rows = alpha[band : band + BAND_ROWS]
        for x0, x1 in _runs(rows.any(axis=0)):
            visible = np.flatnonzero(rows[:, x0:x1].any(axis=1))
            y0, y1 = band + int(visible[0]), band + int(visible[-1]) + 1
            colour = np.ascontiguousarray(image[y0:y1, x0:x1, :3])
            weight = alpha[y0:y1, x0:x1]
            if weight.min() == 255:
                patches.append(_Patch(origin[1] + y0, origin[0] + x0, colour, None, None))
            else:
                fg = weight.astype(np.float32)
                patches.append(_Patch(origin[1] + y0, origin[0] + x0, colour, fg, 255.0 - fg))
    return patches


class Overlay:
    """One overlay, prepared for one screen size."""

    def __init__(self, spec: OverlaySpec, path: Path, screen_size: tuple[int, int],
                 limits: MediaLimits = DEFAULT_LIMITS) -> None:
        image = read_bgra(path, limits)
        x, y, width, height = _placement(spec, (image.shape[1], image.shape[0]), screen_size)
        shrinking = width * height < image.shape[0] * image.shape[1]
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        screen_w, screen_h = screen_size
        left, top = max(0, -x), max(0, -y)
        right, bottom = min(width, screen_w - x), min(height, screen_h - y)
        #: The on-screen part of the scaled overlay (BGRA) and its top-left corner on the screen (x, y).
        self.visible = image[top:bottom, left:right] if right > left and bottom > top else image[:0, :0]
        self.origin = (x + left, y + top)
        self._patches = _patches(self.visible, self.origin)

    def draw(self, canvas: np.ndarray, now: float) -> None:
        for patch in self._patches:
            height, width = patch.colour.shape[:2]
            region = canvas[patch.y : patch.y + height, patch.x : patch.x + width]
            if patch.weight is None:
                region[:] = patch.colour
            else:
                region[:] = cv2.blendLinear(patch.colour, region, patch.weight, patch.weight_behind)
