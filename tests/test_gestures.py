"""Gesture classification and tracking: constructed hands in every pose, the reference's real landmarks, scripted streams."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from appliance.errors import ApplianceError
from appliance.perception.gesture_tracker import GestureTracker
from appliance.perception.gestures import classify
from appliance.perception.hand import THUMB, GestureState, Hand

RPS = {"rock", "paper", "scissors"}
FRAME = (1280, 720)
FPS = 25.0

# --- a constructed hand -------------------------------------------------------------------------
# Hand frame: x across the palm (thumb side positive), y from wrist to knuckles, z out of the palm's
# inner side; unit = about one palm length.
KNUCKLES = {"index": (0.35, 1.0), "middle": (0.1, 1.05), "ring": (-0.15, 1.0), "pinky": (-0.38, 0.9)}
SEGMENTS = {"index": (0.45, 0.28, 0.22), "middle": (0.5, 0.3, 0.23), "ring": (0.47, 0.28, 0.22),
            "pinky": (0.35, 0.22, 0.2)}
SPREAD = {"index": 8.0, "middle": 0.0, "ring": -8.0, "pinky": -16.0}
#: Bend at MCP, PIP, DIP (degrees) per finger state: Extended, Folded, Half-curled (an OK sign's index).
BENDS = {"E": (5.0, 5.0, 3.0), "F": (80.0, 100.0, 60.0), "H": (35.0, 55.0, 35.0)}
THUMB_CMC = np.array([0.25, 0.2, 0.1])


def _direction(spread: float, curl: float) -> np.ndarray:
    s, c = np.radians(spread), np.radians(curl)
    return np.array([np.sin(s) * np.cos(c), np.cos(s) * np.cos(c), np.sin(c)])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def build_hand(fingers: str, thumb: str) -> np.ndarray:
    """21 points in the hand frame. ``fingers``: a state letter per finger, index first (e.g. "EEFF");
    ``thumb``: "out" (extended, away from the palm), "in" (tucked across the folded fingers), "pinch"
    (tip on the index tip)."""
    points = np.zeros((21, 3))
    for number, (name, state) in enumerate(zip(KNUCKLES, fingers, strict=True)):
        base = 5 + 4 * number
        points[base] = (*KNUCKLES[name], 0.0)
        curl = 0.0
        for joint, (bend, length) in enumerate(zip(BENDS[state], SEGMENTS[name], strict=True)):
            curl += bend
            points[base + joint + 1] = points[base + joint] + length * _direction(SPREAD[name], curl)
    points[THUMB[0]] = THUMB_CMC
    if thumb == "out":
        out = _unit(np.array([np.sin(np.radians(50)), np.cos(np.radians(50)), 0.15]))
        for joint, length in enumerate((0.35, 0.3, 0.25)):
            points[THUMB[joint + 1]] = points[THUMB[joint]] + length * out
    elif thumb == "in":
        points[list(THUMB[1:])] = [(0.45, 0.5, 0.25), (0.3, 0.75, 0.45), (0.08, 0.85, 0.55)]
    else:
        points[THUMB[1]] = THUMB_CMC + 0.35 * _unit(np.array([0.6, 0.7, 0.3]))
        points[THUMB[3]] = points[8] + (0.02, -0.02, 0.02)
        points[THUMB[2]] = (points[THUMB[1]] + points[THUMB[3]]) / 2 + (0.08, 0.0, 0.05)
    return points


def pose_hand(points: np.ndarray, angle: float = 0.0, scale: float = 150.0, mirror: bool = False,
              back: bool = False, tilt: float = 0.0, centre: tuple[float, float] = (640.0, 360.0)) -> np.ndarray:
    """Into image pixels: mirrored (the other hand), palm away from the camera, tilted about the knuckle
    axis by ``tilt`` degrees, rotated in the image plane by ``angle`` degrees about the wrist."""
    p = points * (-1 if mirror else 1, 1, -1 if back else 1)
    t = np.radians(tilt)
    p = p @ np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]]).T
    image = np.stack([p[:, 0], -p[:, 1], -p[:, 2]], axis=1) * scale      # y down, palm side towards the camera
    a = np.radians(angle)
    image[:, :2] = image[:, :2] @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]).T
    image[:, :2] += centre
    return image.astype(np.float32)


def hand(landmarks: np.ndarray, track_id: int = 1) -> Hand:
    return Hand("Right", 0.95, 0.95, np.asarray(landmarks, dtype=np.float32), track_id)


ANGLES = range(0, 360, 30)
VIEWS = list(itertools.product((False, True), (False, True), (0.0, 35.0), (40.0, 400.0)))   # mirror, back, tilt, scale


def every_view(points: np.ndarray, angles=ANGLES):
    for angle, (mirror, back, tilt, scale) in itertools.product(angles, VIEWS):
        yield angle, pose_hand(points, angle, scale, mirror, back, tilt)


def thumb_angle_from_up(landmarks: np.ndarray) -> float:
    v = landmarks[THUMB[3], :2] - landmarks[THUMB[1], :2]
    return float(np.degrees(np.arctan2(abs(v[0]), -v[1])))


# --- classifier on constructed hands --------------------------------------------------------------
@pytest.mark.parametrize(("fingers", "thumb", "expected"), [
    ("FFFF", "in", "rock"),
    ("EEEE", "out", "paper"),
    ("EEEE", "in", "paper"),
    ("EEFF", "in", "scissors"),
    ("EEFF", "out", "scissors"),
    ("EFFF", "in", "point"),
    ("EFFF", "out", "point"),
])
def test_labels_hold_under_rotation_mirroring_facing_tilt_and_scale(fingers: str, thumb: str, expected: str) -> None:
    for angle, landmarks in every_view(build_hand(fingers, thumb)):
        label, score = classify(hand(landmarks))
        assert label == expected, (angle, label)
        assert 0.5 <= score <= 1.0


def test_thumb_up_and_down_follow_the_image_vertical() -> None:
    seen = Counter()
    for _, landmarks in every_view(build_hand("FFFF", "out"), angles=range(0, 360, 10)):
        label, _ = classify(hand(landmarks))
        off = thumb_angle_from_up(landmarks)
        if off <= 30:
            assert label == "thumb_up", off
        elif off >= 150:
            assert label == "thumb_down", off
        elif 55 <= off <= 125:
            assert label == "other", off
        assert label not in RPS
        seen[label] += 1
    assert seen["thumb_up"] and seen["thumb_down"] and seen["other"]


NOT_RPS = {
    "horns": [("EFFE", "in"), ("EFFE", "out"), ("EHFE", "in")],
    "call": [("FFFE", "out")],
    "three": [("EEEF", "in"), ("EEEF", "out"), ("EEEH", "in")],
    "ok": [("HEEE", "pinch"), ("FEEE", "pinch"), ("EEEE", "pinch")],   # the last: index kept straight
    "thumb_down_or_up": [("FFFF", "out")],
    "point": [("EFFF", "in"), ("EFFF", "out"), ("EHFF", "in")],
    "loose_curl": [("HHHH", "in"), ("HHHH", "out")],
}


@pytest.mark.parametrize("sign", sorted(NOT_RPS))
def test_signs_that_are_not_rock_paper_scissors_never_read_as_one(sign: str) -> None:
    rng = np.random.default_rng(7)
    for fingers, thumb in NOT_RPS[sign]:
        for angle, landmarks in every_view(build_hand(fingers, thumb), angles=range(0, 360, 15)):
            assert classify(hand(landmarks))[0] not in RPS, (fingers, thumb, angle)
            size = float(np.linalg.norm(landmarks[9, :2] - landmarks[0, :2]))
            noisy = landmarks + rng.normal(0.0, 0.03 * size, landmarks.shape).astype(np.float32)
            assert classify(hand(noisy))[0] not in RPS, (fingers, thumb, angle, "noisy")


def test_rps_mostly_survives_landmark_noise() -> None:
    rng = np.random.default_rng(3)
    for fingers, thumb, expected in [("FFFF", "in", "rock"), ("EEEE", "out", "paper"), ("EEFF", "in", "scissors")]:
        labels = Counter()
        for _, landmarks in every_view(build_hand(fingers, thumb)):
            size = float(np.linalg.norm(landmarks[9, :2] - landmarks[0, :2]))
            labels[classify(hand(landmarks + rng.normal(0.0, 0.03 * size, landmarks.shape)))[0]] += 1
        assert labels[expected] >= 0.95 * labels.total(), (expected, labels)
        assert set(labels) <= {expected, "other"}, labels


def test_confidence_falls_towards_a_threshold_with_a_dead_zone_between_labels() -> None:
    pointing, fist = build_hand("EFFF", "in"), build_hand("FFFF", "in")
    readings = []
    for share in np.linspace(0.0, 1.0, 21):                 # the index curls from pointing into the fist
        points = pointing.copy()
        points[6:9] = (1 - share) * pointing[6:9] + share * fist[6:9]
        readings.append(classify(hand(pose_hand(points, angle=75.0))))
    labels = [label for label, _ in readings]
    assert labels[0] == "point" and labels[-1] == "rock"
    assert labels == sorted(labels, key=["point", "other", "rock"].index) and "other" in labels
    point_scores = [score for label, score in readings if label == "point"]
    assert point_scores == sorted(point_scores, reverse=True) and point_scores[-1] < 0.8


def test_malformed_landmarks_are_an_appliance_error() -> None:
    with pytest.raises(ApplianceError, match="shape"):
        classify(hand(np.zeros((20, 3))))
    assert classify(hand(np.zeros((21, 3)))) == ("other", 0.0)


# --- the reference implementation's real landmarks ---------------------------------------------------
def reference(media: Path) -> dict:
    return json.loads((media / "mediapipe_reference" / "reference.json").read_text())


def reference_hand(raw: dict, track_id: int = 1) -> Hand:
    return Hand(raw["handedness"], raw["score"], 1.0, np.array(raw["landmarks"], dtype=np.float32), track_id)


def fist_thumbup_frames(media: Path) -> list[list[Hand]]:
    """Per frame, the reference's best hand (it sometimes adds a phantom second one)."""
    frames = reference(media)["videos"]["kiosk_fist_thumbup_720p.mp4"]["hands"]
    return [[reference_hand(max(hands, key=lambda h: h["score"]))] if hands else [] for hands in frames]


