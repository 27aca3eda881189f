"""Colour statistics and Reinhard et al.'s colour transfer (2001), partial and masked: one picture's colour made
another's (a cut-out lit by the world it stands in, a shopper's face given a poster's skin).

The image's colour statistics (per-channel mean and standard deviation in CIE Lab, over the pixels its alpha
covers) move toward a target's: ``out = (x - mean_s) * scale + mean'`` with
``mean' = mean_s + strength * (mean_t - mean_s)`` and ``scale = (std_t / std_s) ** strength``.

Invariants: ``strength`` (per L, a, b channel, or one for all) 0 returns the pixels unchanged, 1 is the full
transfer; the contrast ratio is bounded to [1/MAX_CONTRAST, MAX_CONTRAST] (a flat sky must not flatten a face);
only the BGR channels change; statistics count the pixels an alpha makes at least half opaque, on every STEP-th
row and column.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_CONTRAST = 2.0
STEP = 4           # statistics are measured on every STEP-th row and column (they do not need every pixel)
MIN_PIXELS = 16    # fewer sampled pixels than this measure nothing


def lab(image: np.ndarray) -> np.ndarray:
    """BGR uint8 as float32 CIE Lab (L 0..100, a and b about -127..127)."""
    return cv2.cvtColor(np.multiply(image, np.float32(1 / 255), dtype=np.float32), cv2.COLOR_BGR2Lab)


def bgr(lab_image: np.ndarray) -> np.ndarray:
    """float32 Lab back to BGR uint8 (out-of-gamut colours clipped)."""
    return cv2.convertScaleAbs(cv2.cvtColor(lab_image, cv2.COLOR_Lab2BGR), alpha=255.0)


def lab_statistics(image: np.ndarray, alpha: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel (mean, std) in Lab of BGR ``image``'s pixels whose uint8 ``alpha`` is at least one half (all
    pixels without one), on every STEP-th row and column; None when no pixel counts."""
    sample = np.ascontiguousarray(image[::STEP, ::STEP])
    mask = None if alpha is None else (alpha[::STEP, ::STEP] >= 128).astype(np.uint8)
    if sample.size == 0 or (mask is not None and cv2.countNonZero(mask) < MIN_PIXELS):
        return None
    mean, std = cv2.meanStdDev(lab(sample), mask=mask)
    return mean.reshape(3).astype(np.float32), std.reshape(3).astype(np.float32)


def transfer(image: np.ndarray, alpha: np.ndarray, target: tuple[np.ndarray, np.ndarray],
             strength: float | np.ndarray) -> np.ndarray:
    """``image`` (BGR uint8) with its alpha-weighted Lab statistics moved ``strength`` (one for all channels or
    one per L, a, b) of the way to ``target`` (``lab_statistics``)."""
    strength = np.broadcast_to(np.asarray(strength, np.float32), (3,))
    source = lab_statistics(image, alpha) if strength.any() else None
    if source is None:
        return image
    (mean_s, std_s), (mean_t, std_t) = source, target
    ratio = np.clip(std_t / np.maximum(std_s, 1e-3), 1 / MAX_CONTRAST, MAX_CONTRAST)
    scale = (ratio ** strength).astype(np.float32)
    shifted = (mean_s + strength * (mean_t - mean_s)).astype(np.float32)
    affine = np.hstack([np.diag(scale), (shifted - mean_s * scale)[:, None]]).astype(np.float32)
    return bgr(cv2.transform(lab(image), affine))
