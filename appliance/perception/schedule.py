"""When each model runs: the rate an experience asked for, measured on the frames' capture clock.

Invariants:

- ``EVERY_FRAME`` runs on every frame; a rate r runs on a frame when at least
  1/r s (less a tenth of a 30 fps frame of tolerance, so 10/s on a 30 fps camera
  is every third frame, not every fourth) have passed since the model's last run;
  0 never runs.
- Segmentation is never off: when no experience draws a person it still runs at
  ``PRESENCE_RATE`` for presence (the attract loop wakes on a shopper).
"""

from __future__ import annotations

from appliance.perception.needs import EVERY_FRAME, Needs

#: Segmentation runs at least this often (per second) for presence, whatever the experience asks.
PRESENCE_RATE = 5.0
TOLERANCE_S = 1 / 300


class RateGate:
    """Whether a model is due on a frame, given its rate and when it last ran."""

    def __init__(self) -> None:
        self.last: float | None = None

    def due(self, rate: float, now: float) -> bool:
        if rate <= 0:
            return False
        if rate == EVERY_FRAME or self.last is None or now < self.last:
            return True
        return now - self.last >= 1.0 / rate - TOLERANCE_S

    def ran(self, now: float) -> None:
        self.last = now

    def forget(self) -> None:
        self.last = None


def segmentation_rate(needs: Needs) -> float:
    return max(needs.segmentation, PRESENCE_RATE)
