"""What perception says about hands: one tracked hand, its gesture, and the frame's gesture state.

These are the types the hand pipeline produces and the kiosk consumes; the
gesture code in between only ever sees landmarks, never pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

#: Landmark indices (MediaPipe's hand topology).
WRIST = 0
THUMB = (1, 2, 3, 4)        # CMC, MCP, IP, TIP
INDEX = (5, 6, 7, 8)        # MCP, PIP, DIP, TIP
MIDDLE = (9, 10, 11, 12)
RING = (13, 14, 15, 16)
PINKY = (17, 18, 19, 20)
PALM = (WRIST, 5, 9, 13, 17)

GESTURES = ("rock", "paper", "scissors", "thumb_up", "thumb_down", "point", "other")
Gesture = Literal["rock", "paper", "scissors", "thumb_up", "thumb_down", "point", "other"]


@dataclass(frozen=True)
class Hand:
    """One hand in one frame, in the input image's pixels."""

    handedness: str             # "Left" or "Right", as the reference labels it
    score: float                # handedness confidence, 0..1
    presence: float             # hand-presence confidence of the landmark model, 0..1
    landmarks: np.ndarray       # (21, 3) float32: x, y in pixels; z relative depth on x's scale
    track_id: int = 0           # stable while the hand is tracked from frame to frame

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x, y, w, h) bounding the landmarks."""
        low = self.landmarks[:, :2].min(axis=0)
        high = self.landmarks[:, :2].max(axis=0)
        return float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])

    @property
    def palm_centre(self) -> tuple[float, float]:
        x, y = self.landmarks[list(PALM), :2].mean(axis=0)
        return float(x), float(y)


@dataclass(frozen=True)
class HandGesture:
    """A hand with its gesture: this frame's reading, and the stabilised one the UI acts on."""

    hand: Hand
    label: Gesture              # this frame's classification
    score: float                # its confidence, 0..1
    held: Gesture | None        # reported only once held (N of M frames, with hysteresis); None while settling


@dataclass(frozen=True)
class Swipe:
    direction: Literal["left", "right"]   # in the shopper's view (the mirrored screen)
    serial: int                           # increases by one per swipe, so a consumer that skips frames sees new ones
    at: float                             # monotonic time it was detected


@dataclass(frozen=True)
class GestureState:
    """Everything gesture-related about one frame."""

    hands: tuple[HandGesture, ...] = ()
    primary: HandGesture | None = None    # the hand that drives the screen (sticky while it stays)
    swipe: Swipe | None = None            # the most recent swipe, however long ago
