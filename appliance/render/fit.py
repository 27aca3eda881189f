"""Cover-fit: fill a target size with an image, cropping the overflow, never letterboxing."""

from __future__ import annotations

import cv2
import numpy as np


def cover_box(source: tuple[int, int], target: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centred ``(x, y, w, h)`` region of a ``source`` (w, h) image that has ``target``'s aspect."""
    source_w, source_h = source
    target_w, target_h = target
    if source_w * target_h > source_h * target_w:
        width, height = round(source_h * target_w / target_h), source_h
    else:
        width, height = source_w, round(source_w * target_h / target_w)
    return (source_w - width) // 2, (source_h - height) // 2, width, height


def cover_point(point: tuple[float, float], source: tuple[int, int], target: tuple[int, int]) -> tuple[float, float]:
    """Where ``point`` (pixels of a ``source`` (w, h) image) lands after ``cover_fit`` to ``target``."""
    x, y, width, height = cover_box(source, target)
    return (point[0] - x) * target[0] / width, (point[1] - y) * target[1] / height


def shown_point(point: tuple[float, float], frame: tuple[int, int], screen: tuple[int, int],
                mirror: bool) -> tuple[float, float]:
    """Where a camera point (pixels of a ``frame`` (w, h)) shows on a ``screen`` that flips the camera when
    ``mirror`` and cover-fits it."""
    x, y = point
    return cover_point((frame[0] - x if mirror else x, y), frame, screen)


def cover_fit(image: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """``image`` cropped to ``size``'s aspect and resized to ``size`` (w, h).

    When no resize is needed the result is a view of ``image`` (no copy): callers that
    draw on the result must copy it if ``image`` is not theirs.
    """
    x, y, width, height = cover_box((image.shape[1], image.shape[0]), size)
    crop = image[y : y + height, x : x + width]
    if (width, height) == tuple(size):
        return crop
    return cv2.resize(crop, tuple(size), interpolation=interpolation)
