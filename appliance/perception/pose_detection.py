"""Pose detection: MediaPipe's SSD person detector, decoded as the reference decodes it (perception/ssd.py).

The model sees a square window of the image at 224x224 (letterboxed with black)
and answers 2254 anchor boxes, each with a score logit, a box (the face's) and
four keypoints: 0 the mid-hip, 1 a point whose distance from it gives the body's
size and whose direction its rotation (2 and 3: the same for the upper body).
Decoding: SSD anchors (5 layers, strides 8/16/32/32/32, fixed size, offsets
0.5), sigmoid scores of at least 0.5, coordinates relative to their anchor in
units of 224 px, then weighted non-maximum suppression (IoU 0.3, the legacy
graph's).  Detections come back in image pixels, so a window can be any square
of the frame: the whole frame (the reference's only window) or a close-up around
one person-sized region of the segmentation mask (how people beside each other,
sitting or far away are found).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from appliance.inference.backend import Runner
from appliance.perception.ssd import Detection, SsdDetector, anchor_centres

INPUT_SIZE = 224
MIN_SCORE = 0.5
NMS_IOU = 0.3
#: The full body's alignment keypoints: the centre (mid-hip) and the size-and-rotation point.
HIP_KEYPOINT, SCALE_KEYPOINT = 0, 1
#: A person: score, box (the face's: x_min, y_min, x_max, y_max) and four keypoints, in image pixels.
PoseDetection = Detection


@cache
def anchors() -> np.ndarray:
    """(2254, 2) anchor centres in 0..1 for the 224x224 pose model (anchor size fixed at 1).

    Layers sharing a stride are one feature map; each layer gives two anchors per cell
    (its scale and the interpolated one): 28²·2 + 14²·2 + 7²·6 = 2254.
    """
    return anchor_centres(INPUT_SIZE, (8, 16, 32, 32, 32))


class PoseDetector(SsdDetector):
    def __init__(self, runner: Runner, min_score: float = MIN_SCORE) -> None:
        super().__init__(runner, INPUT_SIZE, anchors(), keypoints=4, min_score=min_score, nms_iou=NMS_IOU)
