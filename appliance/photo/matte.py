"""The still matte: the general (square) segmentation model, cleaned, then refined on the full-resolution image.

Invariants: the result is uint8 alpha (0..255) at the image's size; person regions much smaller
than the largest (a passer-by's hand at the edge, a poster) are dropped at the model's resolution,
or everything but the largest with ``largest_only`` (a star's cut-out); the edge is snapped to the
image's own edges by a guided filter with the image's luminance as guide (He et al.'s fast
variant: coefficients on a 1/``SUBSAMPLE`` grid, applied to every full-resolution pixel), then
trimmed by the live matte's anti-halo ramp; no state, so one ``StillMatte`` serves any number of
stills, at once too: the model is loaded for each still and released after it (a runner is never
shared; loading takes about 15 ms, and a desk holds none of its 12 MB between photos), and once when
the ``StillMatte`` is made, so that a missing or corrupt model fails then.
"""

from __future__ import annotations

import cv2
import numpy as np

from appliance.inference.backend import Inference
from appliance.perception.matte import guided_coefficients, ramp_table
from appliance.perception.stages import SegmentationStage

SUBSAMPLE = 4             # the guided filter's coefficient grid, in full-resolution pixels
RADIUS_FRACTION = 1 / 90  # the filter's window radius as a share of the image's shorter side
EPS = 4e-3                # regularisation: smaller follows the image's edges harder
KEEP_SHARE = 0.05         # person regions below this share of the largest one's area are dropped
EDGE_LOW, EDGE_HIGH = 0.25, 0.75


def person_regions(probabilities: np.ndarray, largest_only: bool = False) -> np.ndarray:
    """``probabilities`` with every person region too small to keep set to zero (soft edges of kept ones kept)."""
    binary = (probabilities > 0.5).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:
        return probabilities
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = int(areas.max())
    kept = [label + 1 for label, area in enumerate(areas)
            if (area == largest if largest_only else area >= KEEP_SHARE * largest)]
    keep = np.isin(labels, kept).astype(np.uint8)
    keep = cv2.dilate(keep, np.ones((5, 5), np.uint8))
    return probabilities * keep


def guided_filter(image: np.ndarray, source: np.ndarray, radius: int, eps: float,
                  subsample: int = SUBSAMPLE) -> np.ndarray:
    """The fast guided filter of float32 ``source`` (any size) guided by BGR ``image``'s luminance, at the
    image's size: the coefficients at 1/``subsample`` of it, the output at full resolution."""
    height, width = image.shape[:2]
    guide = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) * np.float32(1 / 255)
    small = (max(1, width // subsample), max(1, height // subsample))
    guide_small = cv2.resize(guide, small, interpolation=cv2.INTER_AREA)
    source_small = cv2.resize(source, small, interpolation=cv2.INTER_LINEAR)
    a, b = guided_coefficients(guide_small, source_small, 2 * max(1, round(radius / subsample)) + 1, eps)
    a_full = cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR)
    b_full = cv2.resize(b, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.multiply(a_full, guide) + b_full


class StillMatte:
    """Image in, refined person alpha out, through the appliance's own still segmentation stage."""

    def __init__(self, inference: Inference) -> None:
        self._inference = inference
        self._table = ramp_table(EDGE_LOW, EDGE_HIGH)
        self._stage()

    def _stage(self) -> SegmentationStage:
        return SegmentationStage(self._inference, still=True)

    def matte(self, image: np.ndarray, largest_only: bool = False) -> np.ndarray:
        """uint8 alpha at ``image``'s size (all zero when nobody is in it)."""
        probabilities = person_regions(self._stage().segmenter.probabilities(image), largest_only)
        radius = max(2, round(min(image.shape[:2]) * RADIUS_FRACTION))
        refined = guided_filter(image, probabilities, radius, EPS)
        return cv2.LUT(cv2.convertScaleAbs(refined, alpha=255.0), self._table)
