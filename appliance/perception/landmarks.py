"""Hand landmarks: the hand ROI (from a palm or from last frame's landmarks) and the landmark model.

The landmark model sees the hand upright: the ROI is rotated so the wrist→knuckles
direction points up, cut out at 224x224, and the 21 landmarks it answers are
projected back through the same rotation.  The ROI rules are the reference's:
from a palm, its box scaled 2.6x and shifted half a box towards the fingers;
from landmarks, their rotated bounding box scaled 2x and shifted a tenth.
"""

from __future__ import annotations

import math

import numpy as np

from appliance.inference.backend import Runner
from appliance.perception.hand import Hand
from appliance.perception.palm import MIDDLE_KEYPOINT, WRIST_KEYPOINT, PalmDetection
from appliance.perception.tensor import Region, normalized_radians, region_tensor

INPUT_SIZE = 224
#: Below this hand-presence score the ROI holds no hand (the track is lost).
MIN_PRESENCE = 0.5
#: The model's z needs this extra scale (its training data's depth range).
Z_NORMALISATION = 0.4
#: Landmarks the reference bounds the next ROI with: wrist, thumb base, and each finger's two lowest joints.
ROI_LANDMARKS = [0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]


def _upright_rotation(base: np.ndarray, tip: np.ndarray) -> float:
    """Rotation (radians, image y down) that turns base→tip to point straight up."""
    angle = math.pi / 2 - math.atan2(-(tip[1] - base[1]), tip[0] - base[0])
    return normalized_radians(angle)


def _expanded(cx: float, cy: float, width: float, height: float, rotation: float,
              scale: float, shift_y: float) -> Region:
    """Shift along the rect's own up axis, make it square on its long side, then scale."""
    cx -= height * shift_y * math.sin(rotation)
    cy += height * shift_y * math.cos(rotation)
    side = max(width, height) * scale
    return Region(cx, cy, side, side, rotation)


def region_from_palm(palm: PalmDetection) -> Region:
    rotation = _upright_rotation(palm.keypoints[WRIST_KEYPOINT], palm.keypoints[MIDDLE_KEYPOINT])
    x_min, y_min, x_max, y_max = palm.box
    return _expanded((x_min + x_max) / 2, (y_min + y_max) / 2, x_max - x_min, y_max - y_min, rotation,
                     scale=2.6, shift_y=-0.5)


def region_from_landmarks(landmarks: np.ndarray) -> Region:
    """The next frame's ROI from this frame's landmarks (pixels, (21, 2+))."""
    points = landmarks[ROI_LANDMARKS, :2].astype(np.float64)
    knuckles = ((points[4] + points[8]) / 2 + points[6]) / 2   # index, ring and middle bases
    rotation = _upright_rotation(points[0], knuckles)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    cos, sin = math.cos(rotation), math.sin(rotation)
    unrotate = np.array([[cos, sin], [-sin, cos]])
    upright = (points - centre) @ unrotate.T
    low, high = upright.min(axis=0), upright.max(axis=0)
    middle = (low + high) / 2
    cx, cy = centre + np.array([[cos, -sin], [sin, cos]]) @ middle
    width, height = high - low
    return _expanded(cx, cy, width, height, rotation, scale=2.0, shift_y=-0.1)


class HandLandmarker:
    """One landmark inference on one ROI."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def landmarks(self, image: np.ndarray, region: Region) -> Hand:
        """The hand in ``region``; check ``presence`` (below MIN_PRESENCE the ROI holds no hand)."""
        size = (INPUT_SIZE, INPUT_SIZE)
        outputs = self._runner.run([region_tensor(image, region, size, replicate=True)])
        raw, presence, handedness = (np.asarray(output).reshape(-1) for output in outputs[:3])
        raw = raw.reshape(21, 3)
        points = region.to_image(raw[:, :2].astype(np.float64), size)
        depth = raw[:, 2] / INPUT_SIZE / Z_NORMALISATION * region.width
        right = float(handedness[0]) <= 0.5
        return Hand(
            handedness="Right" if right else "Left",
            score=float(1.0 - handedness[0] if right else handedness[0]),
            presence=float(presence[0]),
            landmarks=np.column_stack([points, depth]).astype(np.float32),
        )
