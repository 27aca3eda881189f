"""Face detection: MediaPipe's two SSD face detectors, decoded as the reference decodes them (perception/ssd.py).

- Short range (``face_detection_short_range``, 128x128, 896 anchors: strides
  8/16/16/16, two anchors per layer, score from 0.5): trained on selfie-distance
  faces, a face filling a good share of the frame (within about 2 m).
- Full range (``face_detection_full_range_sparse``, 192x192, 2304 anchors: one
  stride-4 layer, one anchor per cell, score from 0.6): faces up to about 5 m.

Both answer a box and six keypoints per face (0 the subject's right eye, 1 left
eye, 2 nose tip, 3 mouth centre, 4 right ear tragion, 5 left ear tragion; the
subject's right eye is on the image's left), decoded with weighted NMS at IoU 0.3;
the window (the whole frame, letterboxed with black to a square, as the reference
does) maps them back to image pixels.

Which one runs when: the kiosk's camera films shoppers from 1 to 3 m, where a
face is 40–150 px of a 720p frame: letterboxed whole, that is 6–20 px of the
192 px full-range input and 4–15 px of the 128 px short-range input, too small
for the short-range model (trained on faces filling much of a selfie).  So live
tracking uses full range by default (``[face] detector``), at 3–4 ms a run and
only while a face is missing (the mesh follows found faces), on the whole frame
and on a close-up of each person's head (face_search.py), where a far face is
large enough for either.  A still (``analyze``, a photo) runs both detectors
and keeps every face either finds: short range is the better one for a face
that fills the picture, and a still can afford the extra milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from appliance.inference.backend import Runner
from appliance.perception.ssd import Detection, SsdDetector, anchor_centres

#: The keypoints, in the model's order.
RIGHT_EYE, LEFT_EYE, NOSE_TIP, MOUTH_CENTRE, RIGHT_EAR, LEFT_EAR = range(6)
KEYPOINTS = 6
NMS_IOU = 0.3
#: A face: score, box (x_min, y_min, x_max, y_max) and the six keypoints, in image pixels.
FaceDetection = Detection


@dataclass(frozen=True)
class FaceModel:
    """One of the two detectors: its manifest name, input size, anchor layout and score threshold."""

    name: str
    input_size: int
    strides: tuple[int, ...]
    interpolated: bool
    min_score: float


SHORT_RANGE = FaceModel("face_detection_short_range", 128, (8, 16, 16, 16), True, 0.5)
FULL_RANGE = FaceModel("face_detection_full_range_sparse", 192, (4,), False, 0.6)
#: The ``[face] detector`` choices.
DETECTORS = {"full": FULL_RANGE, "short": SHORT_RANGE}


@cache
def anchors(model: FaceModel) -> np.ndarray:
    """The model's anchor centres: 16²·2 + 8²·6 = 896 (short range), 48² = 2304 (full range)."""
    return anchor_centres(model.input_size, model.strides, model.interpolated)


class FaceDetector(SsdDetector):
    def __init__(self, runner: Runner, model: FaceModel) -> None:
        super().__init__(runner, model.input_size, anchors(model), KEYPOINTS, model.min_score, NMS_IOU)
        self.model = model
