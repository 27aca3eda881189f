"""The box around what a mask covers: the one helper for where the person, the star or a cut-out is.

Invariant: boxes are (x, y, w, h) in the mask's own pixels, whole pixels, w and h at least 1; a mask
that covers nothing has no box (None), never an empty one.
"""

from __future__ import annotations

import numpy as np


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) bounding the non-zero pixels of the 2-D ``mask`` (e.g. ``alpha >= 128``), or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