def test_reference_video_reads_rock_then_thumb_up(media: Path) -> None:
    frames = fist_thumbup_frames(media)
    labels = [classify(hands[0])[0] if hands else None for hands in frames]
    fist, thumb = Counter(labels[30:56]), Counter(labels[65:191])
    print("fist frames 30-55:", dict(fist), "thumb-up frames 65-190:", dict(thumb))
    assert labels[:23] == [None] * 23
    assert fist["rock"] >= 0.8 * fist.total() and set(fist) <= {"rock", "other", "thumb_up"}   # the thumb rises ~53
    assert set(labels[30:52]) == {"rock"}
    assert thumb["thumb_up"] >= 0.9 * thumb.total() and set(thumb) <= {"thumb_up", "other"}


def test_reference_video_holds_rock_then_thumb_up_and_nothing_else(media: Path) -> None:
    tracker = GestureTracker()
    held = []
    for number, hands in enumerate(fist_thumbup_frames(media)):
        state = tracker.update(hands, number / FPS, (1280, 720))
        held.append(state.primary.held if state.primary else None)
    assert not any(held[:23])
    assert all(label == "rock" for label in held[30:50])
    assert all(label == "thumb_up" for label in held[65:])
    changes = [label for number, label in enumerate(held) if label != (held[number - 1] if number else None)]
    assert [label for label in changes if label] == ["rock", "thumb_up"], changes


