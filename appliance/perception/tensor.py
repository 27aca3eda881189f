"""Cutting model inputs out of images the way the reference implementation does.

MediaPipe's CPU ImageToTensor maps the ROI's corners onto the tensor's corners
(pixel 0 onto pixel 0, not pixel centres onto pixel centres) and samples with
bilinear warping; cv2.resize samples at pixel centres instead, a shift of about
1.4 px when shrinking 720p to 256 wide.  Matching the reference's sampling is
what takes mask parity from IoU ≈ 0.86 to ≥ 0.997 on the devset.

A region is a rotated rectangle in image pixels; the same affine map that cuts
it out also projects model outputs (in tensor pixels) back into the image.  The
models' scores are logits (``sigmoid``) and regions' rotations are kept in -π..π
(``normalized_radians``), as the reference's calculators do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The probabilities of ``logits``, clipped to ±100 first (the reference's score clipping)."""
    return 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))


def normalized_radians(angle: float) -> float:
    """``angle`` brought into -π..π."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


@dataclass(frozen=True)
class Region:
    """A rotated rectangle in image pixels; ``rotation`` in radians, clockwise on screen (y down)."""

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0

    @classmethod
    def square_around(cls, x: float, y: float, w: float, h: float) -> Region:
        """The axis-aligned square holding the box (x, y, w, h), centred on it (a letterbox)."""
        side = max(w, h)
        return cls(x + w / 2, y + h / 2, side, side)

    def tensor_to_image(self, size: tuple[int, int]) -> np.ndarray:
        """2x3 affine map from tensor pixels (corner-aligned) to image pixels."""
        out_w, out_h = size
        cos, sin = math.cos(self.rotation), math.sin(self.rotation)
        linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([self.width / out_w, self.height / out_h])
        offset = np.array([self.cx, self.cy]) - linear @ np.array([out_w / 2, out_h / 2])
        return np.hstack([linear, offset[:, None]]).astype(np.float64)

    def to_image(self, points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Tensor-pixel points (N, 2) → image pixels (N, 2)."""
        transform = self.tensor_to_image(size)
        return points @ transform[:, :2].T + transform[:, 2]


def region_tensor(image: np.ndarray, region: Region, size: tuple[int, int], replicate: bool = False) -> np.ndarray:
    """The region cut out at ``size`` (w, h) as a 1xHxWx3 uint8 RGB batch.

    Outside the image is black (``replicate=False``, the reference's detector
    setting) or the edge pixels repeated (its landmark setting).
    """
    small = cv2.warpAffine(image, region.tensor_to_image(size), size,
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)[None]


def full_frame_tensor(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The whole image stretched to ``size`` (w, h), as a 1xHxWx3 uint8 RGB batch.

    When the image is a whole multiple of ``size`` (720p to 256x144 is 5x), every corner-aligned sample
    falls on a pixel (tensor pixel x is image pixel 5x), so a nearest-neighbour resize picks exactly the
    warp's pixels, in about half its time.
    """
    height, width = image.shape[:2]
    if width % size[0] == 0 and height % size[1] == 0:
        return cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_NEAREST), cv2.COLOR_BGR2RGB)[None]
    return region_tensor(image, Region(width / 2, height / 2, width, height), size)
