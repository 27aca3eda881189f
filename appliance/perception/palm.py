"""Palm detection: MediaPipe's SSD palm detector, decoded as the reference decodes it (perception/ssd.py).

The model sees a square window of the image at 192x192 and answers 2016 anchor
boxes, each with a score logit, a box and seven palm keypoints.  Decoding:
SSD anchors (4 layers, strides 8/16/16/16, fixed size), sigmoid scores over 0.5,
boxes and keypoints relative to their anchor, then weighted non-maximum
suppression (overlapping boxes averaged by score, IoU 0.3).  Detections come
back in image pixels, so a window can be any square of the frame: the whole
frame letterboxed (the reference's only window), or a close-up of where a
person stands (how small hands at kiosk distance are found).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from appliance.inference.backend import Runner
from appliance.perception.ssd import Detection, SsdDetector, anchor_centres, weighted_nms
from appliance.perception.tensor import Region

INPUT_SIZE = 192
MIN_SCORE = 0.5
NMS_IOU = 0.3
#: Palm keypoints used for the hand's rotation: wrist centre and middle-finger knuckle.
WRIST_KEYPOINT, MIDDLE_KEYPOINT = 0, 2
#: A palm: score, box (x_min, y_min, x_max, y_max) and seven keypoints, in image pixels.
PalmDetection = Detection
__all__ = ["PalmDetection", "PalmDetector", "anchors", "full_frame_window", "weighted_nms"]


@cache
def anchors() -> np.ndarray:
    """(2016, 2) anchor centres in 0..1 for the 192x192 palm model: 24²·2 + 12²·6."""
    return anchor_centres(INPUT_SIZE, (8, 16, 16, 16))


class PalmDetector(SsdDetector):
    def __init__(self, runner: Runner, min_score: float = MIN_SCORE) -> None:
        super().__init__(runner, INPUT_SIZE, anchors(), keypoints=7, min_score=min_score, nms_iou=NMS_IOU)


def full_frame_window(width: int, height: int) -> Region:
    """The reference's only window: the whole frame, letterboxed to a square."""
    return Region.square_around(0, 0, width, height)
