"""The per-scene compositing chain on the GPU, through SDL2's renderer (pygame._sdl2.video).

The same picture as the numpy compositor (appliance.render.compositor), drawn as textures:
the background, the person with its feathered matte as alpha, each flake of snow, then the
overlays in campaign order, every one scaled and placed by the GPU with SDL's standard
alpha blend.

Invariants:

- One upload per camera frame: the frame with its feathered matte as alpha (BGRA at the
  camera's size); mirroring, cropping and scaling to the screen happen on the GPU.  The
  background is uploaded once per change (a still once, a video once per new frame) at
  its decoded size.  Snow sprites and overlays are uploaded once, when the scene is built.
- Overlays and snow are prepared exactly as the numpy compositor prepares them (the same
  Overlay and Snow objects' images and positions), so the two paths differ only by where
  the scaling and the rounding of the blend happen (within a few levels: see
  tests/test_gpu_compositor.py).
- ``paint``/``paint_world`` only issue draws: the caller presents the renderer.  Asked for a
  ``picture``, each returns a ``PREVIEW_SIZE`` copy of the screen composited on the CPU
  (Stage.show's picture of the screen: a menu's live card) instead of reading the GPU back; else
  None, and the frame costs the CPU only the matte, the upload and the draw calls.
- A missing, corrupt or oversized medium fails when the scene is built (ApplianceError
  naming the file), never in the middle of a frame, as in the numpy compositor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.content import SceneSpec
from appliance.errors import ApplianceError
from appliance.media import DEFAULT_LIMITS, MediaLimits
from appliance.render.background import open_background
from appliance.render.compositor import Compositor, check_inputs, feather
from appliance.render.fit import cover_box, shown_point
from appliance.render.overlay import Overlay
from appliance.render.snow import Snow

#: The size of the screen's copy that ``paint`` returns (Stage.show's picture of the screen).
PREVIEW_SIZE = (480, 270)
BLEND = 1   # SDL_BLENDMODE_BLEND: dst = src * a + dst * (1 - a)
OPAQUE = 0  # SDL_BLENDMODE_NONE
#: Where the kiosk composites (``[display] compositor``): auto picks the GPU where SDL offers a hardware renderer.
COMPOSITORS = ("auto", "gpu", "cpu")


def texture_of(renderer: Any, image: np.ndarray, streaming: bool = False) -> Any:
    """A texture holding a BGRA uint8 image (or BGR: made opaque), blended with its alpha."""
    from pygame._sdl2.video import Texture

    bgra = _bgra(image)
    texture = Texture(renderer, (bgra.shape[1], bgra.shape[0]), streaming=streaming)
    upload(texture, bgra)
    texture.blend_mode = BLEND
    return texture


def upload(texture: Any, bgra: np.ndarray) -> None:
    """Copy a C-contiguous BGRA uint8 image of the texture's size into it (its ARGB8888 is BGRA in memory)."""
    import pygame

    texture.update(pygame.image.frombuffer(bgra.data, (bgra.shape[1], bgra.shape[0]), "BGRA"))


def _bgra(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image)
    return cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)


class Streamed:
    """A texture re-uploaded whenever its image changes, re-made when its size does."""

    def __init__(self, renderer: Any) -> None:
        self._renderer = renderer
        self.texture: Any = None
        self._key: object = None

    def show(self, key: object, image: np.ndarray) -> Any:
        if self.texture is None or (self.texture.width, self.texture.height) != (image.shape[1], image.shape[0]):
            self.texture, self._key = texture_of(self._renderer, image, streaming=True), key
        elif key != self._key or key is None:
            upload(self.texture, _bgra(image))
            self._key = key
        return self.texture


