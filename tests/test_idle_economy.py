"""Idle economy: with nobody in front, perception runs segmentation for presence alone, at the presence rate,
and a shopper who steps in is still counted in within a few frames.

The clock is scripted (frame i is captured at i/30 s); the models are the real ones, the perception
thread is the kiosk's, stepped by hand (never started: no thread, no sleep, no wall time), and presence
is the kiosk's with the default configuration's thresholds.  What is left of the half-second greeting
after the counting in (perceiving that frame, the render loop, the menu's first flip) is measured on
the real kiosk by ``python -m appliance.tools.kioskbench greet``.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_hands import CountingInference

from appliance.config import load_config
from appliance.experiences.attract import experience as attract
from appliance.kiosk.presence import Presence
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.pipeline import Perceiver, Perception, PerceptionThread
from appliance.perception.schedule import PRESENCE_RATE, WATCH_COVERAGE, watching
from appliance.slot import LatestSlot
from appliance.sources.base import Frame

FPS = 30.0
#: The capture time presence may take to count a shopper in: the rest of the half second is the kiosk's.
COUNTED_IN_S = 0.3


class Rig:
    """The attract scene's perception and the kiosk's presence, fed one scripted frame at a time."""

    def __init__(self, inference: CountingInference) -> None:
        kiosk = load_config(None).kiosk
        self.frames: LatestSlot[Frame] = LatestSlot()
        self.results: LatestSlot[Perception] = LatestSlot()
        self.thread = PerceptionThread(Perceiver(inference), self.frames, self.results, attract.needs)
        self.presence = Presence(kiosk.person_enter, kiosk.person_leave, kiosk.attract_after_s)
        self.index = 0
        self.segmented: list[int] = []   # the frames segmentation ran on

    def feed(self, image: np.ndarray, count: int) -> list[bool]:
        """Whether presence says somebody is there after each of ``count`` frames of ``image``."""
        present = []
        for _ in range(count):
            frame = Frame(image, self.index, self.index / FPS)
            self.frames.put(frame)
            self.thread.step()
            _, result = self.results.latest()
            assert result is not None and result.index == self.index
            if "segmentation" in result.ran:
                self.segmented.append(self.index)
            present.append(self.presence.update(result.coverage, frame.captured_at))
            self.index += 1
        return present

    def until_empty(self, empty: np.ndarray) -> None:
        """Empty frames until presence has let the last shopper go, and a presence period more."""
        while self.presence.present:
            self.feed(empty, 1)
        self.feed(empty, round(FPS / PRESENCE_RATE))


@pytest.fixture
def empty(astronaut: np.ndarray) -> np.ndarray:
    """A blank scene of the astronaut's size (its mask covers nothing)."""
    return np.full_like(astronaut, 128)


def test_nobody_in_front_runs_segmentation_alone_at_the_presence_rate(astronaut: np.ndarray,
                                                                      empty: np.ndarray) -> None:
    counted = CountingInference()
    rig = Rig(counted)
    assert rig.feed(empty, 60) == [False] * 60
    assert rig.segmented == list(range(0, 60, round(FPS / PRESENCE_RATE)))
    assert counted.calls("selfie_landscape") == 10
    assert all(counted.calls(model) == 0 for model in counted.runners if model != "selfie_landscape")


def test_a_shopper_is_counted_in_within_0_3_s_of_capture_whatever_the_phase_of_the_presence_rate(
        astronaut: np.ndarray, empty: np.ndarray) -> None:
    """Arriving on each frame of a presence period in turn (worst: just after a presence run); every frame from
    the first mask that shows them is segmented, so the count is of successive frames."""
    rig = Rig(CountingInference())
    period = round(FPS / PRESENCE_RATE)
    latencies = []
    for since_presence_run in range(1, period + 1):   # 1: the frame before the shopper's was a presence run's
        rig.until_empty(empty)
        while rig.index - rig.segmented[-1] != since_presence_run:
            rig.feed(empty, 1)
        arrival = rig.index
        present = rig.feed(astronaut, round(FPS))
        counted_in = present.index(True)
        assert all(index in rig.segmented for index in range(arrival + counted_in - 2, arrival + counted_in + 1))
        latencies.append(counted_in / FPS)
    assert max(latencies) <= COUNTED_IN_S, latencies
    assert min(latencies) >= 2 / FPS   # three masks, never fewer


@pytest.mark.parametrize("frames, wakes", [(1, False), (2, False), (3, True)])
def test_a_passer_by_seen_on_fewer_than_three_frames_does_not_wake_the_screen(
        astronaut: np.ndarray, empty: np.ndarray, frames: int, wakes: bool) -> None:
    """The person shows on a presence run's frame, then leaves: the frames after it are segmented, not
    counted again with that one mask."""
    rig = Rig(CountingInference())
    rig.feed(empty, round(FPS / PRESENCE_RATE) * 2)   # the next frame is a presence run's
    present = rig.feed(astronaut, frames) + rig.feed(empty, round(FPS))
    assert any(present) is wakes


def test_watching_asks_segmentation_every_frame_only_when_presence_alone_is_wanted() -> None:
    assert watching(attract.needs, 0.0) == attract.needs
    assert watching(attract.needs, WATCH_COVERAGE).segmentation == EVERY_FRAME
    hands = Needs(segmentation=0.0, hands=10)
    assert watching(hands, 0.5) == hands
