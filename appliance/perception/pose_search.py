"""Where to look for people: the whole frame, and close-ups of the person mask's regions.

The reference runs its detector on the whole frame letterboxed to 224x224 and
finds at most a few people: two people side by side, a person sitting, or one
filling the frame are often missed, and a small person far away shrinks to a
few pixels.  The segmentation mask of the same frame already says where people
are, so the plan adds close-ups:
- each connected region of the mask (at least a small share of the frame), as
  a square around it with a margin;
- a region much wider than tall (people standing beside each other merge into
  one region) also cut into overlapping squares about as wide as it is tall,
  one per person-width;
- live, only the parts of the mask that no tracked person covers (the mask
  minus the tracked people's boxes), so a person already tracked costs nothing;
- stills, also the frame cut into overlapping squares along its long side
  when it is much wider (or taller) than square: a panorama of people is
  squashed in both the 224x224 detector window and the square segmentation
  model's input, which then may show nobody.

Invariants: windows are squares in image pixels, the whole frame first; a
region smaller than MIN_REGION_SHARE of the mask's pixels is noise, not a
person; the plan never has more than ``limit`` close-ups (largest regions
first).
"""

from __future__ import annotations

import cv2
import numpy as np

from appliance.perception.palm import full_frame_window
from appliance.perception.tensor import Region

#: A mask region smaller than this share of the mask is not a person (a hand or noise at the edge).
MIN_REGION_SHARE = 0.01
#: Margin around a region: its window is this much larger than its longer side.
MARGIN = 1.3
#: A region wider than this many times its height holds people side by side: cut it into squares.
SIDE_BY_SIDE_RATIO = 1.2
#: Neighbouring squares of a wide region overlap by this share of their side.
OVERLAP = 0.35
#: Pixels of mask counted as person.
THRESHOLD = 0.5

Box = tuple[float, float, float, float]


def person_regions(probabilities: np.ndarray, frame_size: tuple[int, int],
                   covered: list[Box] = ()) -> list[Box]:
    """(x, y, w, h) in frame pixels of each person-sized region of the mask outside ``covered``, largest first."""
    mask = (probabilities > THRESHOLD).astype(np.uint8)
    scale_x = frame_size[0] / probabilities.shape[1]
    scale_y = frame_size[1] / probabilities.shape[0]
    for x, y, w, h in covered:
        left, top = int(x / scale_x), int(y / scale_y)
        mask[max(top, 0):max(int(np.ceil((y + h) / scale_y)), 0), max(left, 0):max(int(np.ceil((x + w) / scale_x)), 0)] = 0
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    minimum = MIN_REGION_SHARE * mask.size
    regions = [(float(left * scale_x), float(top * scale_y), float(w * scale_x), float(h * scale_y), area)
               for left, top, w, h, area in stats[1:count] if area >= minimum]
    return [region[:4] for region in sorted(regions, key=lambda r: -r[4])]


def close_ups(region: Box) -> list[Region]:
    """Square windows on one mask region: around it whole, and across it when it is people side by side."""
    x, y, w, h = region
    windows = [Region.square_around(x, y, w, h)]
    windows[0] = Region(windows[0].cx, windows[0].cy, windows[0].width * MARGIN, windows[0].height * MARGIN)
    if w > SIDE_BY_SIDE_RATIO * h:
        side = h * MARGIN
        windows += [Region(cx, y + h / 2, side, side) for cx in _spread(x, x + w, side)]
    return windows


def _spread(low: float, high: float, side: float) -> list[float]:
    """Centres of overlapping squares of ``side`` covering low..high, evenly spread edge to edge."""
    step = side * (1 - OVERLAP)
    count = max(int(np.ceil((high - low - side) / step)) + 1, 2)
    return [float(centre) for centre in np.linspace(low + side / 2, high - side / 2, count)]


def frame_squares(frame_size: tuple[int, int]) -> list[Region]:
    """Squares of the frame's short side along its long side (none for a frame not much longer than square)."""
    width, height = frame_size
    if max(width, height) <= SIDE_BY_SIDE_RATIO * min(width, height):
        return []
    side = float(min(width, height))
    if width > height:
        return [Region(cx, height / 2, side, side) for cx in _spread(0.0, float(width), side)]
    return [Region(width / 2, cy, side, side) for cy in _spread(0.0, float(height), side)]


def search_windows(frame_size: tuple[int, int], regions: list[Box], whole_frame: bool = True,
                   limit: int = 8) -> list[Region]:
    """The whole frame (when asked) and the close-ups of ``regions``, at most ``limit`` of them."""
    windows = [full_frame_window(*frame_size)] if whole_frame else []
    close = [window for region in regions for window in close_ups(region)]
    return windows + close[:limit]