class TextureCompositor:
    """One scene's chain on one renderer for one screen size; build a new one when either changes."""

    def __init__(self, scene: SceneSpec, bundle_dir: Path, renderer: Any, screen_size: tuple[int, int],
                 limits: MediaLimits = DEFAULT_LIMITS) -> None:
        width, height = screen_size
        if width <= 0 or height <= 0:
            raise ApplianceError(f"screen size must be positive, got {screen_size}")
        bundle_dir = Path(bundle_dir)
        self.scene = scene
        self.screen_size = (int(width), int(height))
        self._renderer = renderer
        self._background = open_background(bundle_dir / scene.background, limits)
        self._background_texture = Streamed(renderer)
        self._camera = Streamed(renderer)
        self._bgra: np.ndarray | None = None
        self._feather = 2 * scene.feather_px + 1
        self._snow = Snow(scene.snow, self.screen_size) if scene.snow else None
        self._sprites = [(texture_of(renderer, sprite), sprite.shape[0])
                         for sprite in self._snow.sprites()] if self._snow else []
        self._overlays = []
        for spec in scene.overlays:
            overlay = Overlay(spec, bundle_dir / spec.image, self.screen_size, limits)
            if overlay.visible.size:
                self._overlays.append((texture_of(renderer, overlay.visible),
                                       (*overlay.origin, overlay.visible.shape[1], overlay.visible.shape[0])))
        self._preview = Compositor(scene, bundle_dir, PREVIEW_SIZE, limits)

    def paint(self, frame: np.ndarray, alpha: np.ndarray | None, now: float, picture: bool = True) -> np.ndarray | None:
        """Draw the screen for camera ``frame`` and person ``alpha`` (None: the raw frame), as
        ``Compositor.compose`` would; returns the ``PREVIEW_SIZE`` copy when asked for a ``picture``."""
        check_inputs(frame, alpha)
        height, width = frame.shape[:2]
        if alpha is not None:
            self._draw_background(now)
        if self._bgra is None or self._bgra.shape[:2] != (height, width):
            self._bgra = np.empty((height, width, 4), np.uint8)
        cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA, dst=self._bgra)
        if alpha is not None:
            self._bgra[..., 3] = feather(alpha, self._feather)
        camera = self._camera.show(None, self._bgra)
        camera.blend_mode = OPAQUE if alpha is None else BLEND
        camera.draw(srcrect=cover_box((width, height), self.screen_size), dstrect=(0, 0, *self.screen_size),
                    flip_x=self.scene.mirror)
        self._draw_layers(now)
        return self._preview.compose(*self._small(frame, alpha), now) if picture else None

    def paint_world(self, now: float, picture: bool = True) -> np.ndarray | None:
        """Draw the world alone (nobody shown), as ``Compositor.compose_world``; returns the preview copy when
        asked for a ``picture``."""
        self._draw_background(now)
        self._draw_layers(now)
        return self._preview.compose_world(now) if picture else None

    def screen_point(self, point: tuple[float, float], frame_size: tuple[int, int]) -> tuple[float, float]:
        """Where a point of the camera frame (w, h) appears on the screen: mirrored like the image, then fitted."""
        return shown_point(point, frame_size, self.screen_size, self.scene.mirror)

    def _draw_background(self, now: float) -> None:
        version, image = self._background.current(now)
        texture = self._background_texture.show(version, image)
        texture.blend_mode = OPAQUE
        texture.draw(srcrect=cover_box((image.shape[1], image.shape[0]), self.screen_size),
                     dstrect=(0, 0, *self.screen_size))

    def _draw_layers(self, now: float) -> None:
        if self._snow is not None:
            xs, ys = self._snow.flakes(now)
            for x, y, layer in zip(xs.tolist(), ys.tolist(), self._snow.layer.tolist(), strict=True):
                texture, side = self._sprites[layer]
                half = side // 2
                texture.draw(dstrect=(x - half, y - half, side, side))
        for texture, rect in self._overlays:
            texture.draw(dstrect=rect)

    def _small(self, frame: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The frame and matte at about the preview's scale, for its CPU composite."""
        height, width = frame.shape[:2]
        scale = min(1.0, max(PREVIEW_SIZE[0] / width, PREVIEW_SIZE[1] / height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        return small, None if alpha is None else cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
