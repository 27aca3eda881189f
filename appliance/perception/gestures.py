"""One hand's gesture in one frame, from its 21 landmarks alone.

Every measure is taken in the hand's own frame (3D joint angles, distances
divided by the palm's size), so in-plane rotation, scale, left/right and
palm/back facing the camera drop out. The one exception is thumb up/down,
which is defined by the image's vertical.

Each digit gets an extension score in -1 (folded) .. +1 (extended); a digit
whose score is within ``DECIDED`` of zero is undecided, and any undecided
digit that a label depends on makes the answer ``other``. A wrong
rock/paper/scissors reading loses a shopper a game, while ``other`` only
asks them to hold the sign a moment longer, so every doubt resolves to
``other``.
"""

from __future__ import annotations

import numpy as np

from appliance.errors import ApplianceError
from appliance.perception.hand import INDEX, MIDDLE, PINKY, RING, THUMB, WRIST, Gesture, Hand

#: |score| a digit needs before it counts as clearly extended or folded.
DECIDED = 0.5

#: A finger's bend in degrees, in 3D: at the knuckle (wrist→MCP against MCP→PIP) plus at the PIP
#: (MCP→PIP against the PIP→tip chord; the chord's two short bones are steadier than either alone).
#: In the reference data a straight finger bends 20–60 (wrist→knuckle is not quite the finger's axis),
#: a folded one 180–300, a relaxed half-curl 80–160. The score crosses ±DECIDED at 90 and 130.
BEND_MIDPOINT = 110.0
BEND_SPAN = 40.0

#: Fingertip-to-wrist over PIP-to-wrist distance: about 1.3–1.45 when straight. A finger curled
#: towards the camera can look straight by its angles when the depth estimate is flat; this ratio
#: then vetoes "extended" (it never argues for "folded": a fist seen side-on can have a high ratio).
REACH_MIDPOINT = 1.1
REACH_SPAN = 0.15

#: Thumb tip to the nearest middle joint of the index/middle/ring fingers, in palm sizes: 0.05–0.15
#: when tucked over or beside a fist, 0.8–1.1 for a thumbs-up. Crosses ±DECIDED at 0.35 and 0.55.
THUMB_MIDPOINT = 0.45
THUMB_SPAN = 0.2
THUMB_NEIGHBOURS = (INDEX[1], INDEX[2], MIDDLE[1], MIDDLE[2], RING[1], RING[2])

#: Knuckle width (index to pinky MCP) over palm length (wrist to MCP), for an unforeshortened palm.
PALM_ASPECT = 0.7

#: Thumb up/down: the thumb's image direction within this many degrees of straight up/down.
THUMB_CONE = 45.0
#: ...and it must lie roughly in the image plane (2D over 3D length): towards the camera it has no direction.
THUMB_MIN_PLANAR = 0.6

#: Thumb tip to index tip, in palm sizes, below which an "open hand" is really an OK sign or a pinch.
PINCH_DISTANCE = 0.3


def palm_scale(points: np.ndarray) -> float:
    """The palm's size in pixels, robust to how the palm is tilted.

    Tilting the palm about its knuckle line shortens wrist→knuckle; turning it
    side-on shortens the knuckle width. The larger of the two (width brought
    to length by the palm's usual aspect) is the less foreshortened estimate.
    """
    knuckles = points[[INDEX[0], MIDDLE[0], RING[0], PINKY[0]]]
    length = float(np.linalg.norm(knuckles - points[WRIST], axis=1).mean())
    width = float(np.linalg.norm(points[INDEX[0]] - points[PINKY[0]]))
    return max(length, width / PALM_ASPECT)


