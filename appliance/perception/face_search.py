"""Where to look for faces: the whole frame, and a close-up of the head end of each person region of the mask.

The whole frame letterboxed to the detector's input loses small faces: on a
1280x720 frame both detectors miss a face under about 55 px wide (measured with
the astronaut's face pasted at several sizes on a photo without people; full
range still finds it at 70 px, short range at 55–90 px only), which is a shopper
about 2.5 m from a usual webcam.  A square window the width of a person's mask
region at its top holds their head: there a 22 px face is a third of the window
and both detectors find it (scores 0.85–0.92 from 22 to 55 px).  The person
mask of the same frame says where those windows are, as it does for pose.

Invariants: windows are squares in image pixels, the whole frame first; a
region wider than tall (people side by side) gets one window per person-width
across its top; a window that already holds a known face (its box's centre) is
left out; never more than ``limit`` close-ups (largest regions first).
"""

from __future__ import annotations

import math

from appliance.perception.palm import full_frame_window
from appliance.perception.pose_search import Box
from appliance.perception.tensor import Region

#: A head window is this much wider than the person-width it covers.
HEAD_MARGIN = 1.2


def head_windows(regions: list[Box], known: list[Box] = (), limit: int = 8) -> list[Region]:
    """Square windows on the top of each person region (x, y, w, h), none where a ``known`` face already is."""
    windows = []
    for x, y, w, h in regions:
        count = math.ceil(w / h) if w > h > 0 else 1
        cell = w / count
        for index in range(count):
            window = Region(x + (index + 0.5) * cell, y + cell / 2, HEAD_MARGIN * cell, HEAD_MARGIN * cell)
            if not any(_holds(window, box) for box in known):
                windows.append(window)
    return windows[:limit]


def search_windows(frame_size: tuple[int, int], regions: list[Box], known: list[Box] = (),
                   limit: int = 8) -> list[Region]:
    """The whole frame and the head windows of ``regions``, at most ``limit`` of those."""
    return [full_frame_window(*frame_size)] + head_windows(regions, known, limit)


def _holds(window: Region, box: Box) -> bool:
    x, y, w, h = box
    return abs(x + w / 2 - window.cx) <= window.width / 2 and abs(y + h / 2 - window.cy) <= window.height / 2
