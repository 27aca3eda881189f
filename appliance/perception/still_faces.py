"""The faces of stills, for work off the render loop (a photo's style, a poster's face, the fused shopper).

Invariants: the still face stage (both detectors and the mesh, 19 MB) is loaded for each still asked about
and released after it, its memory handed back (loading takes about 30 ms, against a painting's hundreds): a
kiosk holds none of it between stills, and one whose experiences never ask pays nothing; callable from any
thread, one still at a time (so at most one stage is loaded).
"""

from __future__ import annotations

import threading

import numpy as np

from appliance.inference.backend import Inference
from appliance.memory import hand_back
from appliance.perception.face import Face
from appliance.perception.face_tracker import FaceSettings
from appliance.perception.stages import FaceStage


class StillFaces:
    def __init__(self, inference: Inference, settings: FaceSettings = FaceSettings()) -> None:
        self._inference, self._settings = inference, settings
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray) -> tuple[Face, ...]:
        """``image``'s (BGR) faces, largest first."""
        with self._lock:
            try:
                return tuple(FaceStage(self._inference, still=True, settings=self._settings).find(image, None))
            finally:
                hand_back()
