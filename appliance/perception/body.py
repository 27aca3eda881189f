"""What perception says about people's bodies: one tracked pose per person (MediaPipe's 33-point topology).

These are the types the pose pipeline produces and experiences consume (through the
experience API); the scoring of a pose game only ever sees landmarks, never pixels.

Invariants: landmarks are in the input image's pixels (x, y), z is relative depth on x's
scale, visibility 0..1; ``track_id`` stays the same for one person while they are
tracked from frame to frame (a new person gets a new id; one found again within a
second where a track was just lost gets that track's id back);
``Perception.poses`` lists every person found, largest first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOSE = 0
LEFT_EYE, RIGHT_EYE = 2, 5
LEFT_EAR, RIGHT_EAR = 7, 8
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
LEFT_ELBOW, RIGHT_ELBOW = 13, 14
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_HIP, RIGHT_HIP = 23, 24
LEFT_KNEE, RIGHT_KNEE = 25, 26
LEFT_ANKLE, RIGHT_ANKLE = 27, 28
#: MediaPipe's 33 body landmarks, in order (the names campaign files carry as comments).
LANDMARK_NAMES = ("nose", "left eye inner", "left eye", "left eye outer", "right eye inner", "right eye",
                  "right eye outer", "left ear", "right ear", "mouth left", "mouth right", "left shoulder",
                  "right shoulder", "left elbow", "right elbow", "left wrist", "right wrist", "left pinky",
                  "right pinky", "left index", "right index", "left thumb", "right thumb", "left hip", "right hip",
                  "left knee", "right knee", "left ankle", "right ankle", "left heel", "right heel",
                  "left foot index", "right foot index")
#: The face's points (0..10): what a layout keeps text off.
FACE = tuple(range(11))
#: The skeleton's limbs, as pairs of landmark indices (MediaPipe's POSE_CONNECTIONS, body only).
LIMBS = ((11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
         (23, 25), (25, 27), (24, 26), (26, 28))


@dataclass(frozen=True)
class Pose:
    """One person's body in one frame."""

    score: float                # the detector's (or the tracker's presence) confidence, 0..1
    landmarks: np.ndarray       # (33, 4) float32: x, y pixels, z, visibility
    track_id: int = 0

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x, y, w, h) bounding the visible landmarks (all of them when none is visible)."""
        visible = self.landmarks[self.landmarks[:, 3] >= 0.5] if (self.landmarks[:, 3] >= 0.5).any() \
            else self.landmarks
        low, high = visible[:, :2].min(axis=0), visible[:, :2].max(axis=0)
        return float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])

    @property
    def area(self) -> float:
        _, _, w, h = self.box
        return w * h