def _bend(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Degrees the chain a→b→c turns at b (0 = straight)."""
    u, v = b - a, c - b
    norms = float(np.linalg.norm(u) * np.linalg.norm(v))
    if norms == 0.0:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(float(u @ v) / norms, -1.0, 1.0))))


def _score(value: float, midpoint: float, span: float) -> float:
    return float(np.clip((value - midpoint) / span, -1.0, 1.0))


def finger_extension(points: np.ndarray, finger: tuple[int, int, int, int]) -> float:
    """-1 folded .. +1 extended for one of the four fingers."""
    wrist, knuckle, middle, tip = points[WRIST], points[finger[0]], points[finger[1]], points[finger[3]]
    bend = _bend(wrist, knuckle, middle) + _bend(knuckle, middle, tip)
    straight = -_score(bend, BEND_MIDPOINT, BEND_SPAN)
    if straight <= 0.0:
        return straight
    pip_reach = float(np.linalg.norm(points[finger[1]] - points[WRIST]))
    if pip_reach == 0.0:
        return 0.0
    reach = float(np.linalg.norm(points[finger[3]] - points[WRIST])) / pip_reach
    return max(0.0, min(straight, _score(reach, REACH_MIDPOINT, REACH_SPAN)))


def thumb_extension(points: np.ndarray, scale: float) -> float:
    """-1 tucked .. +1 clear of the fingers.

    Measured against the other fingers' middle joints, which in a fist form its
    front: a tucked thumb lies on or beside them whichever way the fist turns.
    """
    tip = points[THUMB[3]]
    nearest = min(float(np.linalg.norm(tip - points[i])) for i in THUMB_NEIGHBOURS)
    return _score(nearest / scale, THUMB_MIDPOINT, THUMB_SPAN)


def _thumb_vertical(points: np.ndarray) -> tuple[Gesture, float]:
    """thumb_up / thumb_down by the image's vertical (y grows downwards), with the angular margin."""
    vector = points[THUMB[3]] - points[THUMB[1]]
    planar = float(np.linalg.norm(vector[:2]))
    if planar < THUMB_MIN_PLANAR * float(np.linalg.norm(vector)):
        return "other", 0.0
    from_up = float(np.degrees(np.arctan2(abs(vector[0]), -vector[1])))
    for label, off in (("thumb_up", from_up), ("thumb_down", 180.0 - from_up)):
        if off <= THUMB_CONE:
            return label, 1.0 - 0.5 * off / THUMB_CONE
    return "other", 0.0


def _state(score: float) -> int:
    return 1 if score >= DECIDED else -1 if score <= -DECIDED else 0


def classify(hand: Hand) -> tuple[Gesture, float]:
    """The hand's gesture and a confidence in 0..1.

    A label's confidence is the smallest |score| among the digits (and the
    thumb's angle or the pinch gap) it rests on, so it is at least ``DECIDED``
    and says how far the closest call was from its threshold. For ``other`` it
    is the clarity of the least clear digit.
    """
    points = np.asarray(hand.landmarks, dtype=np.float64)
    if points.shape != (21, 3):
        raise ApplianceError(f"hand landmarks have shape {points.shape}, expected (21, 3): landmark model mismatch")
    scale = palm_scale(points)
    if not np.isfinite(scale) or scale <= 0.0:
        return "other", 0.0
    fingers = [finger_extension(points, finger) for finger in (INDEX, MIDDLE, RING, PINKY)]
    thumb = thumb_extension(points, scale)
    pattern = tuple(_state(score) for score in fingers)
    finger_margin = min(abs(score) for score in fingers)

    if pattern == (1, 1, 1, 1):
        gap = float(np.linalg.norm(points[THUMB[3]] - points[INDEX[3]])) / scale
        if gap >= PINCH_DISTANCE:
            return "paper", min(finger_margin, gap / (2 * PINCH_DISTANCE), 1.0)
    elif pattern == (1, 1, -1, -1):
        return "scissors", finger_margin
    elif pattern == (1, -1, -1, -1):
        return "point", finger_margin
    elif pattern == (-1, -1, -1, -1):
        if _state(thumb) == -1:
            return "rock", min(finger_margin, -thumb)
        if _state(thumb) == 1:
            label, angle_margin = _thumb_vertical(points)
            if label != "other":
                return label, min(finger_margin, thumb, angle_margin)
    return "other", min(finger_margin, abs(thumb))
