"""Hands: decoding faithful to the reference, tracking parity, kiosk-distance and close-range recall, cost."""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.analyze import StillPerception
from appliance.inference.backend import Inference, Runner
from appliance.perception.gestures import classify
from appliance.perception.hand import GestureState, Hand
from appliance.perception.palm import anchors, weighted_nms
from appliance.perception.pipeline import Perceiver
from appliance.perception.tensor import Region, region_tensor
from appliance.sources.base import Frame

REPO = Path(__file__).resolve().parents[1]
KIOSK_VIDEO = "kiosk_fist_thumbup_720p.mp4"
CLOSEUP_VIDEO = "hand_closeup_360p.mp4"


def load_distance_module():
    """models/reference/distance.py: the same shrinking the recall comparison with the reference uses."""
    spec = importlib.util.spec_from_file_location("distance", REPO / "models" / "reference" / "distance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def landmark_error(ours: Hand, reference: dict) -> float:
    """Mean landmark distance as a share of the reference hand's size (its landmarks' box diagonal)."""
    theirs = np.array(reference["landmarks"])[:, :2]
    return float(np.linalg.norm(ours.landmarks[:, :2] - theirs, axis=1).mean()
                 / np.linalg.norm(np.ptp(theirs, axis=0)))


class CountingRunner:
    """Wraps a real runner to count inferences (how the steady-state cost is checked)."""

    def __init__(self, runner) -> None:
        self.runner = runner
        self.backend = runner.backend
        self.calls = 0

    def run(self, inputs):
        self.calls += 1
        return self.runner.run(inputs)


class CountingInference(Inference):
    """The real loader, each loaded model wrapped to count its inferences by model name."""

    def __init__(self) -> None:
        super().__init__("litert")
        self.runners: dict[str, CountingRunner] = {}

    def load(self, model: str) -> Runner:
        self.runners[model] = CountingRunner(super().load(model))
        return self.runners[model]

    def calls(self, model: str) -> int:
        return self.runners[model].calls if model in self.runners else 0


@dataclass
class VideoRun:
    hands: list[list[Hand]]
    gestures: list[GestureState]
    palm_calls: list[int]
    landmark_calls: list[int]


def run_video(path: Path, scale: float = 1.0) -> VideoRun:
    inference = Inference("litert")
    perceiver = Perceiver(inference)
    palm = perceiver.hands.detector._runner = CountingRunner(perceiver.hands.detector._runner)
    landmark = perceiver.hands.landmarker._runner = CountingRunner(perceiver.hands.landmarker._runner)
    run = VideoRun([], [], [], [])
    for index, image in enumerate(load_distance_module().frames(str(path), scale)):
        perception = perceiver.process(Frame(image, index, captured_at=index / 25.0))
        run.hands.append([hand_gesture.hand for hand_gesture in perception.gestures.hands])
        run.gestures.append(perception.gestures)
        run.palm_calls.append(palm.calls)
        run.landmark_calls.append(landmark.calls)
    return run


@pytest.fixture(scope="module")
def reference(media: Path) -> dict:
    return json.loads((media / "mediapipe_reference" / "reference.json").read_text())


@pytest.fixture(scope="module")
def kiosk_run(media: Path) -> VideoRun:
    return run_video(media / KIOSK_VIDEO)


def test_anchors_follow_the_reference_layout() -> None:
    centres = anchors()
    assert centres.shape == (2016, 2)
    assert np.allclose(centres[0], [0.5 / 24, 0.5 / 24]) and np.allclose(centres[1], centres[0])
    assert np.allclose(centres[1152], [0.5 / 12, 0.5 / 12])      # first anchor of the stride-16 map
    assert np.allclose(centres[-1], [11.5 / 12, 11.5 / 12])


def test_weighted_nms_averages_overlapping_boxes_by_score() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=float)
    keypoints = np.zeros((3, 7, 2))
    kept = weighted_nms(np.array([0.9, 0.3, 0.8]), boxes, keypoints)
    assert [round(score, 2) for score, _, _ in kept] == [0.9, 0.8]
    assert np.allclose(kept[0][1], [0.25, 0, 10.25, 10])        # (0*0.9 + 1*0.3) / 1.2
    assert np.allclose(kept[1][1], boxes[2])


