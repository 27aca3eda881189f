"""Scripted GestureState streams for the kiosk's state machines (navigation, RPS): no camera, no models."""

from __future__ import annotations

import numpy as np

from appliance.perception.hand import PALM, GestureState, Hand, HandGesture, Swipe

FPS = 30.0


def hand_at(x: float, y: float) -> Hand:
    """A hand whose palm centre is at (x, y) camera pixels."""
    landmarks = np.zeros((21, 3), np.float32)
    landmarks[:, 0], landmarks[:, 1] = x, y
    landmarks[list(PALM), 0] += np.array([0, -20, 0, 0, 20], np.float32)  # symmetric: the centre stays put
    return Hand("Right", 0.95, 0.99, landmarks)


def state(held: str | None = None, label: str | None = None, swipe: Swipe | None = None,
          hand: bool = True, at: tuple[float, float] = (640.0, 360.0)) -> GestureState:
    """One frame: a primary hand showing ``label`` (default: ``held``) whose held reading is ``held``;
    ``hand=False`` for no hand at all."""
    if not hand:
        return GestureState(swipe=swipe)
    primary = HandGesture(hand_at(*at), label or held or "other", 0.9, held)
    return GestureState(hands=(primary,), primary=primary, swipe=swipe)


def frames(start: float, end: float, fps: float = FPS) -> list[float]:
    """The frame times from ``start`` up to (not including) ``end``."""
    return [start + i / fps for i in range(int(round((end - start) * fps)))]
