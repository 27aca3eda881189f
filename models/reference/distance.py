"""Simulating a shopper further from the camera: the frame shrunk into a plain canvas of the same size.

Shared by both sides of the hand-recall comparison so they see identical pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

CANVAS_GREY = 20


def at_distance(frame: np.ndarray, scale: float) -> np.ndarray:
    """``frame`` shrunk by ``scale``, standing at the bottom centre of a dark canvas of its size."""
    if scale >= 1.0:
        return frame
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full_like(frame, CANVAS_GREY)
    top = frame.shape[0] - small.shape[0]
    left = (frame.shape[1] - small.shape[1]) // 2
    canvas[top:, left:left + small.shape[1]] = small
    return canvas


def frames(path: str, scale: float):
    capture = cv2.VideoCapture(path)
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield at_distance(frame, scale)
    capture.release()