def test_a_rotated_region_is_cut_out_and_projected_back_consistently() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    cv2.circle(image, (220, 60), 6, (255, 255, 255), -1)
    region = Region(200, 100, 120, 120, rotation=math.radians(30))
    crop = region_tensor(image, region, (64, 64))[0]
    ys, xs = np.nonzero(crop[..., 0] > 128)
    back = region.to_image(np.array([[xs.mean(), ys.mean()]]), (64, 64))[0]
    assert np.linalg.norm(back - [220, 60]) < 1.5


@pytest.mark.parametrize("name", ["face_group.jpg", "portrait_white_bg.png", "pose_sitting.jpg", "thumb_up.jpg"])
def test_still_landmarks_match_the_reference(media: Path, reference: dict, name: str) -> None:
    hands = StillPerception(Inference("litert")).perceive(cv2.imread(str(media / name))).hands
    expected = reference["images"][name]["hands"]
    assert len(hands) >= len(expected)
    for hand in expected:
        best = min(hands, key=lambda ours: landmark_error(ours, hand))
        assert landmark_error(best, hand) <= 0.03
        assert best.handedness == hand["handedness"]


def test_a_hand_filling_the_frame_is_found_where_the_reference_finds_none(media: Path, reference: dict) -> None:
    assert reference["images"]["victory_closeup.jpg"]["hands"] == []
    (hand,) = StillPerception(Inference("litert")).perceive(cv2.imread(str(media / "victory_closeup.jpg"))).hands
    assert classify(hand)[0] == "scissors"


def test_tracking_matches_the_reference_and_finds_at_least_as_many_frames(kiosk_run: VideoRun, reference: dict) -> None:
    expected = reference["videos"][KIOSK_VIDEO]["hands"]
    errors = [min(landmark_error(hand, theirs) for theirs in expected[index])
              for index, ours in enumerate(kiosk_run.hands) if expected[index] for hand in ours]
    assert np.mean(errors) <= 0.03
    ours_found = sum(1 for hands in kiosk_run.hands[28:] if hands)
    theirs_found = sum(1 for hands in expected[28:] if hands)
    assert ours_found >= theirs_found


def test_closeup_video_tracking_matches_the_reference(media: Path, reference: dict) -> None:
    run = run_video(media / CLOSEUP_VIDEO)
    expected = reference["videos"][CLOSEUP_VIDEO]["hands"]
    errors = [min(landmark_error(hand, theirs) for theirs in expected[index])
              for index, ours in enumerate(run.hands) if expected[index] for hand in ours]
    assert len(errors) >= sum(1 for hands in expected if hands) * 0.95
    assert np.mean(errors) <= 0.03


def test_no_phantom_hands_and_none_before_the_hand_appears(kiosk_run: VideoRun) -> None:
    assert all(not hands for hands in kiosk_run.hands[:23])
    assert max(len(hands) for hands in kiosk_run.hands) == 1


def test_steady_state_is_one_landmark_inference_per_frame(kiosk_run: VideoRun) -> None:
    frames = len(kiosk_run.hands) - 60
    landmark_runs = kiosk_run.landmark_calls[-1] - kiosk_run.landmark_calls[60]
    palm_runs = kiosk_run.palm_calls[-1] - kiosk_run.palm_calls[60]
    assert landmark_runs <= frames * 1.15
    assert palm_runs <= frames / 8


def test_gestures_on_the_devset_video(kiosk_run: VideoRun) -> None:
    held = [state.primary.held if state.primary else None for state in kiosk_run.gestures]
    assert set(held[:23]) == {None}
    assert held[35:55].count("rock") >= 18
    assert held[70:].count("thumb_up") >= 0.95 * len(held[70:])
    assert set(held) <= {None, "rock", "thumb_up"}


@pytest.mark.parametrize("scale", [0.6, 0.4])
def test_hands_are_found_at_kiosk_distance(media: Path, scale: float) -> None:
    """The frame shrunk as if the shopper stood further away (the reference loses the hand: README)."""
    run = run_video(media / KIOSK_VIDEO, scale)
    found = [bool(hands) for hands in run.hands]
    assert sum(found[28:]) >= 0.9 * len(found[28:])
    assert not any(found[:23])