def test_reference_images(media: Path) -> None:
    for name, image in reference(media)["images"].items():
        for raw in image["hands"]:
            print(name, raw["handedness"], classify(reference_hand(raw)))
    (thumb,) = reference(media)["images"]["thumb_up.jpg"]["hands"]
    assert classify(reference_hand(thumb))[0] == "thumb_up"


# --- held gestures ------------------------------------------------------------------------------------
SHAPES = {"rock": ("FFFF", "in"), "paper": ("EEEE", "out"), "scissors": ("EEFF", "in"), "point": ("EFFF", "in"),
          "other": ("EFFE", "in")}


def posed(label: str, track_id: int = 1, scale: float = 150.0, centre: tuple[float, float] = (640.0, 360.0)) -> Hand:
    return hand(pose_hand(build_hand(*SHAPES[label]), angle=20.0, scale=scale, centre=centre), track_id)


def held_sequence(tracker: GestureTracker, script: list[str]) -> list[str | None]:
    held = []
    for number, label in enumerate(script):
        state = tracker.update([posed(label)], number / FPS, FRAME)
        assert state.hands[0].label == label
        held.append(state.hands[0].held)
    return held


def test_a_gesture_is_held_after_n_of_m_frames() -> None:
    assert held_sequence(GestureTracker(hold_frames=4, window=6), ["rock"] * 5) == [None, None, None, "rock", "rock"]
    flicker = ["rock", "other", "rock", "other", "rock", "rock"]
    assert held_sequence(GestureTracker(hold_frames=4, window=6), flicker) == [None] * 5 + ["rock"]


def test_glitches_and_transitions_never_show() -> None:
    held = held_sequence(GestureTracker(), ["rock"] * 10 + ["scissors"] + ["paper"] * 10)
    assert "scissors" not in held
    assert held[10:13] == ["rock"] * 3 and held[-1] == "paper"
    held = held_sequence(GestureTracker(), ["rock"] * 8 + ["point", "point", "scissors", "scissors"] + ["paper"] * 8)
    assert set(held[3:]) == {"rock", "paper"}
    assert held.index("paper") > 8 and "rock" not in held[held.index("paper"):]


def test_other_dominating_releases_the_held_gesture() -> None:
    held = held_sequence(GestureTracker(), ["rock"] * 6 + ["other"] * 6)
    assert held[6:9] == ["rock"] * 3 and held[-1] is None


