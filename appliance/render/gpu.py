"""The per-scene compositing chain on the GPU, through SDL2's renderer (pygame._sdl2.video).

The same picture as the numpy compositor (appliance.render.compositor), drawn as textures:
the background, the person with its feathered matte as alpha, each flake of snow, then the
overlays in campaign order, every one scaled and placed by the GPU with SDL's standard
alpha blend.

Invariants:

- One upload per camera frame: the frame with its feathered matte as alpha (BGRA at the
  camera's size); mirroring, cropping and scaling to the screen happen on the GPU.  The
  background is uploaded once per change (a still once, a video once per new frame), at its
  decoded size when that is no larger than the screen (the GPU fits it), else fitted to the
  screen on the CPU first, so no texture is larger than the screen.  Snow sprites and
  overlays are uploaded once.
- Overlays and snow are prepared exactly as the numpy compositor prepares them (the same
  Overlay and Snow objects' images and positions), so the two paths differ only by where
  the scaling and the rounding of the blend happen (within a few levels: see
  tests/test_gpu_compositor.py).
- ``paint``/``paint_world`` only issue draws: the caller presents the renderer.  What they
  return is the ``picture`` asked for (Stage.show's picture of the screen): ``SCREEN``, the
  screen read back from the GPU (an experience written before API 1.5 gets the screen itself);
  ``PREVIEW``, a quarter-size copy composited on the CPU (the menu's live card); ``NO_PICTURE``,
  None: the frame then costs the CPU only the matte, the upload and the draw calls.
- A missing, corrupt or oversized medium, or one the GPU cannot hold, fails when the scene is
  built (ApplianceError naming the file), never in the middle of a frame, as in the numpy
  compositor; a texture the GPU refuses later (its memory full) is an ApplianceError too.
- ``release`` drops every texture before the display closes the renderer and its window.
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
from appliance.render.compositor import Compositor, check_inputs, checked_screen, feather
from appliance.render.fit import cover_box, cover_fit, shown_point
from appliance.render.overlay import Overlay
from appliance.render.snow import Snow

BLEND = 1   # SDL_BLENDMODE_BLEND: dst = src * a + dst * (1 - a)
OPAQUE = 0  # SDL_BLENDMODE_NONE
#: What ``paint`` returns (see the module's invariants); the CPU path returns its screen for any of them.
SCREEN, PREVIEW, NO_PICTURE = "screen", "preview", "none"


def preview_size(screen: tuple[int, int]) -> tuple[int, int]:
    """The size of the screen's quarter-size copy: the screen's aspect kept."""
    return max(1, screen[0] // 4), max(1, screen[1] // 4)


def texture_of(renderer: Any, image: np.ndarray, streaming: bool = False) -> Any:
    """A texture holding a BGRA uint8 image (or BGR: made opaque), blended with its alpha; an ApplianceError
    when the GPU refuses it."""
    from pygame._sdl2.video import Texture

    bgra = _bgra(image)
    try:
        texture = Texture(renderer, (bgra.shape[1], bgra.shape[0]), streaming=streaming)
    except Exception as exc:  # pygame._sdl2's error, or pygame.error: SDL refused the texture
        raise ApplianceError(f"the GPU cannot hold a {bgra.shape[1]}x{bgra.shape[0]} texture: {exc}") from exc
    upload(texture, bgra)
    texture.blend_mode = BLEND
    return texture


def upload(texture: Any, bgra: np.ndarray) -> None:
    """Copy a C-contiguous BGRA uint8 image of the texture's size into it (its ARGB8888 is BGRA in memory)."""
    import pygame

    try:
        texture.update(pygame.image.frombuffer(bgra.data, (bgra.shape[1], bgra.shape[0]), "BGRA"))
    except Exception as exc:  # pygame._sdl2's error, or pygame.error: SDL could not upload
        raise ApplianceError(f"the GPU refused a {bgra.shape[1]}x{bgra.shape[0]} upload: {exc}") from exc


