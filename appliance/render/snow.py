"""Falling snow over the whole screen.

Every flake's position is a pure function of time (seeded start, constant fall, wind and a
gentle sway, wrapping around the screen), so the snow falls at the same speed whatever the
frame rate and the same seed and time always give the same picture.

A flake is a soft white disc whose coverage (0..255) is its sprite: it is laid over the
picture as white with that coverage as alpha (``out = dst + (255 - dst) * a / 255``, a
"screen" blend with grey), which is exactly what a GPU's standard alpha blend does with
a white sprite texture.  The CPU path (``draw``) stamps every flake's pixels in one
vectorised numpy pass (a few hundred cv2.circle calls from Python would cost more than
the whole stamp); the GPU path (appliance.render.gpu) draws ``sprites()`` at
``flakes(now)``.  Both place a flake's sprite at its rounded centre, so they agree to
the pixel; where two flakes overlap the CPU keeps one and the GPU blends both.
"""

from __future__ import annotations

import math

import numpy as np

from appliance.content import SnowSpec

REFERENCE_HEIGHT = 1080
DEPTH_LAYERS = 4
# Coverage this faint barely shows even on black; dropping it saves a third of the stamping work.
FAINTEST = 24


def _disc(radius: float, peak: float) -> np.ndarray:
    """A soft disc's coverage, 0..255, on a square of odd side centred on its middle pixel."""
    half = math.ceil(radius + 1.0)
    dy, dx = np.mgrid[-half : half + 1, -half : half + 1]
    values = peak * np.clip((radius + 0.5 - np.hypot(dy, dx)) / (0.5 + 0.35 * radius), 0.0, 1.0)
    return np.where(values >= FAINTEST, values, 0.0).astype(np.uint8)


class Snow:
    """A seeded field of flakes for one screen size; near flakes are bigger, brighter, faster."""

    def __init__(self, spec: SnowSpec, screen_size: tuple[int, int]) -> None:
        width, height = screen_size
        scale = height / REFERENCE_HEIGHT
        rng = np.random.default_rng(spec.seed)
        count = spec.count
        self.layer = rng.integers(0, DEPTH_LAYERS, count)
        depth = (self.layer + 1) / DEPTH_LAYERS
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
        self._discs = [_disc((spec.min_radius + (spec.max_radius - spec.min_radius) * index / (DEPTH_LAYERS - 1))
                             * scale, 140.0 + 115.0 * index / (DEPTH_LAYERS - 1)) for index in range(DEPTH_LAYERS)]

        owners, offsets_y, offsets_x, values = [], [], [], []
        for index, disc in enumerate(self._discs):
            half = disc.shape[0] // 2
            dy, dx = np.nonzero(disc)
            flakes = np.flatnonzero(self.layer == index)
            owners.append(np.repeat(flakes, len(dy)))
            offsets_y.append(np.tile(dy - half, len(flakes)))
            offsets_x.append(np.tile(dx - half, len(flakes)))
            values.append(np.tile(disc[dy, dx], len(flakes)))
        self._owner = np.concatenate(owners)
        self._dy = np.concatenate(offsets_y)
        self._dx = np.concatenate(offsets_x)
        self._coverage = np.concatenate(values).astype(np.uint16)[:, None]

    def positions(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Flake centres (x, y) in screen pixels at time ``now`` (seconds, any epoch)."""
        x = self._x0 + self._drift * now + self._sway * np.sin(self._sway_rate * now + self._sway_phase)
        y = self._y0 + self._fall * now
        return np.mod(x, self._span[0]) - self._margin, np.mod(y, self._span[1]) - self._margin

    def flakes(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Flake centres at ``now`` rounded to whole pixels (x, y), where both paths put their sprites."""
        x, y = self.positions(now)
        return np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)

    def sprites(self) -> list[np.ndarray]:
        """Each depth layer's flake as a BGRA image: white, its coverage as alpha (``layer`` says whose is
        whose); its centre pixel goes on the flake's centre."""
        return [np.dstack([np.full_like(disc, 255)] * 3 + [disc]) for disc in self._discs]

    def draw(self, canvas: np.ndarray, now: float) -> None:
        x, y = self.flakes(now)
        ys = y[self._owner] + self._dy
        xs = x[self._owner] + self._dx
        width, height = self._size
        inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
        pixels = canvas.reshape(-1, 3)
        index = (ys * width + xs)[inside]
        under = pixels[index].astype(np.uint16)
        coverage = self._coverage[inside]
        pixels[index] = under + ((255 - under) * coverage + 127) // 255
