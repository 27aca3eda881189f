"""Falling snow over the whole screen.

Every flake's position is a pure function of time (seeded start, constant fall, wind and a
gentle sway, wrapping around the screen), so the snow falls at the same speed whatever the
frame rate and the same seed and time always give the same picture. Flakes are stamped as
soft sprites with a "lighten" (per-pixel max) blend in one vectorised numpy pass: a few
hundred cv2.circle calls from Python would cost more than the whole stamp.
"""

from __future__ import annotations

import math

import numpy as np

from appliance.content import SnowSpec

REFERENCE_HEIGHT = 1080
DEPTH_LAYERS = 4
# Under a lighten blend a sprite pixel this dim only shows on near-black; dropping them
# saves a third of the stamping work.
FAINTEST = 24


def _sprite(radius: float, peak: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (dy, dx) and 0..255 values of a soft disc's non-zero pixels."""
    half = math.ceil(radius + 1.0)
    dy, dx = np.mgrid[-half : half + 1, -half : half + 1]
    distance = np.hypot(dy, dx)
    values = peak * np.clip((radius + 0.5 - distance) / (0.5 + 0.35 * radius), 0.0, 1.0)
    keep = values >= FAINTEST
    return dy[keep], dx[keep], values[keep].astype(np.uint8)


class Snow:
    """A seeded field of flakes for one screen size; near flakes are bigger, brighter, faster."""

    def __init__(self, spec: SnowSpec, screen_size: tuple[int, int]) -> None:
        width, height = screen_size
        scale = height / REFERENCE_HEIGHT
        rng = np.random.default_rng(spec.seed)
        count = spec.count
        layer = rng.integers(0, DEPTH_LAYERS, count)
        depth = (layer + 1) / DEPTH_LAYERS
        self._margin = math.ceil(spec.max_radius * scale + 2.0)
        self._span = (width + 2 * self._margin, height + 2 * self._margin)
        self._size = (width, height)
        self._x0 = rng.uniform(0, self._span[0], count)
        self._y0 = rng.uniform(0, self._span[1], count)
        self._fall = spec.speed * scale * (0.35 + 0.65 * depth)
        self._drift = spec.wind * scale * (0.5 + 0.5 * depth)
        self._sway = rng.uniform(3.0, 12.0, count) * scale
        self._sway_rate = rng.uniform(0.4, 1.2, count) * 2 * math.pi
        self._sway_phase = rng.uniform(0, 2 * math.pi, count)

        owners, offsets_y, offsets_x, values = [], [], [], []
        for index in range(DEPTH_LAYERS):
            fraction = index / (DEPTH_LAYERS - 1)
            radius = (spec.min_radius + (spec.max_radius - spec.min_radius) * fraction) * scale
            dy, dx, v = _sprite(radius, 140.0 + 115.0 * fraction)
            flakes = np.flatnonzero(layer == index)
            owners.append(np.repeat(flakes, len(v)))
            offsets_y.append(np.tile(dy, len(flakes)))
            offsets_x.append(np.tile(dx, len(flakes)))
            values.append(np.tile(v, len(flakes)))
        self._owner = np.concatenate(owners)
        self._dy = np.concatenate(offsets_y)
        self._dx = np.concatenate(offsets_x)
        self._values = np.concatenate(values)[:, None]

    def positions(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Flake centres (x, y) in screen pixels at time ``now`` (seconds, any epoch)."""
        x = self._x0 + self._drift * now + self._sway * np.sin(self._sway_rate * now + self._sway_phase)
        y = self._y0 + self._fall * now
        return np.mod(x, self._span[0]) - self._margin, np.mod(y, self._span[1]) - self._margin

    def draw(self, canvas: np.ndarray, now: float) -> None:
        x, y = self.positions(now)
        ys = np.rint(y).astype(np.intp)[self._owner] + self._dy
        xs = np.rint(x).astype(np.intp)[self._owner] + self._dx
        width, height = self._size
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        pixels = canvas.reshape(-1, 3)
        index = (ys * width + xs)[inside]
        stamped = pixels[index]
        np.maximum(stamped, self._values[inside], out=stamped)
        pixels[index] = stamped
