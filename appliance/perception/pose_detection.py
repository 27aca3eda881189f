"""Pose detection: MediaPipe's SSD person detector, decoded as the reference decodes it.

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

from dataclasses import dataclass
from functools import cache

import numpy as np

from appliance.inference.backend import Runner
from appliance.perception.palm import weighted_nms
from appliance.perception.tensor import Region, region_tensor

INPUT_SIZE = 224
MIN_SCORE = 0.5
NMS_IOU = 0.3
#: The full body's alignment keypoints: the centre (mid-hip) and the size-and-rotation point.
HIP_KEYPOINT, SCALE_KEYPOINT = 0, 1


@dataclass(frozen=True)
class PoseDetection:
    score: float
    box: np.ndarray         # (4,) x_min, y_min, x_max, y_max in image pixels (the face)
    keypoints: np.ndarray   # (4, 2) in image pixels


@cache
def anchors() -> np.ndarray:
    """(2254, 2) anchor centres in 0..1 for the 224x224 pose model (anchor size fixed at 1).

    Layers sharing a stride are one feature map; each layer gives two anchors per cell
    (its scale and the interpolated one): 28²·2 + 14²·2 + 7²·6 = 2254.
    """
    centres = []
    for stride, layers in ((8, 1), (16, 1), (32, 3)):
        cells = INPUT_SIZE // stride
        grid_y, grid_x = np.mgrid[0:cells, 0:cells]
        centre = np.stack([(grid_x + 0.5) / cells, (grid_y + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(centre, 2 * layers, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


class PoseDetector:
    def __init__(self, runner: Runner, min_score: float = MIN_SCORE) -> None:
        self._runner = runner
        self.min_score = min_score

    def detect(self, image: np.ndarray, window: Region) -> list[PoseDetection]:
        """People inside the square ``window`` of ``image``, most confident first, in image pixels."""
        raw_boxes, raw_scores = self._runner.run([region_tensor(image, window, (INPUT_SIZE, INPUT_SIZE))])
        logits = np.clip(raw_scores.reshape(-1).astype(np.float64), -100.0, 100.0)
        scores = 1.0 / (1.0 + np.exp(-logits))
        hits = np.flatnonzero(scores >= self.min_score)
        if hits.size == 0:
            return []
        raw = raw_boxes.reshape(-1, 12)[hits] / INPUT_SIZE
        centre = anchors()[hits]
        box_centre = raw[:, 0:2] + centre
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([box_centre - half, box_centre + half], axis=1)
        keypoints = raw[:, 4:12].reshape(-1, 4, 2) + centre[:, None, :]
        detections = []
        for score, box, points in weighted_nms(scores[hits], boxes, keypoints, NMS_IOU):
            in_image = window.to_image(np.concatenate([box.reshape(2, 2), points]) * INPUT_SIZE,
                                       (INPUT_SIZE, INPUT_SIZE))
            detections.append(PoseDetection(score, in_image[:2].reshape(4), in_image[2:]))
        return detections
