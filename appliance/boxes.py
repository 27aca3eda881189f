"""Boxes: the box around what a mask covers (the one helper for where the person, the star or a cut-out is),
and how sharp what is in a box is.

Invariant: boxes are (x, y, w, h) in the mask's own pixels, whole pixels, w and h at least 1; a mask
that covers nothing has no box (None), never an empty one; a box is clipped to the image it is read in.
"""

from __future__ import annotations

import cv2
import numpy as np


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) bounding the non-zero pixels of the 2-D ``mask`` (e.g. ``alpha >= 128``), or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def sharpness(image: np.ndarray, box: tuple[int, int, int, int] | None) -> float:
    """Variance of the Laplacian of BGR ``image`` inside ``box`` (the whole image without one): higher is sharper;
    0 when the box lies outside the image."""
    x, y, w, h = box if box is not None else (0, 0, image.shape[1], image.shape[0])
    crop = image[max(0, y):y + h, max(0, x):x + w]
    if crop.size == 0:
        return 0.0
    return float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes (0 when both are empty)."""
    overlap_w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    overlap_h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    overlap = overlap_w * overlap_h
    union = a[2] * a[3] + b[2] * b[3] - overlap
    return overlap / union if union > 0 else 0.0