def surface_bgr(surface: Any) -> np.ndarray:
    """A pygame surface's pixels as a new BGR uint8 array."""
    import pygame

    rgb = pygame.surfarray.array3d(surface).swapaxes(0, 1)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def read_screen(renderer: Any) -> np.ndarray:
    """What the renderer's target holds now, as a BGR uint8 array (a read back from the GPU: slow)."""
    return surface_bgr(renderer.to_surface())


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
        bundle_dir = Path(bundle_dir)
        self.scene = scene
        self.screen_size = checked_screen(screen_size)
        self._renderer = renderer
        self._background = open_background(bundle_dir / scene.background, limits)
        self._background_texture = Streamed(renderer)
        self._camera = Streamed(renderer)
        self._bgra: np.ndarray | None = None       # the camera's upload, reused (as the numpy chain's scratch)
        self._feathered: np.ndarray | None = None
        self._feather = 2 * scene.feather_px + 1
        self._snow = Snow(scene.snow, self.screen_size) if scene.snow else None
        self._sprites = [(texture_of(renderer, sprite), sprite.shape[0])
                         for sprite in self._snow.sprites()] if self._snow else []
        self._overlays = []
        for spec in scene.overlays:
            overlay = Overlay(spec, bundle_dir / spec.image, self.screen_size, limits)
            if overlay.visible.size:
                try:
                    texture = texture_of(renderer, overlay.visible)
                except ApplianceError as exc:
                    raise ApplianceError(f"{bundle_dir / spec.image}: {exc}") from exc
                self._overlays.append((texture, (*overlay.origin, *overlay.visible.shape[1::-1])))
        try:   # uploaded now (playback not started): a background the GPU cannot hold fails here
            poster = self._background.poster()
            if self._outgrows(poster):
                poster = np.ascontiguousarray(cover_fit(poster, self.screen_size, cv2.INTER_AREA))
            self._background_texture.show(None, poster)
        except ApplianceError as exc:
            raise ApplianceError(f"{bundle_dir / scene.background}: {exc}") from exc
        self._preview = Compositor(scene, bundle_dir, preview_size(self.screen_size), limits,
                                   background=self._background)

    def release(self) -> None:
        """Drop every texture and the renderer (the display closes them next); the painter is unusable after."""
        self._background_texture = self._camera = self._renderer = None
        self._sprites, self._overlays = [], []

    def paint(self, frame: np.ndarray, alpha: np.ndarray | None, now: float,
              picture: str = SCREEN) -> np.ndarray | None:
        """Draw the screen for camera ``frame`` and person ``alpha`` (None: the raw frame), as
        ``Compositor.compose`` would; returns the ``picture`` asked for (see the module's invariants)."""
        check_inputs(frame, alpha)
        height, width = frame.shape[:2]
        if alpha is not None:
            self._draw_background(now)
        if self._bgra is None or self._bgra.shape[:2] != (height, width):
            self._bgra = np.empty((height, width, 4), np.uint8)
            self._feathered = np.empty((height, width), np.uint8)
        cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA, dst=self._bgra)
        if alpha is not None:
            self._bgra[..., 3] = feather(alpha, self._feather, self._feathered)
        camera = self._camera.show(None, self._bgra)
        camera.blend_mode = OPAQUE if alpha is None else BLEND
        camera.draw(srcrect=cover_box((width, height), self.screen_size), dstrect=(0, 0, *self.screen_size),
                    flip_x=self.scene.mirror)
        self._draw_layers(now)
        if picture == PREVIEW:
            return self._preview.compose(*self._small(frame, alpha), now)
        return read_screen(self._renderer) if picture == SCREEN else None

    def paint_world(self, now: float, picture: str = SCREEN) -> np.ndarray | None:
        """Draw the world alone (nobody shown), as ``Compositor.compose_world``; returns the ``picture`` asked
        for."""
        self._draw_background(now)
        self._draw_layers(now)
        if picture == PREVIEW:
            return self._preview.compose_world(now)
        return read_screen(self._renderer) if picture == SCREEN else None

    def screen_point(self, point: tuple[float, float], frame_size: tuple[int, int]) -> tuple[float, float]:
        """Where a point of the camera frame (w, h) appears on the screen: mirrored like the image, then fitted."""
        return shown_point(point, frame_size, self.screen_size, self.scene.mirror)

    def _draw_background(self, now: float) -> None:
        texture, crop = self._background_drawn(now)
        texture.draw(srcrect=crop, dstrect=(0, 0, *self.screen_size))

    def _background_drawn(self, now: float) -> tuple[Any, tuple[int, int, int, int]]:
        """The background's texture at ``now`` (uploaded when it changed) and the part of it the screen shows."""
        version, image = self._background.current(now)
        if self._outgrows(image):   # fitted on the CPU once a version: no texture outgrows the screen
            image = self._background.frame(self.screen_size, now)
        texture = self._background_texture.show(version, image)
        texture.blend_mode = OPAQUE
        return texture, cover_box((image.shape[1], image.shape[0]), self.screen_size)

    def _outgrows(self, image: np.ndarray) -> bool:
        return image.shape[1] > self.screen_size[0] or image.shape[0] > self.screen_size[1]

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
        small_w, small_h = preview_size(self.screen_size)
        scale = min(1.0, max(small_w / width, small_h / height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        return small, None if alpha is None else cv2.resize(alpha, size, interpolation=cv2.INTER_LINEAR)
