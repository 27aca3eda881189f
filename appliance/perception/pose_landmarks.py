"""Pose landmarks: the body's region (from a detection or from last frame's landmarks) and the landmark model.

The region is the reference's: a square centred on the mid-hip, twice the
distance to the size-and-rotation point wide, rotated so that mid-hip → that
point points up, and scaled 1.25x.  The detector gives the two points
(keypoints 0 and 1); the landmark model gives them again as its auxiliary
landmarks 33 and 34, which is how a tracked person's next region is found
without the detector.

The model sees the region cut out at 256x256 (edges repeated), and answers 39
landmarks × (x, y, z, visibility, presence) in crop pixels, visibility and
presence as logits, and a pose flag (already a probability).  Landmarks are
projected back through the region's rotation into image pixels; z is on x's
scale (crop units times the region's width), as the reference projects it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.inference.backend import Runner
from appliance.perception.body import Pose
from appliance.perception.pose_detection import HIP_KEYPOINT, SCALE_KEYPOINT, PoseDetection
from appliance.perception.tensor import Region, normalized_radians, region_tensor, sigmoid

INPUT_SIZE = 256
#: Below this pose flag the region holds no person (the track is lost).
MIN_PRESENCE = 0.5
#: The region's margin around the alignment square (the model's training margin).
REGION_SCALE = 1.25
BODY_LANDMARKS = 33
#: The auxiliary landmarks that align the next frame's region: mid-hip and the size-and-rotation point.
AUX_HIP, AUX_SCALE = 33, 34


def region_from_alignment(centre: np.ndarray, scale_point: np.ndarray) -> Region:
    """The body's square region from its two alignment points (image pixels)."""
    dx, dy = float(scale_point[0] - centre[0]), float(scale_point[1] - centre[1])
    angle = math.pi / 2 - math.atan2(-dy, dx)
    rotation = normalized_radians(angle)
    side = 2 * math.hypot(dx, dy) * REGION_SCALE
    return Region(float(centre[0]), float(centre[1]), side, side, rotation)


def region_from_detection(detection: PoseDetection) -> Region:
    return region_from_alignment(detection.keypoints[HIP_KEYPOINT], detection.keypoints[SCALE_KEYPOINT])


@dataclass(frozen=True)
class BodyEstimate:
    """One landmark inference: the pose (score = the pose flag) and where to look for it next frame."""

    pose: Pose
    presence: float
    next_region: Region


class PoseLandmarker:
    """One landmark inference on one region."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def landmarks(self, image: np.ndarray, region: Region) -> BodyEstimate:
        """The body in ``region``; check ``presence`` (below MIN_PRESENCE the region holds nobody)."""
        size = (INPUT_SIZE, INPUT_SIZE)
        outputs = self._runner.run([region_tensor(image, region, size, replicate=True)])
        raw = np.asarray(outputs[0], dtype=np.float64).reshape(-1, 5)
        presence = float(np.asarray(outputs[1]).reshape(-1)[0])
        points = region.to_image(raw[:, :2], size)
        depth = raw[:BODY_LANDMARKS, 2] / INPUT_SIZE * region.width
        visibility = sigmoid(raw[:BODY_LANDMARKS, 3])
        landmarks = np.column_stack([points[:BODY_LANDMARKS], depth, visibility]).astype(np.float32)
        return BodyEstimate(Pose(presence, landmarks), presence,
                            region_from_alignment(points[AUX_HIP], points[AUX_SCALE]))
