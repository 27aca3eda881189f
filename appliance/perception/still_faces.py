"""The faces of stills, for work off the render loop (a photo's style, a poster's face, the fused shopper).

Invariants: one still face stage (both detectors and the mesh) per instance, loaded at the first still asked
about, never before (a kiosk whose experiences never ask pays nothing); callable from any thread, one still at
a time (the stage's interpreters are not shared between threads).
"""

from __future__ import annotations

import threading

import numpy as np

from appliance.inference.backend import Inference
from appliance.perception.face import Face
from appliance.perception.face_tracker import FaceSettings
from appliance.perception.stages import FaceStage


class StillFaces:
    def __init__(self, inference: Inference, settings: FaceSettings = FaceSettings()) -> None:
        self._inference, self._settings = inference, settings
        self._stage: FaceStage | None = None
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray) -> tuple[Face, ...]:
        """``image``'s (BGR) faces, largest first."""
        with self._lock:
            if self._stage is None:
                self._stage = FaceStage(self._inference, still=True, settings=self._settings)
            return tuple(self._stage.find(image, None))