def test_a_hand_that_leaves_is_forgotten() -> None:
    tracker = GestureTracker()
    for number in range(6):
        tracker.update([posed("rock")], number / FPS, FRAME)
    assert tracker.update([], 6 / FPS, FRAME) == GestureState()
    assert tracker.update([posed("rock")], 7 / FPS, FRAME).hands[0].held is None


def test_hold_settings_are_checked() -> None:
    with pytest.raises(ApplianceError):
        GestureTracker(hold_frames=3, window=6)
    with pytest.raises(ApplianceError):
        GestureTracker(hold_frames=7, window=6)


# --- primary hand -------------------------------------------------------------------------------------
def test_primary_is_the_biggest_hand_and_sticks() -> None:
    tracker = GestureTracker()
    assert tracker.update([posed("paper", 1, 100.0), posed("rock", 2, 110.0)], 0.0, FRAME).primary.hand.track_id == 2
    for number, (small, big) in enumerate([(120.0, 110.0), (125.0, 100.0), (110.0, 115.0)]):
        state = tracker.update([posed("paper", 1, small), posed("rock", 2, big)], (number + 1) / FPS, FRAME)
        assert state.primary.hand.track_id == 2
    state = tracker.update([posed("paper", 1, 180.0), posed("rock", 2, 110.0)], 1.0, FRAME)
    assert state.primary.hand.track_id == 1
    assert tracker.update([posed("rock", 2, 110.0)], 1.04, FRAME).primary.hand.track_id == 2
    assert tracker.update([], 1.08, FRAME).primary is None


# --- swipes ---------------------------------------------------------------------------------------------
def run_path(tracker: GestureTracker, xs: list[float], ys: list[float] | None = None, start: float = 0.0,
             track_ids: list[int] | None = None) -> list[GestureState]:
    ys = ys or [360.0] * len(xs)
    track_ids = track_ids or [1] * len(xs)
    return [tracker.update([posed("paper", track, centre=(x, y))], start + number / FPS, FRAME)
            for number, (x, y, track) in enumerate(zip(xs, ys, track_ids, strict=True))]


def swipes(states: list[GestureState]) -> list[tuple[str, int]]:
    seen = {(s.swipe.direction, s.swipe.serial) for s in states if s.swipe}
    return sorted(seen, key=lambda item: item[1])


def test_moving_towards_image_left_is_a_right_swipe_on_the_mirrored_screen() -> None:
    still = [900.0] * 5
    states = run_path(GestureTracker(), still + [900.0 - 50 * i for i in range(1, 9)] + [500.0] * 5)
    assert swipes(states) == [("right", 1)]
    assert states[-1].swipe.serial == 1                     # the last swipe persists in later states
    states = run_path(GestureTracker(), [400.0] * 5 + [400.0 + 50 * i for i in range(1, 9)])
    assert swipes(states) == [("left", 1)]


def test_one_swipe_fires_once_and_the_next_gets_the_next_serial() -> None:
    tracker = GestureTracker()
    long_sweep = [1100.0 - 45 * i for i in range(20)]       # 855 px in 0.8 s: one swipe, not two
    states = run_path(tracker, long_sweep)
    assert swipes(states) == [("right", 1)]
    later = run_path(tracker, [200.0] * 20 + [200.0 + 60 * i for i in range(10)], start=1.0)
    assert swipes(later) == [("right", 1), ("left", 2)]


@pytest.mark.parametrize("motion", ["slow_drift", "vertical", "jitter", "diagonal", "jump"])
def test_motion_that_is_not_a_swipe(motion: str) -> None:
    rng = np.random.default_rng(5)
    n = 60
    xs, ys = [640.0] * n, [360.0] * n
    if motion == "slow_drift":
        xs = [300.0 + 12 * i for i in range(n)]             # 700 px over 2.4 s
    elif motion == "vertical":
        ys = [100.0 + 10 * i for i in range(n)]
    elif motion == "jitter":
        xs = list(640.0 + rng.uniform(-80, 80, n))
    elif motion == "diagonal":
        xs = [300.0 + 45 * i for i in range(n // 4)]
        ys = [100.0 + 40 * i for i in range(n // 4)]
    else:
        xs = [300.0] * (n // 2) + [900.0] * (n // 2)        # the tracker latching onto something else
    assert swipes(run_path(GestureTracker(), xs, ys)) == []


def test_hands_appearing_and_disappearing_do_not_swipe() -> None:
    tracker = GestureTracker()
    states = run_path(tracker, [1000.0] * 5 + [300.0] * 5, track_ids=[1] * 5 + [2] * 5)
    states += [tracker.update([], 0.5, FRAME)]
    states += run_path(tracker, [900.0] * 5, start=0.54)
    assert swipes(states) == []
