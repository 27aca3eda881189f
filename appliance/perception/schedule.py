"""When each model runs: the rate an experience asked for, measured on the frames' capture clock.

Invariants:

- ``EVERY_FRAME`` runs on every frame; a rate r runs on a frame when at least
  1/r s (less a tenth of a 30 fps frame of tolerance, so 10/s on a 30 fps camera
  is every third frame, not every fourth) have passed since the model's last run;
  0 never runs.
- Segmentation is never off: when no experience draws a person it still runs at
  ``PRESENCE_RATE`` for presence (the attract loop wakes on a shopper).
- While nothing but presence is wanted (attract), a mask covering ``WATCH_COVERAGE`` or more
  (somebody may be stepping in) puts segmentation on every frame until it falls below again
  (``watching``): presence counts masks of successive frames, never one mask repeated on the
  frames segmentation skipped, and a shopper is counted in within a few frames of the first mask
  that shows them (tests/test_idle_economy.py: at most 0.3 s of capture time on a 30 fps camera).
- A frame is wanted (``frame_wanted``: the capture thread converts it) unless nothing but presence is
  wanted, nobody may be stepping in, and no presence run is due on it.
"""

from __future__ import annotations

import dataclasses

from appliance.perception.needs import EVERY_FRAME, MODELS, Needs

#: Segmentation runs at least this often (per second) for presence, whatever the experience asks.
PRESENCE_RATE = 5.0
TOLERANCE_S = 1 / 300
#: A mask covering this share of the frame may be a shopper stepping in: half the default
#: ``[kiosk] person_enter`` (0.04), so the frames presence counts in are all segmented
#: (``watch_coverage`` gives it for another person_enter).
WATCH_COVERAGE = 0.02


def watch_coverage(person_enter: float) -> float:
    """The coverage that puts segmentation on every frame for a kiosk waking at ``person_enter``: at most half."""
    return min(WATCH_COVERAGE, person_enter / 2)


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


def _presence_only(needs: Needs) -> bool:
    """Nothing but presence is wanted: segmentation for presence alone, no model at any rate."""
    return not any(needs.wants(model) for model in MODELS)


def watching(needs: Needs, coverage: float, watch: float = WATCH_COVERAGE) -> Needs:
    """``needs``, with segmentation on every frame when nothing but presence is wanted and the last mask's
    ``coverage`` says somebody may be stepping in."""
    if coverage < watch or not _presence_only(needs):
        return needs
    return dataclasses.replace(needs, segmentation=EVERY_FRAME)


def frame_wanted(needs: Needs, coverage: float, segmented_at: float | None, captured_at: float,
                 watch: float = WATCH_COVERAGE) -> bool:
    """Whether a frame captured at ``captured_at`` will be used, given the last mask's ``coverage`` and the
    capture time of the frame segmentation last ran on (None: never)."""
    if coverage >= watch or not _presence_only(needs):
        return True
    gate = RateGate()
    gate.last = segmented_at
    return gate.due(segmentation_rate(needs), captured_at)
