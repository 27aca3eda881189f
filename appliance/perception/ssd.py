"""MediaPipe's SSD detectors (palm, pose, face), decoded as its SsdAnchors and TensorsToDetections calculators do.

Every one of these models sees a square window of the image and answers, per
anchor, a score logit and 4 + 2·k numbers: the box (x centre, y centre, width,
height; the ``reverse_output_order`` layout) and k keypoints, in tensor pixels
relative to the anchor's centre.  Anchors are fixed size (1), offsets 0.5, one
aspect ratio; layers sharing a stride are one feature map, and each layer gives
one anchor per cell, or two with the interpolated scale.  Decoding: scores
clipped to ±100 and passed through a sigmoid, kept from ``min_score``; then
weighted non-maximum suppression (boxes overlapping the best remaining one by
more than the IoU threshold are averaged by score into it).  Detections come
back in image pixels through the window's affine map, so a window may be the
whole frame letterboxed (the reference's) or any close-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import groupby

import numpy as np

from appliance.inference.backend import Runner
from appliance.perception.tensor import Region, region_tensor, sigmoid


def anchor_centres(input_size: int, strides: tuple[int, ...], interpolated: bool = True) -> np.ndarray:
    """(N, 2) anchor centres in 0..1, in the model's output order."""
    per_layer = 2 if interpolated else 1
    centres = []
    for stride, layers in groupby(strides):
        cells = math.ceil(input_size / stride)
        grid_y, grid_x = np.mgrid[0:cells, 0:cells]
        centre = np.stack([(grid_x + 0.5) / cells, (grid_y + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(centre, per_layer * len(list(layers)), axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (x_min, y_min, x_max, y_max) box with each of ``others`` (N, 4)."""
    top_left = np.maximum(box[:2], others[:, :2])
    bottom_right = np.minimum(box[2:], others[:, 2:])
    overlap = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(others[:, 2:] - others[:, :2], axis=1)
    return overlap / np.maximum(area + areas - overlap, 1e-9)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
                 threshold: float = 0.3) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Group boxes overlapping the best remaining one; each group becomes its score-weighted mean."""
    order = np.argsort(-scores)
    scores, boxes, keypoints = scores[order], boxes[order], keypoints[order]
    kept = []
    remaining = np.arange(len(scores))
    while remaining.size:
        best = remaining[0]
        group = remaining[box_iou(boxes[best], boxes[remaining]) > threshold]
        weights = scores[group][:, None]
        total = weights.sum()
        kept.append((float(scores[best]), (boxes[group] * weights).sum(0) / total,
                     (keypoints[group] * weights[:, :, None]).sum(0) / total))
        remaining = np.setdiff1d(remaining, group, assume_unique=True)
        remaining = remaining[np.argsort(-scores[remaining])]
    return kept


@dataclass(frozen=True)
class Detection:
    score: float
    box: np.ndarray         # (4,) x_min, y_min, x_max, y_max in image pixels
    keypoints: np.ndarray   # (k, 2) in image pixels


class SsdDetector:
    """One SSD model: ``input_size`` square input, ``anchors`` (from anchor_centres), ``keypoints`` per box."""

    def __init__(self, runner: Runner, input_size: int, anchors: np.ndarray, keypoints: int,
                 min_score: float, nms_iou: float = 0.3) -> None:
        self._runner = runner
        self.input_size = input_size
        self.anchors = anchors
        self.keypoints = keypoints
        self.min_score = min_score
        self.nms_iou = nms_iou

    def detect(self, image: np.ndarray, window: Region) -> list[Detection]:
        """Detections inside the square ``window`` of ``image``, most confident first, in image pixels."""
        size = (self.input_size, self.input_size)
        raw_boxes, raw_scores = self._runner.run([region_tensor(image, window, size)])
        scores = sigmoid(raw_scores.reshape(-1).astype(np.float64))
        hits = np.flatnonzero(scores >= self.min_score)
        if hits.size == 0:
            return []
        values = 4 + 2 * self.keypoints
        raw = raw_boxes.reshape(-1, values)[hits] / self.input_size
        centre = self.anchors[hits]
        box_centre = raw[:, 0:2] + centre
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([box_centre - half, box_centre + half], axis=1)
        points = raw[:, 4:values].reshape(-1, self.keypoints, 2) + centre[:, None, :]
        detections = []
        for score, box, keypoints in weighted_nms(scores[hits], boxes, points, self.nms_iou):
            in_image = window.to_image(np.concatenate([box.reshape(2, 2), keypoints]) * self.input_size, size)
            detections.append(Detection(score, in_image[:2].reshape(4), in_image[2:]))
        return detections
