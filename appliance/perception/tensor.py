"""Cutting model inputs out of images the way the reference implementation does.

MediaPipe's CPU ImageToTensor maps the ROI's corners onto the tensor's corners
(pixel 0 onto pixel 0, not pixel centres onto pixel centres) and samples with
bilinear warping; cv2.resize samples at pixel centres instead, a shift of about
1.4 px when shrinking 720p to 256 wide.  Matching the reference's sampling is
what takes mask parity from IoU ≈ 0.86 to ≥ 0.997 on the devset.
"""

from __future__ import annotations

import cv2
import numpy as np


def full_frame_tensor(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The whole image stretched to ``size`` (w, h), as a 1xHxWx3 uint8 RGB batch."""
    height, width = image.shape[:2]
    out_w, out_h = size
    warp = np.float32([[out_w / width, 0, 0], [0, out_h / height, 0]])
    small = cv2.warpAffine(image, warp, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)[None]
