"""Where text and cards go so they never cover the shopper's head.

Invariants:
- Boxes are ``(x, y, w, h)`` in integer pixels, half-open: a box covers columns x..x+w-1 and rows y..y+h-1, and two
  boxes that only touch do not intersect. A centre ``(cx, cy)`` is a box's ``(x + w // 2, y + h // 2)``, as
  pygame.Rect's ``center``.
- ``head_box`` reads the person matte alone and is deterministic; a narrow column (a raised arm) is never taken
  for the head. ``landmarks_box`` serves instead when face or pose landmarks are present.
- ``Layout.place`` keeps a box on screen within the margin and clear of every head box grown by the clearance
  (one per person: several shoppers have several heads) whenever one of its candidate positions allows it;
  otherwise it returns the candidate that overlaps the heads least. Among equal candidates it takes the one
  nearest the preferred point. Pure numpy, no pygame.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

import numpy as np

Box = tuple[int, int, int, int]

WORK_WIDTH = 160  # the matte is read at most this wide
MIN_AREA = 0.005  # of the matte: less is nobody
AS_WIDE = 0.7  # a top at least this share of the widest top's width counts as a head
UPPER = 0.4  # heads are looked for among the tops in this upper share of the silhouette's height
HEAD_HEIGHT_OF_WIDTH = 1.3
HEAD_PAD = 0.1  # each side, as a share of the head's width


def _runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True in a 1-D boolean row, end exclusive."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], row.view(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def head_box(alpha: np.ndarray, threshold: int = 128) -> Box | None:
    """The shopper's head in the matte's pixels from a uint8 person matte (0..255), or None when nobody.

    A top is a run of the silhouette with nothing above it (the crown of a head, a raised hand, a knee). From each
    top the silhouette is followed down, run by run, for a head's height (1.3 times the median width so far) or until
    it widens into shoulders; that median width is the top's width. The head is the highest top at least
    ``AS_WIDE`` as wide as the widest among the tops in the ``UPPER`` part of the silhouette (knees and laps lower
    down are no heads): a raised arm is a fist on a narrow forearm, so its width falls short.
    The box is the head's width by 1.3 times it, padded by ``HEAD_PAD`` on each side.
    """
    step = max(1, -(-alpha.shape[1] // WORK_WIDTH))
    person = alpha[::step, ::step] >= threshold
    if person.mean() < MIN_AREA:
        return None
    rows = np.flatnonzero(person.any(axis=1))
    runs = [_runs(row) for row in person]
    heads = []
    for top in range(rows[0], rows[0] + max(1, round(UPPER * (rows[-1] + 1 - rows[0])))):
        row, above = runs[top], runs[top - 1] if top else []
        for start, end in row:
            if not any(s < end and e > start for s, e in above):
                spans = _follow(runs, top, (start, end))
                width = median([e - s for s, e in spans])
                # A flat sliver (noise, a shoulder's edge) is no head, unless the matte cuts the head at its top.
                if len(spans) >= width or top == 0:
                    heads.append((top, width, spans))
    if not heads:
        return None
    widest = max(width for _, width, _ in heads)
    top, width, spans = next(head for head in heads if head[1] >= AS_WIDE * widest)
    centre = median([(s + e) / 2 for s, e in spans])
    pad = HEAD_PAD * width
    corners = (centre - width / 2 - pad, top - pad, centre + width / 2 + pad, top + HEAD_HEIGHT_OF_WIDTH * width + pad)
    return _clip(tuple(step * value for value in corners), (alpha.shape[1], alpha.shape[0]))


def _follow(runs: list[list[tuple[int, int]]], top: int, span: tuple[int, int]) -> list[tuple[int, int]]:
    """The runs that continue ``span`` downwards (the most overlapping one in each row) for a head's height, or
    until one is more than twice as wide as the median so far."""
    spans = [span]
    for row in runs[top + 1:]:
        start, end = spans[-1]
        below = [(s, e) for s, e in row if s < end and e > start]
        width = median([e - s for s, e in spans])
        if not below or len(spans) >= HEAD_HEIGHT_OF_WIDTH * width:
            break
        run = max(below, key=lambda run: min(run[1], end) - max(run[0], start))
        if run[1] - run[0] > 2 * width and len(spans) >= width:
            break
        spans.append(run)
    return spans


def landmarks_box(points: np.ndarray | list, frame: tuple[int, int], width_of_span: float = 1.25) -> Box | None:
    """The head around face or pose-face landmarks (N x 2 or more, frame pixels; rows with NaN are skipped), or
    None without any: ``width_of_span`` times their widest extent wide (the face's landmarks stop at the ears or
    cheeks, hair goes further), 1.3 times that tall, centred on them and raised by a tenth (the forehead and hair
    reach further above the eyes than the chin below the mouth). ``frame`` is (w, h) for clipping."""
    xy = np.asarray(points, dtype=np.float64).reshape(-1, np.shape(points)[-1] if np.ndim(points) else 2)[:, :2]
    xy = xy[np.isfinite(xy).all(axis=1)]
    if not len(xy):
        return None
    low, high = xy.min(axis=0), xy.max(axis=0)
    width = width_of_span * max(high - low)
    height = HEAD_HEIGHT_OF_WIDTH * width
    cx, cy = (low + high) / 2
    cy -= 0.1 * height
    return _clip((cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2), frame)


def _clip(corners: tuple[float, float, float, float], frame: tuple[int, int]) -> Box:
    x0, y0 = max(0, int(np.floor(corners[0]))), max(0, int(np.floor(corners[1])))
    x1, y1 = min(frame[0], int(np.ceil(corners[2]))), min(frame[1], int(np.ceil(corners[3])))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


class Layout:
    """Places boxes on a screen of ``size`` (w, h) around the ``heads`` (screen pixels: one box, several, or None
    when nobody), each grown by ``clearance``."""

    def __init__(self, size: tuple[int, int], heads: Box | Sequence[Box] | None, margin: int = 24,
                 clearance: int = 16) -> None:
        self.size = size
        self.margin = margin
        boxes = [] if heads is None else [heads] if len(heads) == 4 and isinstance(heads[0], (int, np.integer)) \
            else list(heads)
        self.protected: list[Box] = [(x - clearance, y - clearance, w + 2 * clearance, h + 2 * clearance)
                                     for x, y, w, h in boxes if w > 0 and h > 0]

    def place(self, size: tuple[int, int], prefer: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int]:
        """The centre for a box of ``size`` (w, h) nearest ``prefer`` (fractions of the screen) that keeps it on
        screen within the margin and off every protected head; the least overlapping position when none does.

        The candidates along each axis are the wanted position, the range's ends and the positions just
        before and just after each head; every combination is tried (at most (3 + 2n)² for n heads)."""
        w, h = size
        want = (round(prefer[0] * self.size[0]) - w // 2, round(prefer[1] * self.size[1]) - h // 2)
        ranges = [self._range(self.size[0], w), self._range(self.size[1], h)]
        axes = []
        for axis, length in ((0, w), (1, h)):
            lo, hi = ranges[axis]
            points = {want[axis], lo, hi}
            for box in self.protected:
                points |= {box[axis] - length, box[axis] + box[axis + 2]}
            axes.append({min(max(p, lo), hi) for p in points})
        x, y = min(((x, y) for x in axes[0] for y in axes[1]),
                   key=lambda spot: (self._covered(spot, size), (spot[0] - want[0]) ** 2 + (spot[1] - want[1]) ** 2))
        return x + w // 2, y + h // 2

    def _range(self, extent: int, length: int) -> tuple[int, int]:
        """Top-left positions along one axis that keep ``length`` within the margin (centred when it cannot)."""
        if length + 2 * self.margin > extent:
            middle = (extent - length) // 2
            return middle, middle
        return self.margin, extent - self.margin - length

    def _covered(self, spot: tuple[int, int], size: tuple[int, int]) -> int:
        """How much of the heads a box of ``size`` at ``spot`` covers (pixels)."""
        return sum(_overlap(spot[0], spot[0] + size[0], px, px + pw) * _overlap(spot[1], spot[1] + size[1], py, py + ph)
                   for px, py, pw, ph in self.protected)
