"""Decoding a bundle's image files, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from appliance.errors import ApplianceError


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """Decode ``path`` with ``cv2.imread``, which only says "None"; this says why."""
    if not path.is_file():
        raise ApplianceError(f"media file {path} does not exist")
    image = cv2.imread(str(path), flags)
    if image is None or image.size == 0:
        raise ApplianceError(f"media file {path} cannot be decoded as an image (corrupt or not an image)")
    return image
