"""Turning per-frame person probabilities into a stable, tight alpha matte for live video.

Three steps, each against one artefact a shopper would notice:
- flicker: uncertain pixels (near 0.5) are blended with the previous frame's
  matte, confident ones follow the new frame at once (the idea of MediaPipe's
  segmentation smoothing), and so does any pixel whose image changed, so a
  raised arm is not held back by the smoothing;
- blocky or misplaced edges: a guided filter with the frame's luminance as guide
  snaps the upsampled matte onto the image's own edges;
- halo (a rim of the real background around the person): a steep ramp on the
  matte's transition band trims the soft edge inwards.
The filter's coefficients are computed at the model's resolution and applied at
twice it (a "fast guided filter"); only the final uint8 resize touches
full-resolution pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MatteSettings:
    smoothing: float = 0.7        # weight of the previous matte where the model is unsure (0 = off)
    motion_gain: float = 10.0     # a luminance change of 1/gain (0..1 scale) counts as full motion
    refine_radius: int = 2        # guided-filter window radius, in model-resolution pixels (0 = off)
    refine_eps: float = 0.01      # guided-filter regularisation: smaller follows image edges harder
    edge_low: float = 0.3         # matte values below this become transparent
    edge_high: float = 0.75       # values above this opaque; a smooth ramp between (anti-halo)
    work_scale: int = 2           # working resolution as a multiple of the model's


def ramp_table(low: float, high: float) -> np.ndarray:
    """uint8 → uint8 smoothstep from ``low`` to ``high``: the anti-halo edge trim as a lookup."""
    x = np.clip((np.arange(256, dtype=np.float32) / 255.0 - low) / max(high - low, 1e-6), 0.0, 1.0)
    return np.round(255.0 * x * x * (3.0 - 2.0 * x)).astype(np.uint8)


def _luminance(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Grey 0..1 float32 of the image at ``size`` (w, h): the guided filter's guide."""
    grey = cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2GRAY)
    return grey.astype(np.float32) * np.float32(1 / 255)


def guided_coefficients(guide: np.ndarray, source: np.ndarray, side: int, eps: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's coefficients (a, b) of float32 ``source`` under the float32 ``guide`` (the same size),
    box-averaged over ``side`` x ``side``: the filtered source is ``a * guide + b`` (at any size they are
    resized to)."""
    window = (side, side)
    mean_i = cv2.blur(guide, window)
    mean_p = cv2.blur(source, window)
    cov_ip = cv2.blur(guide * source, window) - mean_i * mean_p
    var_i = cv2.blur(guide * guide, window) - mean_i * mean_i
    a = cov_ip / (var_i + np.float32(eps))
    b = mean_p - a * mean_i
    return cv2.blur(a, window), cv2.blur(b, window)


class LiveMatte:
    """Stateful per video stream: feed frames in order, get uint8 alpha at the frame's size."""

    def __init__(self, settings: MatteSettings = MatteSettings()) -> None:
        self.settings = settings
        self._previous: np.ndarray | None = None
        self._previous_guide: np.ndarray | None = None
        self._table = ramp_table(settings.edge_low, settings.edge_high)

    def reset(self) -> None:
        self._previous = self._previous_guide = None

    def _smooth(self, probabilities: np.ndarray, guide: np.ndarray) -> np.ndarray:
        previous, previous_guide = self._previous, self._previous_guide
        self._previous_guide = guide
        if previous is None or previous.shape != probabilities.shape or not self.settings.smoothing:
            current = probabilities.copy()
        else:
            certainty = np.abs(probabilities - 0.5) * 2.0
            still = 1.0 - np.minimum(np.abs(guide - previous_guide) * self.settings.motion_gain, 1.0)
            weight = self.settings.smoothing * (1.0 - certainty * certainty) * still
            current = probabilities + (previous - probabilities) * weight
        self._previous = current
        return current

    def _refine(self, image: np.ndarray, matte: np.ndarray, guide: np.ndarray) -> np.ndarray:
        """Fast guided filter: coefficients at the model's resolution, applied at the working one."""
        height, width = matte.shape
        work_size = (width * self.settings.work_scale, height * self.settings.work_scale)
        radius = self.settings.refine_radius
        if not radius:
            return cv2.resize(matte, work_size, interpolation=cv2.INTER_LINEAR)
        a, b = guided_coefficients(guide, matte, 2 * radius + 1, self.settings.refine_eps)
        a_work = cv2.resize(a, work_size, interpolation=cv2.INTER_LINEAR)
        b_work = cv2.resize(b, work_size, interpolation=cv2.INTER_LINEAR)
        return a_work * _luminance(image, work_size) + b_work

    def update(self, image: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """The alpha matte (uint8, the image's size) for this frame."""
        height, width = probabilities.shape
        guide = _luminance(image, (width, height))
        refined = self._refine(image, self._smooth(probabilities, guide), guide)
        trimmed = cv2.LUT(cv2.convertScaleAbs(refined, alpha=255.0), self._table)
        return cv2.resize(trimmed, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
