"""Per-stage latency bookkeeping shared by the kiosk's F2 overlay, the health report and `bench`."""

from __future__ import annotations

import threading
from collections import defaultdict, deque

import numpy as np


class StageStats:
    """Rolling window of milliseconds per named stage, summarised as p50/p95.

    The render loop adds while the health reporter summarises from its own
    thread, hence the lock (summaries copy the windows under it).
    """

    def __init__(self, window: int = 300) -> None:
        self._samples: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self._lock = threading.Lock()

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self._samples[stage].append(ms)

    def add_all(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.add(stage, ms)

    def summary(self) -> dict[str, dict[str, float]]:
        with self._lock:
            windows = {stage: list(values) for stage, values in self._samples.items() if values}
        return {
            stage: {"p50": round(float(np.percentile(values, 50)), 3),
                    "p95": round(float(np.percentile(values, 95)), 3)}
            for stage, values in windows.items()
        }


class RateMeter:
    """Events per second over the last ``window`` events (frames shown, frames perceived)."""

    def __init__(self, window: int = 60) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self, now: float) -> None:
        self._times.append(now)

    @property
    def rate(self) -> float:
        if len(self._times) < 2 or self._times[-1] == self._times[0]:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])
