"""The One Euro filter (Casiez et al., 2012) on arrays: jitter removed at rest, little lag in motion.

Each value is low-passed with a cutoff that rises with its own speed: a still
landmark gets ``min_cutoff`` (heavy smoothing, no jitter), a moving one
``min_cutoff + beta * speed`` (light smoothing, no lag).  Speed is measured in
``value_scale`` units per second, so one setting suits a person near the camera
and one far away (the pose tracker scales by the body's size, as MediaPipe's
landmark smoothing does).

Invariants: time-based (the frames' capture times, seconds, not frame counts),
so a dropped or skipped frame changes nothing but the elapsed time; the first
value passes through unchanged; a time that does not advance returns the last
output unchanged (a repeated frame never moves anything).
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, elapsed: float) -> np.ndarray | float:
    """The exponential smoothing factor of a first-order low-pass at ``cutoff`` Hz after ``elapsed`` s."""
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / elapsed)


class OneEuroFilter:
    """Filters arrays of one fixed shape, sample by sample, in time order."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, derivative_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or beta < 0 or derivative_cutoff <= 0:
            raise ValueError(f"One Euro filter: min_cutoff {min_cutoff} and derivative_cutoff {derivative_cutoff} "
                             f"must be positive, beta {beta} not negative")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.derivative_cutoff = derivative_cutoff
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time = 0.0

    def __call__(self, value: np.ndarray, at: float, value_scale: float = 1.0) -> np.ndarray:
        """The filtered ``value`` sampled at time ``at`` (s); speed is measured in ``value`` × ``value_scale``."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._speed is None:
            self._value, self._speed, self._time = value.copy(), np.zeros_like(value), at
            return value.copy()
        elapsed = at - self._time
        if elapsed <= 0:
            return self._value.copy()
        speed = (value - self._value) * value_scale / elapsed
        self._speed = self._speed + _alpha(self.derivative_cutoff, elapsed) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value = self._value + _alpha(cutoff, elapsed) * (value - self._value)
        self._time = at
        return self._value.copy()
