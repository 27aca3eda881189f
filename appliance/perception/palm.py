"""Palm detection: MediaPipe's SSD palm detector, decoded as the reference decodes it.

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

from dataclasses import dataclass
from functools import cache

import numpy as np

from appliance.inference.backend import Runner
from appliance.perception.tensor import Region, region_tensor

INPUT_SIZE = 192
MIN_SCORE = 0.5
NMS_IOU = 0.3
#: Palm keypoints used for the hand's rotation: wrist centre and middle-finger knuckle.
WRIST_KEYPOINT, MIDDLE_KEYPOINT = 0, 2


@dataclass(frozen=True)
class PalmDetection:
    score: float
    box: np.ndarray         # (4,) x_min, y_min, x_max, y_max in image pixels
    keypoints: np.ndarray   # (7, 2) in image pixels


@cache
def anchors() -> np.ndarray:
    """(2016, 2) anchor centres in 0..1 for the 192x192 palm model (anchor size fixed at 1)."""
    centres = []
    # Layers sharing a stride are one feature map; each layer gives two anchors per cell.
    for stride, layers in ((8, 1), (16, 3)):
        cells = INPUT_SIZE // stride
        grid_y, grid_x = np.mgrid[0:cells, 0:cells]
        centre = np.stack([(grid_x + 0.5) / cells, (grid_y + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(centre, 2 * layers, axis=1).reshape(-1, 2))
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
                 threshold: float = NMS_IOU) -> list[tuple[float, np.ndarray, np.ndarray]]:
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


class PalmDetector:
    def __init__(self, runner: Runner, min_score: float = MIN_SCORE) -> None:
        self._runner = runner
        self.min_score = min_score

    def detect(self, image: np.ndarray, window: Region) -> list[PalmDetection]:
        """Palms inside the square ``window`` of ``image``, in image pixels."""
        raw_boxes, raw_scores = self._runner.run([region_tensor(image, window, (INPUT_SIZE, INPUT_SIZE))])
        logits = np.clip(raw_scores.reshape(-1), -100.0, 100.0)
        scores = 1.0 / (1.0 + np.exp(-logits))
        hits = np.flatnonzero(scores >= self.min_score)
        if hits.size == 0:
            return []
        raw = raw_boxes.reshape(-1, 18)[hits] / INPUT_SIZE
        centre = anchors()[hits]
        box_centre = raw[:, 0:2] + centre
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([box_centre - half, box_centre + half], axis=1)
        keypoints = raw[:, 4:18].reshape(-1, 7, 2) + centre[:, None, :]
        detections = []
        for score, box, points in weighted_nms(scores[hits], boxes, keypoints):
            in_image = window.to_image(np.concatenate([box.reshape(2, 2), points]) * INPUT_SIZE,
                                       (INPUT_SIZE, INPUT_SIZE))
            detections.append(PalmDetection(score, in_image[:2].reshape(4), in_image[2:]))
        return detections


def full_frame_window(width: int, height: int) -> Region:
    """The reference's only window: the whole frame, letterboxed to a square."""
    return Region.square_around(0, 0, width, height)
