"""What perception says about faces: one 468-point face mesh per face (MediaPipe's face_landmark topology).

Invariants: landmarks are in the input image's pixels (x, y) and z is relative depth
on x's scale (the reference's projection); ``box`` is the (x, y, w, h) bounds of the
landmarks, so a face tracked without its detector and one just detected are boxed
alike; ``track_id`` stays the same for one face while it is tracked from frame to
frame (0 when not numbered); ``Perception.faces`` lists every face, largest first.
The mesh is the 468-point one: MediaPipe's 478-point attention model
(face_landmark_with_attention.tflite) needs custom ops that ai-edge-litert does not
have, so no iris points.

``Face.age`` is the face's smoothed age guess (``FaceAge``) while an experience asks for
age (``Needs.age``), None otherwise or before the first guess: a band to show, never
logged (its repr withholds every value, as ``appliance.perception.age.AgeGuess``'s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LANDMARKS = 468
NOSE_TIP = 1
#: The eyes' corners (the subject's right eye is on the image's left in a photo facing the camera).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_INNER, LEFT_EYE_OUTER = 362, 263
#: Each eye's corners and two upper/lower lid pairs (mesh indices), for how open it is.
EYE_LIDS = (((RIGHT_EYE_OUTER, RIGHT_EYE_INNER), ((159, 145), (158, 153))),
            ((LEFT_EYE_INNER, LEFT_EYE_OUTER), ((386, 374), (385, 380))))
#: An eye opened less than this (lids' gap over the corners' distance) is closed or shut in a blink or a laugh:
#: open eyes measured 0.27-0.36 on the devset faces and the astronaut, a laughing squint 0.12.
EYES_OPEN = 0.18


@dataclass(frozen=True, repr=False)
class FaceAge:
    """A tracked face's age (and gender) over its last guesses: the median age, the mean gender probability.

    ``band`` is what may be shown ("kid", "teen", "18-25", …: never a number for a child); ``guesses`` is
    how many guesses the values stand on (a scene waits for a few before showing any).  ``gender`` and
    ``gender_score`` are None when gender is not asked for (``Needs.gender``).
    """

    age: float
    band: str
    guesses: int
    gender: str | None = None
    gender_score: float | None = None

    def __repr__(self) -> str:
        return f"FaceAge(<withheld: an individual's age and gender are never shown in logs>, guesses={self.guesses})"


@dataclass(frozen=True)
class Face:
    """One face in one frame."""

    score: float                # the detector's confidence (tracked: the mesh's face flag), 0..1
    landmarks: np.ndarray       # (468, 3) float32: x, y pixels, z
    track_id: int = 0
    age: FaceAge | None = None  # the track's smoothed age guess, when age is asked for (Needs.age)

    @property
    def box(self) -> tuple[float, float, float, float]:
        low, high = self.landmarks[:, :2].min(axis=0), self.landmarks[:, :2].max(axis=0)
        return float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])

    @property
    def area(self) -> float:
        _, _, w, h = self.box
        return w * h

    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """The centres of the subject's right and left eye (the midpoints of their corners), pixels."""
        points = self.landmarks[:, :2].astype(np.float64)
        return ((points[RIGHT_EYE_OUTER] + points[RIGHT_EYE_INNER]) / 2,
                (points[LEFT_EYE_INNER] + points[LEFT_EYE_OUTER]) / 2)

    def eye_openness(self) -> float:
        """The less open eye's lids' gap over its corners' distance (about 0.3 open, under ``EYES_OPEN`` shut)."""
        points = self.landmarks[:, :2].astype(np.float64)
        return min(
            sum(float(np.linalg.norm(points[upper] - points[lower])) for upper, lower in lids)
            / (2 * max(float(np.linalg.norm(points[corners[0]] - points[corners[1]])), 1e-6))
            for corners, lids in EYE_LIDS)

    def interocular(self) -> float:
        """The distance between the eye centres, pixels: the unit of the mesh's parity error."""
        right, left = self.eyes()
        return float(np.linalg.norm(left - right))
