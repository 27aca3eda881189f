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
from appliance.perception.schedule import PRESENCE_RATE, WATCH_COVERAGE, frame_wanted, watch_coverage, watching
from appliance.slot import LatestSlot
from appliance.sources.base import Frame, GrabbingSource
from appliance.sources.camera import CameraSource
from appliance.sources.capture import CaptureThread

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


def test_a_kiosk_that_wakes_on_less_watches_for_less() -> None:
    assert watch_coverage(0.04) == WATCH_COVERAGE and watch_coverage(0.5) == WATCH_COVERAGE
    assert watch_coverage(0.01) == 0.005   # half what wakes it: the frames presence counts are all segmented
    assert watching(attract.needs, 0.006, watch_coverage(0.01)).segmentation == EVERY_FRAME
    assert not frame_wanted(attract.needs, 0.004, 1.0, 1.1, watch_coverage(0.01))
    assert frame_wanted(attract.needs, 0.006, 1.0, 1.1, watch_coverage(0.01))


def test_a_frame_is_wanted_unless_only_presence_is_and_no_presence_run_is_due() -> None:
    presence_only = attract.needs
    assert not frame_wanted(presence_only, 0.0, 1.0, 1.1)
    assert frame_wanted(presence_only, 0.0, 1.0, 1.0 + 1 / PRESENCE_RATE)
    assert frame_wanted(presence_only, 0.0, None, 1.1)
    assert frame_wanted(presence_only, WATCH_COVERAGE, 1.0, 1.1)
    assert frame_wanted(Needs(segmentation=0.0, hands=10), 0.0, 1.0, 1.1)
    assert frame_wanted(Needs(hands=0.0), 0.0, 1.0, 1.1)   # the person is drawn: every frame


class ScriptedCamera:
    """A grabbing source on the scripted clock: frame i is grabbed at i/30 s and shows ``scene(i)``."""

    description = "scripted camera"
    still_size = None

    def __init__(self, scene) -> None:
        self.scene = scene
        self.grabbed = -1
        self.retrieved: list[int] = []

    def grab(self) -> float:
        self.grabbed += 1
        return self.grabbed / FPS

    def retrieve(self) -> Frame:
        self.retrieved.append(self.grabbed)
        return Frame(self.scene(self.grabbed), self.grabbed, self.grabbed / FPS)

    def read(self) -> Frame:
        raise AssertionError("a grabbing source is read in two steps by the capture thread")

    def still(self, count: int) -> list[Frame]:
        raise AssertionError("no photo is asked for")

    def reopen(self) -> None:
        """Nothing to reopen."""

    def close(self) -> None:
        """Nothing to release."""


def test_with_nobody_in_front_only_the_presence_runs_frames_are_converted_and_a_shopper_still_counts_in(
        astronaut: np.ndarray, empty: np.ndarray) -> None:
    arrival = 64   # four frames after the presence run on frame 60: the next one is on frame 66
    camera = ScriptedCamera(lambda index: astronaut if index >= arrival else empty)
    assert isinstance(camera, GrabbingSource)
    rig = Rig(CountingInference())
    capture = CaptureThread(camera, rig.frames, wanted=rig.thread.wanted)
    present = []
    for _ in range(arrival + round(FPS)):
        version = rig.frames.latest()[0]
        capture.step()
        if rig.frames.latest()[0] == version:
            continue
        rig.thread.step()
        _, result = rig.results.latest()
        if "segmentation" in result.ran:
            rig.segmented.append(result.index)
        present.append((result.index, rig.presence.update(result.coverage, result.frame.captured_at)))
    idle = [index for index in camera.retrieved if index < arrival]
    assert idle == rig.segmented[:len(idle)] == list(range(0, arrival, round(FPS / PRESENCE_RATE)))
    assert capture.skipped >= arrival - len(idle)
    counted_in = next(index for index, here in present if here)
    assert list(range(66, counted_in + 1)) == [index for index in camera.retrieved if 66 <= index <= counted_in]
    assert (counted_in - arrival) / FPS <= COUNTED_IN_S


class GrabbingV4L2:
    """An OpenCV capture that counts its grabs and its decodes (retrieve)."""

    def __init__(self) -> None:
        self.grabs = self.decodes = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        return {3: 1280.0, 4: 720.0}.get(prop, 0.0)

    def grab(self) -> bool:
        self.grabs += 1
        return True

    def retrieve(self) -> tuple[bool, np.ndarray]:
        self.decodes += 1
        return True, np.zeros((720, 1280, 3), np.uint8)

    def release(self) -> None:
        """Nothing to release."""


def test_a_camera_frame_nobody_wants_is_grabbed_but_never_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    device = GrabbingV4L2()
    monkeypatch.setattr("appliance.sources.camera.camera_present", lambda index: True)
    camera = CameraSource(0, open_capture=lambda index: device)
    frames: LatestSlot[Frame] = LatestSlot()
    capture = CaptureThread(camera, frames, wanted=lambda captured_at: device.grabs % 3 == 1)
    for _ in range(6):
        capture.step()
    assert (device.grabs, device.decodes, capture.skipped) == (6, 2, 4)
    _, frame = frames.latest()
    assert frame.index == 3 and frame.image.shape == (720, 1280, 3)
