"""The per-scene compositing chain, run once per displayed frame by the kiosk's render loop.

crop to the screen's aspect (the part of the camera the screen shows) → mirror → background
replacement (camera resolution) → scale to the screen → screen layers (snow, then overlays in
campaign order). Replacement happens before the upscale because it is the only full-frame
blend: at 720p it costs half what it would at 1080p, and it blends only inside the box of the
person's feathered matte (the background is copied around it).  The background is fitted to
the screen's aspect whatever the camera's, so the world is framed the same with a person in
it and alone (``compose_world``: the background fitted straight to the screen, then the
layers).

This numpy compositor runs where no GPU does and is the reference the GPU path
(appliance.render.gpu) is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from appliance.content import SceneSpec
from appliance.errors import ApplianceError
from appliance.media import DEFAULT_LIMITS, MediaLimits
from appliance.render.background import Background, open_background
from appliance.render.fit import cover_box, cover_fit, shown_point
from appliance.render.overlay import Overlay
from appliance.render.snow import Snow


class Layer(Protocol):
    def draw(self, canvas: np.ndarray, now: float) -> None:
        """Draw onto the screen-sized BGR ``canvas`` in place, as of time ``now``."""


@dataclass
class _Scratch:
    """Working buffers of the camera's shown part, reused every frame: fresh multi-megabyte arrays per
    frame cost page faults that showed up as a third of the compositor's time."""

    camera: np.ndarray
    alpha: np.ndarray
    feathered: np.ndarray
    weight: np.ndarray
    weight_behind: np.ndarray
    blended: np.ndarray

    @classmethod
    def for_shape(cls, height: int, width: int) -> _Scratch:
        def plane(dtype: type = np.uint8) -> np.ndarray:
            return np.empty((height, width), dtype)

        return cls(
            camera=np.empty((height, width, 3), np.uint8),
            alpha=plane(),
            feathered=plane(),
            weight=plane(np.float32),
            weight_behind=plane(np.float32),
            blended=np.empty((height, width, 3), np.uint8),
        )


def check_inputs(frame: np.ndarray, alpha: np.ndarray | None) -> None:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ApplianceError(f"compositor needs a BGR uint8 HxWx3 frame, got {frame.dtype} {frame.shape}")
    if alpha is not None and (alpha.dtype != np.uint8 or alpha.shape != frame.shape[:2]):
        raise ApplianceError(
            f"compositor needs a uint8 alpha of the frame's size {frame.shape[:2]}, got {alpha.dtype} {alpha.shape}"
        )


def checked_screen(screen_size: tuple[int, int]) -> tuple[int, int]:
    """``screen_size`` (w, h) as ints, once both are positive (a compositor is built for it)."""
    width, height = screen_size
    if width <= 0 or height <= 0:
        raise ApplianceError(f"screen size must be positive, got {screen_size}")
    return int(width), int(height)


def feather(alpha: np.ndarray, size: int, dst: np.ndarray | None = None) -> np.ndarray:
    """The matte's edge softened over ``size`` pixels (odd; 1 leaves it as is): a box blur, the cheapest
    feather, and it gives a monotonic linear edge ramp."""
    return cv2.blur(alpha, (size, size), dst=dst) if size > 1 else alpha


class Compositor:
    """One scene's chain for one screen size; build a new one when either changes.

    All media are decoded (within ``limits``) and scaled here, so a missing, corrupt or oversized
    file fails when the scene is built (ApplianceError naming the file), never in the middle of a frame.
    """

    def __init__(self, scene: SceneSpec, bundle_dir: Path, screen_size: tuple[int, int],
                 limits: MediaLimits = DEFAULT_LIMITS, background: Background | None = None) -> None:
        self.scene = scene
        self.screen_size = checked_screen(screen_size)
        bundle_dir = Path(bundle_dir)
        # ``background``: the scene's, already open (one decode shared with the GPU path's preview)
        self._background = background or open_background(bundle_dir / scene.background, limits)
        self._feather = 2 * scene.feather_px + 1
        self._layers: list[Layer] = [Snow(scene.snow, self.screen_size)] if scene.snow else []
        self._layers += [Overlay(spec, bundle_dir / spec.image, self.screen_size, limits) for spec in scene.overlays]
        self._scratch: _Scratch | None = None

    def compose(self, frame: np.ndarray, alpha: np.ndarray | None, now: float) -> np.ndarray:
        """The screen image for camera ``frame`` and person ``alpha`` (None: show the raw frame).

        ``now`` is a monotonic time in seconds; it drives the snow and a video background.
        Returns a new C-contiguous BGR uint8 array of ``screen_size``, owned by the caller.
        """
        check_inputs(frame, alpha)
        x, y, width, height = cover_box((frame.shape[1], frame.shape[0]), self.screen_size)
        if self.scene.mirror:   # the part shown once mirrored is the mirror image of this one
            x = frame.shape[1] - x - width
        shown = (slice(y, y + height), slice(x, x + width))
        camera, alpha = frame[shown], None if alpha is None else alpha[shown]
        scratch = self._scratch_for(camera)
        if self.scene.mirror:
            camera = cv2.flip(camera, 1, dst=scratch.camera)
            alpha = None if alpha is None else cv2.flip(alpha, 1, dst=scratch.alpha)
        if alpha is not None:
            camera = self._replace_background(camera, alpha, now, scratch)
        canvas = cover_fit(camera, self.screen_size)
        if np.may_share_memory(canvas, camera):
            canvas = canvas.copy()
        for layer in self._layers:
            layer.draw(canvas, now)
        return canvas

    def compose_world(self, now: float) -> np.ndarray:
        """The world alone at ``now`` (nobody shown): a new screen-sized BGR uint8 array owned by the caller."""
        canvas = self._background.frame(self.screen_size, now).copy()
        for layer in self._layers:
            layer.draw(canvas, now)
        return canvas

    def screen_point(self, point: tuple[float, float], frame_size: tuple[int, int]) -> tuple[float, float]:
        """Where a point of the camera frame (w, h) appears on the screen: mirrored like the image, then fitted."""
        return shown_point(point, frame_size, self.screen_size, self.scene.mirror)

    def _scratch_for(self, frame: np.ndarray) -> _Scratch:
        if self._scratch is None or self._scratch.camera.shape != frame.shape:
            self._scratch = _Scratch.for_shape(frame.shape[0], frame.shape[1])
        return self._scratch

    def _replace_background(self, camera: np.ndarray, alpha: np.ndarray, now: float, scratch: _Scratch) -> np.ndarray:
        background = self._background.frame((camera.shape[1], camera.shape[0]), now)
        alpha = feather(alpha, self._feather, scratch.feathered)
        np.copyto(scratch.blended, background)
        x, y, width, height = cv2.boundingRect(alpha)
        if width and height:
            box = (slice(y, y + height), slice(x, x + width))
            # blendLinear divides by the sum of the weights, so 0..255 weights need no scaling.
            weight, behind = scratch.weight[box], scratch.weight_behind[box]
            np.copyto(weight, alpha[box])
            cv2.subtract(255.0, weight, dst=behind)
            scratch.blended[box] = cv2.blendLinear(camera[box], background[box], weight, behind)
        return scratch.blended
