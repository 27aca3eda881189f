"""Face mesh: the face's region (from a detection or from last frame's mesh) and the 468-point landmark model.

The region is the reference's: a square on the long side of a box, scaled 1.5x,
rotated so the line between the eyes is level.  From a detection, the box is the
detector's and the eye line runs from keypoint 0 (the subject's right eye) to 1;
from a mesh (how a tracked face's next region is found without the detector), the
box is the axis-aligned bounds of all 468 landmarks and the eye line runs from
landmark 33 to 263 (the outer eye corners).

The model sees the region cut out at 192x192 (edges repeated) in [0, 1] and
answers 468 × (x, y, z) in crop pixels and a face-flag logit; the flag's sigmoid
below MIN_PRESENCE means the region holds no face (the track is lost).
Landmarks are projected back through the region's rotation into image pixels;
z is on x's scale (crop units times the region's width), as the reference
projects it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.inference.backend import Runner
from appliance.perception.face import LANDMARKS, LEFT_EYE_OUTER, RIGHT_EYE_OUTER, Face
from appliance.perception.face_detection import LEFT_EYE, RIGHT_EYE, FaceDetection
from appliance.perception.tensor import Region, normalized_radians, region_tensor, sigmoid

MODEL = "face_landmark"
INPUT_SIZE = 192
#: Below this face flag (a probability) the region holds no face.
MIN_PRESENCE = 0.5
#: The region's margin around the box (the model's training margin).
REGION_SCALE = 1.5


def _level_rotation(right_eye: np.ndarray, left_eye: np.ndarray) -> float:
    """Rotation (radians, image y down) that turns the right→left eye line horizontal, in -π..π."""
    angle = -math.atan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0])
    return normalized_radians(angle)


def _region(x_min: float, y_min: float, x_max: float, y_max: float, rotation: float) -> Region:
    side = max(x_max - x_min, y_max - y_min) * REGION_SCALE
    return Region((x_min + x_max) / 2, (y_min + y_max) / 2, side, side, rotation)


def region_from_detection(detection: FaceDetection) -> Region:
    return _region(*(float(value) for value in detection.box),
                   _level_rotation(detection.keypoints[RIGHT_EYE], detection.keypoints[LEFT_EYE]))


def region_from_landmarks(landmarks: np.ndarray) -> Region:
    """The next frame's region from this frame's mesh (pixels, (468, 2+))."""
    points = landmarks[:, :2].astype(np.float64)
    (x_min, y_min), (x_max, y_max) = points.min(axis=0), points.max(axis=0)
    return _region(x_min, y_min, x_max, y_max, _level_rotation(points[RIGHT_EYE_OUTER], points[LEFT_EYE_OUTER]))


@dataclass(frozen=True)
class MeshEstimate:
    """One mesh inference: the face (score = the face flag) and where to look for it next frame."""

    face: Face
    presence: float
    next_region: Region


class FaceLandmarker:
    """One mesh inference on one region."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    def landmarks(self, image: np.ndarray, region: Region) -> MeshEstimate:
        """The face in ``region``; check ``presence`` (below MIN_PRESENCE the region holds no face)."""
        size = (INPUT_SIZE, INPUT_SIZE)
        raw, flag = self._runner.run([region_tensor(image, region, size, replicate=True)])
        raw = np.asarray(raw, dtype=np.float64).reshape(LANDMARKS, 3)
        presence = float(sigmoid(np.asarray(flag, dtype=np.float64).reshape(-1)[0]))
        points = region.to_image(raw[:, :2], size)
        depth = raw[:, 2] / INPUT_SIZE * region.width
        landmarks = np.column_stack([points, depth]).astype(np.float32)
        return MeshEstimate(Face(presence, landmarks), presence, region_from_landmarks(landmarks))
