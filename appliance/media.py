"""Opening image and video files, with errors that name the file and say what is wrong.

OpenCV only answers ``None`` or ``isOpened() == False``; every reader of media
(sources, backgrounds, overlays, analyze) goes through here to get a reason.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from appliance.errors import ApplianceError


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    if not path.is_file():
        raise ApplianceError(f"image not found: {path}")
    image = cv2.imread(str(path), flags)
    if image is None or image.size == 0:
        raise ApplianceError(f"cannot decode image {path}: not an image or a corrupt file")
    return image


def open_video(path: Path) -> tuple[cv2.VideoCapture, np.ndarray]:
    """An opened capture and its first frame (so a file that opens but cannot decode fails here)."""
    if not path.is_file():
        raise ApplianceError(f"video not found: {path}")
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise ApplianceError(f"cannot decode video {path}: not a video, unsupported codec or corrupt")
    return capture, first
