"""How well a shopper's pose matches the star's: angles of body parts, pure numpy.

Invariants:

- Only angles are compared, each measured from the body's own "up" (so a pose scores the same
  whatever its size, its place in the frame, or a tilt of the whole body): for the full body, up is
  mid-hip → mid-shoulder and the torso's part is its side bend against the hip line; for the upper
  body (``legs=False``), up is square to the shoulder line and arms alone are scored.
- Points are (N, 3) arrays: x, y in pixels of one isotropic image (y down), visibility 0..1.  A
  point is seen when its visibility is at least ``SEEN``.
- On a mirroring screen (the default) the star's picture is not mirrored: the shopper copies what they
  see, so their pose is compared mirrored (x negated, left and right swapped) with the star's as it is.
  On a screen that shows the camera as it is, the shopper's pose is compared as it is.
- A part of the star's pose that is not seen is not scored; a part the shopper's camera does not
  see scores 0.  A part matches within ``tolerance`` degrees; its score is 1 at no error, 0.5 at
  the tolerance, falling towards 0 beyond.  The overall score is the mean of part scores, weighted
  by the star's visibility, times 100; the pose matches when every scored part does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.experience.api import LIMBS

SEEN = 0.5
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 11, 12, 13, 14, 15, 16
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 23, 24, 25, 26, 27, 28
#: MediaPipe's left/right landmark pairs (face, arms, hands, legs, feet): what a mirror swaps.
PAIRS = ((1, 4), (2, 5), (3, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20), (21, 22),
         (23, 24), (25, 26), (27, 28), (29, 30), (31, 32))
SWAP = np.arange(33)
for _left, _right in PAIRS:
    SWAP[_left], SWAP[_right] = _right, _left
#: The limb segments scored, as (from, to) landmarks.
ARMS = {"left upper arm": (L_SHOULDER, L_ELBOW), "left forearm": (L_ELBOW, L_WRIST),
        "right upper arm": (R_SHOULDER, R_ELBOW), "right forearm": (R_ELBOW, R_WRIST)}
LEGS = {"left thigh": (L_HIP, L_KNEE), "left shin": (L_KNEE, L_ANKLE),
        "right thigh": (R_HIP, R_KNEE), "right shin": (R_KNEE, R_ANKLE)}
TORSO = "torso"
TORSO_POINTS = (L_SHOULDER, R_SHOULDER, L_HIP, R_HIP)


@dataclass(frozen=True)
class Part:
    """One scored part: its error in degrees (None when the shopper's camera does not see it)."""

    name: str
    points: tuple[int, ...]     # the landmarks that make it (star's indices)
    weight: float               # the star's visibility of it
    error: float | None
    score: float                # 0..1
    matched: bool


@dataclass(frozen=True)
class Match:
    parts: tuple[Part, ...]
    score: int                  # 0..100
    seen: bool                  # the shopper's body is seen enough to measure it (its "up")
    mirror: bool = True         # the shopper was compared mirrored (their left limb is the star's right)

    @property
    def matched(self) -> bool:
        return self.seen and bool(self.parts) and all(part.matched for part in self.parts)


def mirrored(points: np.ndarray) -> np.ndarray:
    """``points`` as a mirror shows them: x negated, left and right landmarks swapped."""
    flipped = points[SWAP].astype(np.float64, copy=True)
    flipped[:, 0] = -flipped[:, 0]
    return flipped


def part_names(legs: bool) -> tuple[str, ...]:
    return (*ARMS, *((*LEGS, TORSO) if legs else ()))


def scorable(star: np.ndarray, legs: bool) -> str | None:
    """Why a star pose cannot be played (its "up" is not seen, or no part is), or None."""
    if _up(star, legs) is None:
        return ("shoulders and hips must be seen (visibility ≥ 0.5)" if legs
                else "both shoulders must be seen (visibility ≥ 0.5)")
    if not any(_star_weight(star, points) > 0 for points in _segments(legs).values()):
        return "no limb is seen (visibility ≥ 0.5)"
    return None


def match(star: np.ndarray, shopper: np.ndarray, tolerance: float, legs: bool = True, mirror: bool = True) -> Match:
    """How the shopper's pose (camera frame) matches the star's (its picture's), on a screen that mirrors the
    camera or not."""
    mine = mirrored(shopper) if mirror else shopper.astype(np.float64)
    star_up, my_up = _up(star, legs), _up(mine, legs)
    if star_up is None:
        raise ValueError("the star's pose has no measurable up (see scorable)")
    parts = []
    for name, points in _segments(legs).items():
        weight = _star_weight(star, points)
        if weight <= 0:
            continue
        error = None
        if my_up is not None and _seen(mine, points):
            error = abs(_difference(_angle(star, points, star_up, name), _angle(mine, points, my_up, name)))
        score = 0.0 if error is None else math.exp(-math.log(2) * (error / tolerance) ** 2)
        parts.append(Part(name, points, weight, error, score, error is not None and error <= tolerance))
    total = sum(part.weight for part in parts)
    overall = round(100 * sum(part.weight * part.score for part in parts) / total) if total else 0
    return Match(tuple(parts), overall, my_up is not None, mirror)


def shopper_limbs(result: Match) -> dict[tuple[int, int], bool | None]:
    """Each of ``LIMBS`` of the shopper's own landmarks: True when the part it belongs to matches,
    False when it does not, None when it is not scored."""
    state: dict[tuple[int, int], bool | None] = {}
    for limb in LIMBS:
        star_side = (int(SWAP[limb[0]]), int(SWAP[limb[1]])) if result.mirror else limb   # as the screen shows it
        owner = next((part for part in result.parts if set(star_side) <= set(part.points)), None)
        state[limb] = None if owner is None else owner.matched
    return state


def _segments(legs: bool) -> dict[str, tuple[int, ...]]:
    return {**ARMS, **({**LEGS, TORSO: TORSO_POINTS} if legs else {})}


def _seen(points: np.ndarray, indices: tuple[int, ...]) -> bool:
    return bool((points[list(indices), 2] >= SEEN).all())


def _star_weight(star: np.ndarray, indices: tuple[int, ...]) -> float:
    return float(star[list(indices), 2].min()) if _seen(star, indices) else 0.0


def _up(points: np.ndarray, legs: bool) -> np.ndarray | None:
    """The body's up direction: mid-hip → mid-shoulder (full body), or square to the shoulder line."""
    if legs:
        if not _seen(points, TORSO_POINTS):
            return None
        return (points[L_SHOULDER, :2] + points[R_SHOULDER, :2] - points[L_HIP, :2] - points[R_HIP, :2]) / 2
    if not _seen(points, (L_SHOULDER, R_SHOULDER)):
        return None
    across = points[L_SHOULDER, :2] - points[R_SHOULDER, :2]
    return np.array([across[1], -across[0]])   # a quarter turn: towards the head of a body facing the camera


def _angle(points: np.ndarray, indices: tuple[int, ...], up: np.ndarray, name: str) -> float:
    """The part's direction in degrees from ``up`` (a torso: its up against the hip line's square)."""
    if name == TORSO:
        hips = points[L_HIP, :2] - points[R_HIP, :2]
        return _between(np.array([hips[1], -hips[0]]), up)
    start, end = indices
    return _between(up, points[end, :2] - points[start, :2])


def _between(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.atan2(_cross(a, b), float(np.dot(a, b))))


def _cross(a: np.ndarray, b: np.ndarray) -> float:
    return float(a[0] * b[1] - a[1] * b[0])


def _difference(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0
