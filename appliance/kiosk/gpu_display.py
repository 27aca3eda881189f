"""The display on the GPU: SDL2's renderer (pygame._sdl2.video) draws every frame from textures.

Why SDL's renderer rather than OpenGL ES through moderngl: SDL2 is already on every kiosk
(pygame bundles it); its renderer runs OpenGL ES 2 on the boards' Mali GPUs under kmsdrm
(no X server) and OpenGL on a desktop, and its textures give everything the chain needs:
one upload a frame, cropped, mirrored, scaled and rotated copies, and the standard alpha
blend.  The chain needs no shader maths of its own (the matte's feather is a box blur at
the camera's size, kept on the CPU), while moderngl would add a second GL binding, our own
shaders and an EGL context to manage on kmsdrm, for the same picture.

Invariants:

- Every frame draws the whole screen: a painter (or ``show``) first, then the
  experience's drawing in call order.  ``snapshot`` reads the frame drawn so far, so the
  kiosk takes it before ``flip``.
- Textures for text and shapes are made once and cached (at most ``CACHE_TEXTURES`` of
  each kind, the least recently used dropped); an image loaded with ``load_image`` keeps
  its texture for as long as the image lives; a picture (a numpy thumbnail) is uploaded
  at each call into a texture kept per size.
- ``close`` releases every painter's textures, then the caches', then the renderer, then
  the window: SDL must destroy them in that order.
- A hardware renderer presents in step with the screen's refresh (vsync: no tearing of the
  falling snow); ``SDL_RENDER_DRIVER`` (opengles2, opengl) picks its driver as SDL's hint does.
- ``open_display`` puts the GPU path where SDL gives a hardware-accelerated renderer and
  the CPU display elsewhere: no accelerated renderer, or a GL driver that rasterises on
  the CPU (llvmpipe, softpipe), which would do numpy's per-pixel work more slowly.
  ``compositor = "gpu"`` forces the GPU path (SDL's software renderer when headless: the
  tests and bench's side-by-side figures).
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from appliance.config import COMPOSITORS
from appliance.content import SceneSpec
from appliance.errors import ApplianceError
from appliance.kiosk.display import (
    BACKDROP,
    Cache,
    Display,
    DisplayMode,
    ScenePainter,
    Screen,
    display_error,
    fit_window,
    panel_surface,
    ring_steps,
    ring_surface,
    spot_surface,
)
from appliance.media import DEFAULT_LIMITS, MediaLimits
from appliance.render.gpu import BLEND, OPAQUE, Streamed, TextureCompositor, read_screen

log = logging.getLogger(__name__)

CACHE_TEXTURES = 256
SDL_RENDERER_ACCELERATED = 0x2
GL_RENDERER = 0x1F01
#: GL renderers that rasterise on the CPU (Mesa's and Google's): "accelerated" to SDL, not to a board's budget.
CPU_RASTERISERS = ("llvmpipe", "softpipe", "swrast", "swiftshader", "software rasterizer")
_GL_LIBRARIES = {"opengl": ("libGL.so.1",), "opengles2": ("libGLESv2.so.2", "libGLESv2.so", "libmali.so.1")}


def open_display(mode: DisplayMode, size: tuple[int, int], compositor: str = "auto") -> Display | RendererDisplay:
    """The display for ``mode``: ``compositor`` "auto" is the GPU where SDL offers a hardware renderer (never
    headless), else the CPU; "gpu" and "cpu" force one (a GPU that cannot be had is then an ApplianceError)."""
    if compositor not in COMPOSITORS:
        raise ApplianceError(f"compositor {compositor!r} ([display] compositor, bench --compositor): use one of "
                             f"{', '.join(COMPOSITORS)}")
    if compositor == "cpu" or (compositor == "auto" and mode is DisplayMode.HEADLESS):
        return Display(mode, size)
    try:
        display = RendererDisplay(mode, size, software=mode is DisplayMode.HEADLESS)
    except ApplianceError as exc:
        if compositor == "gpu":
            raise
        log.warning("no GPU compositor (%s): compositing on the CPU", exc)
        return Display(mode, size)
    if compositor == "auto" and display.rasterises_on_cpu:
        log.info("SDL's renderer %s rasterises on the CPU: compositing with numpy instead", display.renderer_name)
        display.close()
        return Display(mode, size)
    log.info("GPU compositor on %s", display.renderer_name)
    return display


class RendererDisplay(Screen):
    """Presents frames drawn by SDL's renderer (see the module's invariants); the same drawing methods as
    ``Display``."""

    compositor = "gpu"

    def __init__(self, mode: DisplayMode, size: tuple[int, int], software: bool = False) -> None:
        super().__init__(mode)
        os.environ.setdefault("SDL_RENDER_SCALE_QUALITY", "linear")   # SDL reads it as each texture is made
        from pygame._sdl2.video import Renderer, Texture, Window, get_drivers
        from pygame._sdl2.video import error as sdl_error

        pygame, self._texture_type = self._pygame, Texture
        try:
            if mode is DisplayMode.FULLSCREEN:
                self._window = Window("OIVIS Edge", pygame.display.get_desktop_sizes()[0], fullscreen_desktop=True)
                pygame.mouse.set_visible(False)
            elif mode is DisplayMode.WINDOWED:
                self._window = Window("OIVIS Edge", fit_window(size, pygame.display.get_desktop_sizes()[0]))
            else:
                self._window = Window("OIVIS Edge", size)
        except (pygame.error, sdl_error) as exc:
            raise display_error(exc) from exc
        self._renderer, self.renderer_name = None, "software"
        if software:
            self._renderer = Renderer(self._window, accelerated=0)
        else:
            hinted = os.environ.get("SDL_RENDER_DRIVER", "").lower()
            drivers = sorted(enumerate(get_drivers()), key=lambda found: found[1].name.lower() != hinted)
            for index, driver in drivers:
                if driver.flags & SDL_RENDERER_ACCELERATED:
                    try:
                        self._renderer = Renderer(self._window, index=index, accelerated=1, vsync=True)
                    except sdl_error:
                        continue
                    gl_name = _gl_renderer(driver.name)
                    if gl_name is None:
                        log.warning("SDL's %s renderer does not say which GL driver runs it; taking it for a GPU",
                                    driver.name)
                    self.renderer_name = f"{driver.name} ({gl_name or 'GL renderer unknown'})"
                    break
        if self._renderer is None:
            self._window.destroy()
            raise ApplianceError("SDL offers no hardware-accelerated renderer here")
        self.rasterises_on_cpu = software or any(name in self.renderer_name.lower() for name in CPU_RASTERISERS)
        self.size: tuple[int, int] = tuple(self._renderer.get_viewport().size)
        self._screen = Streamed(self._renderer)
        self._pictures, self._texts, self._shapes = Cache(CACHE_TEXTURES), Cache(CACHE_TEXTURES), Cache(CACHE_TEXTURES)
        self._images: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self._painters: weakref.WeakSet[TextureCompositor] = weakref.WeakSet()
        log.info("display %s %dx%d (SDL driver %s), SDL renderer %s", mode.value, *self.size,
                 pygame.display.get_driver(), self.renderer_name)

    def painter(self, scene: SceneSpec, bundle_dir: Path, limits: MediaLimits = DEFAULT_LIMITS) -> ScenePainter:
        """``scene`` drawn from textures (an ApplianceError naming a medium that cannot be used)."""
        painter = TextureCompositor(scene, bundle_dir, self._renderer, self.size, limits)
        self._painters.add(painter)
        return painter

    def show(self, image: np.ndarray) -> None:
        """Draw a BGR uint8 array of exactly the display's size over the whole screen (no flip yet)."""
        height, width = self._screen_sized(image)
        texture = self._screen.show(None, image)
        texture.blend_mode = OPAQUE
        texture.draw(dstrect=(0, 0, width, height))

    def picture(self, image: np.ndarray, position: tuple[int, int], anchor: str = "center") -> None:
        """Draw a BGR uint8 array of any size (a thumbnail) at ``position``."""
        height, width = image.shape[:2]
        streamed = self._pictures.get((width, height), lambda: Streamed(self._renderer))
        rect = self._pygame.Rect(0, 0, width, height)
        setattr(rect, anchor, position)
        streamed.show(None, image).draw(dstrect=rect)

    def _shade(self, rect: Any) -> None:
        self._renderer.draw_blend_mode = BLEND
        self._renderer.draw_color = BACKDROP
        self._renderer.fill_rect(rect)

    def _line(self, line: str, size: int, colour: tuple[int, int, int], rect: Any) -> None:
        self._texts.get((line, size, colour), lambda: self._texture(self._type.surface(line, size, colour))).draw(
            dstrect=rect)

    def blit(self, image, position: tuple[int, int], anchor: str = "center", angle: float = 0.0,
             scale: float = 1.0) -> None:
        """Draw a loaded image, optionally turned (degrees, counter-clockwise) and scaled about its anchor, where
        ``Display.blit`` puts it (its turned box's ``anchor`` at ``position``)."""
        texture = self._images.get(image)
        if texture is None:
            texture = self._images[image] = self._texture(image)
        width, height = image.get_width() * scale, image.get_height() * scale
        turn = math.radians(angle)
        box = self._pygame.Rect(0, 0, round(abs(width * math.cos(turn)) + abs(height * math.sin(turn))),
                                round(abs(width * math.sin(turn)) + abs(height * math.cos(turn))))
        setattr(box, anchor, position)
        rect = self._pygame.Rect(0, 0, round(width), round(height))
        rect.center = box.center
        texture.draw(dstrect=rect, angle=-angle)

    def panel(self, rect: tuple[int, int, int, int], colour: tuple[int, int, int], opacity: float = 0.6,
              radius: int = 24, border: tuple[int, int, int] | None = None) -> None:
        """A translucent rounded card, (x, y, w, h), optionally outlined."""
        x, y, width, height = rect
        key = ("panel", width, height, tuple(colour), opacity, radius, border and tuple(border))
        self._shapes.get(key, lambda: self._texture(panel_surface(self._pygame, (width, height), colour, opacity,
                                                                  radius, border))).draw(dstrect=(x, y, width, height))

    def circle(self, centre: tuple[int, int], radius: int, colour: tuple[int, int, int], width: int = 0,
               opacity: float = 1.0) -> None:
        key = ("circle", radius, tuple(colour), width, min(1.0, opacity))
        self._centred(centre, radius, self._shapes.get(
            key, lambda: self._texture(spot_surface(self._pygame, radius, colour, width, min(1.0, opacity)))))

    def ring(self, centre: tuple[int, int], radius: int, fraction: float, colour: tuple[int, int, int],
             width: int) -> None:
        """A progress ring filling clockwise from twelve o'clock (``fraction`` 0..1)."""
        if fraction <= 0:
            return
        steps = ring_steps(fraction)
        key = ("ring", radius, steps, tuple(colour), width)
        self._centred(centre, radius, self._shapes.get(
            key, lambda: self._texture(ring_surface(self._pygame, radius, max(steps, 1) / 72, colour, width))))

    def snapshot(self) -> np.ndarray:
        """What the frame drawn so far shows (text and cursor included), as a BGR uint8 array."""
        return read_screen(self._renderer)

    def flip(self) -> None:
        self._renderer.present()

    def close(self) -> None:
        for painter in list(self._painters):
            painter.release()
        for cache in (self._pictures, self._texts, self._shapes):
            cache.clear()
        self._images.clear()
        self._screen = self._renderer = None
        self._window.destroy()
        self._pygame.display.quit()

    def _texture(self, surface: Any) -> Any:
        texture = self._texture_type.from_surface(self._renderer, surface)
        texture.blend_mode = BLEND
        return texture

    def _centred(self, centre: tuple[int, int], radius: int, texture: Any) -> None:
        side = 2 * radius + 2
        texture.draw(dstrect=(centre[0] - side // 2, centre[1] - side // 2, side, side))


def _gl_renderer(driver: str) -> str | None:
    """The GL driver's own name for the renderer just made current on this thread (e.g. "Mali-G610",
    "llvmpipe (LLVM 15.0.6, 256 bits)"); None when its library cannot be asked."""
    for library in _GL_LIBRARIES.get(driver, ()):
        try:
            get_string = ctypes.CDLL(library).glGetString
        except OSError:
            continue
        get_string.restype, get_string.argtypes = ctypes.c_char_p, [ctypes.c_uint]
        name = get_string(GL_RENDERER)
        return name.decode(errors="replace") if name else None
    return None
