"""Hands in video and in stills: a search when needed, landmark tracking every frame.

Video: each tracked hand costs one landmark inference per frame, on the ROI
its last landmarks give; the search (hand_search's plan) runs only while fewer
hands than the maximum are tracked: two steps a frame while no hand is
tracked, one step every ``recheck_every`` frames otherwise, so the steady
state with one hand is a single landmark inference.  Stills: every step of the
plan at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from appliance.perception.hand import Hand
from appliance.perception.hand_search import SearchStep, search_plan
from appliance.perception.landmarks import MIN_PRESENCE, HandLandmarker, region_from_landmarks, region_from_palm
from appliance.perception.needs import EVERY_FRAME
from appliance.perception.palm import PalmDetector
from appliance.perception.schedule import RateGate
from appliance.perception.tensor import Region

#: The models, as named in models/manifest.toml (the full variants: kiosk-distance hands need them; a board
#: running its models on the CPU may take the lite landmarks, perception/profile.py).
PALM_MODEL = "palm_detection_full"
LANDMARK_MODEL = "hand_landmark_full"
LITE_LANDMARK_MODEL = "hand_landmark_lite"
#: Two hands whose landmark boxes overlap this much (of the smaller box) are one hand.
SAME_HAND_OVERLAP = 0.5
#: The close-range probe (landmarks on the whole frame) counts only when this sure.
PROBE_MIN_PRESENCE = 0.8

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Track:
    hand: Hand
    region: Region   # where to look next frame


def _corners(hand: Hand) -> np.ndarray:
    x, y, w, h = hand.box
    return np.array([x, y, x + w, y + h])


def _overlaps(hand: Hand, others: list[Hand], threshold: float = SAME_HAND_OVERLAP) -> bool:
    """Whether ``hand`` is mostly inside one of ``others`` (or they mostly inside it): one hand seen twice.

    Intersection over the smaller box, not IoU: a phantom second hand on a real
    one is often a squashed, smaller copy whose IoU with it stays low.
    """
    mine = _corners(hand)
    for other in others:
        theirs = _corners(other)
        overlap = np.prod(np.clip(np.minimum(mine[2:], theirs[2:]) - np.maximum(mine[:2], theirs[:2]), 0, None))
        smaller = min(np.prod(mine[2:] - mine[:2]), np.prod(theirs[2:] - theirs[:2]))
        if smaller > 0 and overlap / smaller > threshold:
            return True
    return False


class HandTracker:
    """``search_rate``: at most this many searches a second while no hand is tracked (a board whose CPU runs the
    palm detector slowly searches less often instead of slowing every frame; on the capture clock)."""

    def __init__(self, detector: PalmDetector, landmarker: HandLandmarker, max_hands: int = 2,
                 recheck_every: int = 12, windows_while_lost: int = 2, search_rate: float = EVERY_FRAME) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self.max_hands = max_hands
        self.recheck_every = recheck_every
        self.windows_while_lost = windows_while_lost
        self.search_rate = search_rate
        self._tracks: list[Track] = []
        self._next_id = 1
        self._step = 0
        self._since_search = 0
        self._search_gate = RateGate()

    def reset(self) -> None:
        self._tracks = []
        self._search_gate.forget()

    def update(self, image: np.ndarray, person: Box | None, captured_at: float) -> list[Hand]:
        """The hands in this video frame (in tracking order); call once per frame, in order."""
        tracks: list[Track] = []
        for track in self._tracks:
            hand = self.landmarker.landmarks(image, track.region)
            if hand.presence >= MIN_PRESENCE and not _overlaps(hand, [t.hand for t in tracks]):
                tracks.append(Track(replace(hand, track_id=track.hand.track_id), region_from_landmarks(hand.landmarks)))
        self._since_search += 1
        lost_and_due = not tracks and self._search_gate.due(self.search_rate, captured_at)
        if len(tracks) < self.max_hands and (lost_and_due or (tracks and self._since_search >= self.recheck_every)):
            self._since_search = 0
            if not tracks:   # a recheck beside a tracked hand does not delay the search once it is lost
                self._search_gate.ran(captured_at)
            tracks += self._search(image, person, [t.hand for t in tracks])
        self._tracks = tracks
        return [track.hand for track in tracks]

    def _search(self, image: np.ndarray, person: Box | None, known: list[Hand]) -> list[Track]:
        plan = search_plan((image.shape[1], image.shape[0]), person)
        steps = self.windows_while_lost if not known else 1
        candidates: list[Hand] = []
        for _ in range(min(steps, len(plan))):
            candidates += candidate_hands(self.detector, self.landmarker, image, plan[self._step % len(plan)])
            self._step += 1
        found: list[Track] = []
        for hand in candidates:
            if len(known) + len(found) >= self.max_hands:
                break
            if _overlaps(hand, known + [t.hand for t in found]):
                continue
            hand = replace(hand, track_id=self._next_id)
            self._next_id += 1
            found.append(Track(hand, region_from_landmarks(hand.landmarks)))
        return found


def candidate_hands(detector: PalmDetector, landmarker: HandLandmarker, image: np.ndarray,
                    step: SearchStep) -> list[Hand]:
    """Hands one search step finds, each with landmarks and a presence above the bar."""
    if step.probe:
        hand = landmarker.landmarks(image, step.region)
        return [hand] if hand.presence >= PROBE_MIN_PRESENCE else []
    hands = (landmarker.landmarks(image, region_from_palm(palm)) for palm in detector.detect(image, step.region))
    return [hand for hand in hands if hand.presence >= MIN_PRESENCE]


def hands_in_still(detector: PalmDetector, landmarker: HandLandmarker, image: np.ndarray,
                   person: Box | None, max_hands: int = 2) -> list[Hand]:
    """Every step of the search plan; the most confident hands first, each hand once."""
    candidates = [hand for step in search_plan((image.shape[1], image.shape[0]), person)
                  for hand in candidate_hands(detector, landmarker, image, step)]
    hands: list[Hand] = []
    for hand in sorted(candidates, key=lambda h: -h.presence):
        if not _overlaps(hand, hands):
            hands.append(replace(hand, track_id=len(hands) + 1))
        if len(hands) == max_hands:
            break
    return hands
