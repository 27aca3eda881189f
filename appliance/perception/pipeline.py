"""Per-frame perception for live video, and the worker thread that runs it beside the render loop."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from appliance.errors import ApplianceError
from appliance.inference.backend import Inference
from appliance.perception.gesture_tracker import GestureTracker
from appliance.perception.hand import GestureState
from appliance.perception.hand_search import person_box
from appliance.perception.hands import LANDMARK_MODEL, PALM_MODEL, HandTracker
from appliance.perception.landmarks import HandLandmarker
from appliance.perception.matte import LiveMatte, MatteSettings
from appliance.perception.palm import PalmDetector
from appliance.perception.segmentation import LIVE_MODEL, PersonSegmenter, coverage
from appliance.slot import LatestSlot
from appliance.sources.base import Frame
from appliance.worker import Worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Perception:
    """Everything known about one frame: the frame itself travels with it, so mask and image match."""

    frame: Frame
    alpha: np.ndarray          # uint8 person matte at the frame's size
    coverage: float            # share of the frame that is person, 0..1
    timings_ms: dict[str, float] = field(default_factory=dict)
    gestures: GestureState = GestureState()


class Perceiver:
    """The models a live frame goes through; one instance per stream (it keeps temporal state).

    Segmentation runs first: its mask says where the person stands, which is
    where the hand search looks.
    """

    def __init__(self, inference: Inference, matte: MatteSettings = MatteSettings()) -> None:
        self.segmenter = PersonSegmenter(inference.load(LIVE_MODEL), inference.manifest.spec(LIVE_MODEL))
        self.matte = LiveMatte(matte)
        self.hands = HandTracker(PalmDetector(inference.load(PALM_MODEL)), HandLandmarker(inference.load(LANDMARK_MODEL)))
        self.gestures = GestureTracker()

    def process(self, frame: Frame) -> Perception:
        started = time.perf_counter()
        probabilities = self.segmenter.probabilities(frame.image)
        alpha = self.matte.update(frame.image, probabilities)
        segmented = time.perf_counter()
        hands = self.hands.update(frame.image, person_box(probabilities, frame.size))
        gestures = self.gestures.update(hands, frame.captured_at, frame.size)
        done = time.perf_counter()
        timings = {"segmentation": (segmented - started) * 1000.0, "hands": (done - segmented) * 1000.0}
        return Perception(frame, alpha, coverage(probabilities), timings, gestures)


class PerceptionThread(Worker):
    """Takes the newest captured frame, perceives it, publishes the result; never queues."""

    def __init__(self, perceiver: Perceiver, frames: LatestSlot[Frame], results: LatestSlot[Perception]) -> None:
        super().__init__("perception")
        self.perceiver = perceiver
        self.frames = frames
        self.results = results
        self._seen = 0

    def step(self) -> None:
        version, frame = self.frames.newer_than(self._seen, timeout=0.2)
        if frame is None or version == self._seen:
            return
        self._seen = version
        try:
            self.results.put(self.perceiver.process(frame))
            self.problem = None
        except ApplianceError as exc:
            if self.problem != str(exc):
                log.error("perception failed: %s", exc)
            self.problem = str(exc)
