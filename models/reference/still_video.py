"""A still photo as a video: the same person, perfectly still, with a camera's sensor noise.

Shared by both sides of the pose jitter comparison so they see identical pixels: any
frame-to-frame movement of a landmark on these frames is the estimator's jitter,
none of it the person's.  The noise is seeded, so every run sees the same frames.
"""

from __future__ import annotations

import cv2
import numpy as np

NOISE_SIGMA = 3.0  # grey levels: a webcam's noise in indoor light
SEED = 11


def still_frames(path: str, count: int):
    """``count`` frames of the image at ``path`` (BGR), each with fresh Gaussian noise."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(f"cannot read the image {path}")
    generator = np.random.default_rng(SEED)
    for _ in range(count):
        noise = generator.normal(0.0, NOISE_SIGMA, image.shape)
        yield np.clip(image + noise, 0, 255).astype(np.uint8)
