"""Person segmentation with MediaPipe's selfie models: pre-processing, inference, full-size mask."""

from __future__ import annotations

import cv2
import numpy as np

from appliance.inference.backend import Runner
from appliance.inference.manifest import ModelSpec
from appliance.perception.tensor import full_frame_tensor

#: The live model for 16:9 video and the square one for stills, as the reference uses them.
LIVE_MODEL = "selfie_landscape"
STILL_MODEL = "selfie_general"


class PersonSegmenter:
    """Image in, person probability out: at the model's resolution, or at the image's for stills."""

    def __init__(self, runner: Runner, spec: ModelSpec) -> None:
        self._runner = runner
        self._size = spec.input_size
        self.model = spec.name

    def model_input(self, image: np.ndarray) -> np.ndarray:
        """The image as the model sees it: stretched to its input size, a 1xHxWx3 uint8 RGB batch."""
        return full_frame_tensor(image, self._size)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Person probability 0..1 (float32) at the model's output resolution."""
        return self.probabilities_of(self.model_input(image))

    def probabilities_of(self, model_input: np.ndarray) -> np.ndarray:
        """``probabilities`` from the image's ``model_input``, for a caller that uses that input too."""
        output = self._runner.run([model_input])[0]
        return output.reshape(self._size[1], self._size[0])

    def mask(self, image: np.ndarray) -> np.ndarray:
        """The raw mask at the image's size (see ``mask_at``)."""
        return mask_at(self.probabilities(image), (image.shape[1], image.shape[0]))


def mask_at(probabilities: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Probabilities resized bilinearly to ``size`` (w, h) as 0..255 uint8: what ``analyze --mask-out`` writes."""
    return cv2.convertScaleAbs(cv2.resize(probabilities, size, interpolation=cv2.INTER_LINEAR), alpha=255.0)


def coverage(probabilities: np.ndarray) -> float:
    """Share of the frame that is person (probability above one half)."""
    return float(np.count_nonzero(probabilities > 0.5)) / probabilities.size
