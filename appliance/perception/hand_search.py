"""Where to look for new hands: the search plan.

The reference runs the palm detector on the whole frame letterboxed to
192x192: a hand 60 px wide in a 720p frame, a shopper two metres away, shrinks
to 9 px and is missed; a hand filling the frame is missed too (the detector
is unsure of a palm that large and cut by the frame's edge).  So the plan
covers three scales:
- the whole frame, letterboxed (the reference's window);
- close-ups of where the person is (from the segmentation mask): the upper
  body, widened for raised arms, cut into squares a few hands wide (or of
  the whole frame in a coarse grid when the mask shows nobody);
- a close-range probe: the landmark model itself on the whole frame, which
  is confident (presence ≥ 0.98 on the devset's close-ups, ≤ 0.21 elsewhere)
  exactly when one hand fills it.
Video spends one or two steps per frame on the plan in turn; a still gets
every step at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.boxes import mask_box
from appliance.perception.palm import full_frame_window
from appliance.perception.tensor import Region

#: Upper body: the top share of the person's box, widened on both sides for raised arms.
UPPER_BODY_SHARE = 0.7
ARM_REACH = 0.3
#: A close-up square is this share of the person's height (a few hands wide), at least MIN_CLOSE_UP px.
CLOSE_UP_SHARE = 0.6
MIN_CLOSE_UP = 160.0
#: Neighbouring close-ups overlap by this share of their side, so a hand on a seam is whole in one.
CLOSE_UP_OVERLAP = 0.25
#: Close-ups are not worth it when the person already fills this much of the frame height.
CLOSE_UP_MAX_PERSON_SHARE = 0.8
#: Without a person box, the frame is searched in squares of this share of its height.
GRID_SHARE = 0.6


def person_box(probabilities: np.ndarray, frame_size: tuple[int, int], threshold: float = 0.5
               ) -> tuple[float, float, float, float] | None:
    """(x, y, w, h) in frame pixels bounding the person mask, or None when nobody is there."""
    box = mask_box(probabilities > threshold)
    if box is None:
        return None
    scale_x = frame_size[0] / probabilities.shape[1]
    scale_y = frame_size[1] / probabilities.shape[0]
    x, y, w, h = box
    return x * scale_x, y * scale_y, w * scale_x, h * scale_y


def tiles(left: float, top: float, right: float, bottom: float, side: float) -> list[Region]:
    """Overlapping squares of ``side`` covering the box, spread evenly edge to edge."""
    step = side * (1 - CLOSE_UP_OVERLAP)
    columns = max(1, math.ceil((right - left - side) / step) + 1)
    rows = max(1, math.ceil((bottom - top - side) / step) + 1)
    xs = np.linspace(left + side / 2, right - side / 2, columns) if columns > 1 else [(left + right) / 2]
    ys = np.linspace(top + side / 2, bottom - side / 2, rows) if rows > 1 else [(top + bottom) / 2]
    return [Region(float(cx), float(cy), side, side) for cy in ys for cx in xs]


def close_up_windows(frame_size: tuple[int, int], person: tuple[float, float, float, float]) -> list[Region]:
    """Close-ups of the person's upper body and arm reach (none when the person fills the frame)."""
    width, height = frame_size
    x, y, w, h = person
    if h >= CLOSE_UP_MAX_PERSON_SHARE * height:
        return []
    return tiles(max(0.0, x - ARM_REACH * h), max(0.0, y - 0.1 * h), min(float(width), x + w + ARM_REACH * h),
                 min(float(height), y + UPPER_BODY_SHARE * h), max(CLOSE_UP_SHARE * h, MIN_CLOSE_UP))


def grid_windows(frame_size: tuple[int, int]) -> list[Region]:
    """Close-ups of the whole frame, for when the mask shows nobody (a person too small or too far for it)."""
    width, height = frame_size
    return tiles(0.0, 0.0, float(width), float(height), GRID_SHARE * height)


@dataclass(frozen=True)
class SearchStep:
    region: Region
    probe: bool = False   # the landmark model straight on the region, not the palm detector


def search_plan(frame_size: tuple[int, int], person: tuple[float, float, float, float] | None) -> list[SearchStep]:
    width, height = frame_size
    whole = full_frame_window(width, height)
    close_ups = close_up_windows(frame_size, person) if person else grid_windows(frame_size)
    return [SearchStep(whole), *(SearchStep(window) for window in close_ups), SearchStep(whole, probe=True)]
