"""The pygame display: fullscreen on the device, a window for development, SDL's dummy driver headless.

Two displays draw the same picture: ``Display`` (here) composites on the CPU with numpy and blits to
pygame's screen surface; ``RendererDisplay`` (appliance.kiosk.gpu_display) composites on the GPU through
SDL's renderer.  ``open_display`` there picks one.  Both offer the same drawing methods (the experiences'
canvas) and a ``painter`` per scene; shapes are made by the functions here for both.
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from appliance.content import SceneSpec
from appliance.errors import ApplianceError
from appliance.media import DEFAULT_LIMITS, MediaLimits, read_bgra
from appliance.render.compositor import Compositor
from appliance.render.gpu import SCREEN, surface_bgr
from appliance.render.text import Typeface

log = logging.getLogger(__name__)

BACKDROP_PAD = (16, 8)  # a text backdrop is the line's box grown by this much (w, h), centred on it
BACKDROP = (0, 0, 0, 150)
CACHE_SHADES = 64


class DisplayMode(Enum):
    FULLSCREEN = "fullscreen"
    WINDOWED = "windowed"
    HEADLESS = "headless"


def fit_window(size: tuple[int, int], desktop: tuple[int, int], share: float = 0.9) -> tuple[int, int]:
    """``size`` scaled down, aspect kept, to at most ``share`` of the desktop (a 1080p window on a laptop)."""
    scale = min(1.0, share * desktop[0] / size[0], share * desktop[1] / size[1])
    return round(size[0] * scale), round(size[1] * scale)


def screen_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (a ``--screen`` option's text) as (width, height)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ApplianceError(f"--screen {text!r}: use WIDTHxHEIGHT, e.g. 1920x1080") from None
    return width, height


class ScenePainter(Protocol):
    """One world drawn as each frame's background, on the display that made it."""

    def paint(self, frame: np.ndarray, alpha: np.ndarray | None, now: float,
              picture: str = SCREEN) -> np.ndarray | None:
        """Draw the world with the person (``alpha``; None: the raw frame); returns the screen as a BGR image:
        the CPU's own screen whatever ``picture`` says; where the GPU composites, what ``picture`` asks
        (appliance.render.gpu: SCREEN read back, a PREVIEW copy, or None for NO_PICTURE)."""

    def paint_world(self, now: float, picture: str = SCREEN) -> np.ndarray | None:
        """Draw the world alone (nobody shown); returns the screen as ``paint`` does."""

    def screen_point(self, point: tuple[float, float], frame_size: tuple[int, int]) -> tuple[float, float]:
        """Where a camera point (pixels of a (w, h) frame) shows on the screen."""


def panel_surface(pygame: Any, size: tuple[int, int], colour: tuple[int, int, int], opacity: float, radius: int,
                  border: tuple[int, int, int] | None) -> Any:
    """A translucent rounded card of ``size``, optionally outlined."""
    width, height = size
    card = pygame.Surface((width, height), pygame.SRCALPHA)
    pygame.draw.rect(card, (*colour, round(255 * opacity)), card.get_rect(), border_radius=radius)
    if border:
        pygame.draw.rect(card, border, card.get_rect(), width=max(2, height // 60), border_radius=radius)
    return card


def spot_surface(pygame: Any, radius: int, colour: tuple[int, int, int], width: int, opacity: float) -> Any:
    """A circle (``width`` 0: a disc) centred in a square surface of side 2 * radius + 2."""
    size = 2 * radius + 2
    spot = pygame.Surface((size, size), pygame.SRCALPHA)
    pygame.draw.circle(spot, (*colour, round(255 * opacity)), (size // 2, size // 2), radius, width)
    return spot


def ring_surface(pygame: Any, radius: int, fraction: float, colour: tuple[int, int, int], width: int) -> Any:
    """A progress ring filling clockwise from twelve o'clock (``fraction`` 0..1, above 0), centred in a square
    surface of side 2 * radius + 2."""
    # A filled band between two arcs: pygame's wide arcs leave moiré holes.
    size = 2 * radius + 2
    centre = size / 2
    steps = max(2, ring_steps(fraction))
    angles = [-math.pi / 2 + 2 * math.pi * min(1.0, fraction) * i / steps for i in range(steps + 1)]
    outer = [(centre + radius * math.cos(a), centre + radius * math.sin(a)) for a in angles]
    inner = [(centre + (radius - width) * math.cos(a), centre + (radius - width) * math.sin(a))
             for a in reversed(angles)]
    ring = pygame.Surface((size, size), pygame.SRCALPHA)
    pygame.draw.polygon(ring, colour, outer + inner)
    return ring


def ring_steps(fraction: float) -> int:
    """How many of the ring's 72 segments ``fraction`` fills: rings that fill the same segments look the same."""
    return round(72 * min(1.0, fraction))


class Cache:
    """Values by key, each made on first use, at most ``limit`` of them (the least recently used dropped)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._values: OrderedDict[Any, Any] = OrderedDict()

    def get(self, key: Any, make: Callable[[], Any]) -> Any:
        value = self._values.get(key)
        if value is None:
            value = self._values[key] = make()
            if len(self._values) > self._limit:
                self._values.popitem(last=False)
        else:
            self._values.move_to_end(key)
        return value

    def clear(self) -> None:
        self._values.clear()


class Screen:
    """What both displays share: SDL's video, the typeface, images as surfaces and the window's events."""

    size: tuple[int, int]

    def __init__(self, mode: DisplayMode) -> None:
        if mode is DisplayMode.HEADLESS:
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame  # imported here so the SDL driver choice above takes effect

        self._pygame = pygame
        self._type = Typeface()
        try:
            pygame.display.init()
        except pygame.error as exc:
            raise display_error(exc) from exc

    def text_size(self, line: str, size: int, backdrop: bool = False) -> tuple[int, int]:
        """The (w, h) box ``text`` draws for ``line`` at ``size``, its backdrop included when asked."""
        width, height = self._type.size(line, size)
        return (width + BACKDROP_PAD[0], height + BACKDROP_PAD[1]) if backdrop else (width, height)

    def text(self, line: str, position: tuple[int, int], size: int = 36,
             colour: tuple[int, int, int] = (255, 255, 255), anchor: str = "topleft",
             backdrop: bool = False) -> tuple[int, int, int, int]:
        """Draw one line with its box's ``anchor`` (a pygame.Rect attribute) at ``position``; the (x, y, w, h)
        drawn, backdrop included, in screen pixels."""
        rect = self._pygame.Rect((0, 0), self._type.size(line, size))
        setattr(rect, anchor, position)
        drawn = rect.inflate(*BACKDROP_PAD) if backdrop else rect
        if backdrop:
            self._shade(drawn)
        self._line(line, size, tuple(colour), rect)
        return drawn.x, drawn.y, drawn.width, drawn.height

    def _shade(self, rect: Any) -> None:
        """Darken ``rect`` as a text backdrop (BACKDROP)."""
        raise NotImplementedError

    def _line(self, line: str, size: int, colour: tuple[int, int, int], rect: Any) -> None:
        """Draw ``line`` set at ``size`` in ``colour`` into ``rect`` (its box)."""
        raise NotImplementedError

    def load_image(self, path: Path, height: int, limits: MediaLimits = DEFAULT_LIMITS):
        """A PNG or JPEG as a pygame surface with alpha, scaled to ``height`` pixels; decoded once (through
        appliance.media, within ``limits``), blitted often."""
        image = read_bgra(path, limits)
        surface = self._own(self._pygame.image.frombuffer(image.data, (image.shape[1], image.shape[0]), "BGRA"))
        width = max(1, round(surface.get_width() * height / surface.get_height()))
        return self._pygame.transform.smoothscale(surface, (width, height))

    def _own(self, surface: Any) -> Any:
        """A surface of the display's own, for one that wraps a buffer it does not own."""
        return surface.copy()

    def events(self) -> list:
        return self._pygame.event.get()

    def _screen_sized(self, image: np.ndarray) -> tuple[int, int]:
        """``image``'s (height, width), once it is exactly the display's size (what ``show`` takes)."""
        height, width = image.shape[:2]
        if (width, height) != self.size:
            raise ApplianceError(f"frame {width}x{height} does not match the display {self.size[0]}x{self.size[1]}")
        return height, width


def display_error(exc: Exception) -> ApplianceError:
    hint = " (no display: use --headless, or set SDL_VIDEODRIVER=kmsdrm on a board)" \
        if "video" in str(exc).lower() or "display" in str(exc).lower() else ""
    return ApplianceError(f"cannot open the display: {exc}{hint}")


class Display(Screen):
    """Presents BGR frames composited on the CPU; text is drawn on top through ``text`` before ``flip``."""

    compositor = "cpu"
    renderer_name = "numpy"

    def __init__(self, mode: DisplayMode, size: tuple[int, int]) -> None:
        super().__init__(mode)
        pygame = self._pygame
        try:
            if mode is DisplayMode.FULLSCREEN:
                self.surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
                pygame.mouse.set_visible(False)
            elif mode is DisplayMode.WINDOWED:
                self.surface = pygame.display.set_mode(fit_window(size, pygame.display.get_desktop_sizes()[0]))
            else:
                self.surface = pygame.display.set_mode(size)
        except pygame.error as exc:
            raise display_error(exc) from exc
        pygame.display.set_caption("OIVIS Edge")
        self.size: tuple[int, int] = self.surface.get_size()
        #: The screen's pixels are B, G, R, X bytes (XRGB8888): a BGR frame converts straight into them.
        self._bgrx = self.surface.get_bitsize() == 32 and self.surface.get_masks()[:3] == (0xFF0000, 0xFF00, 0xFF)
        self._shades = Cache(CACHE_SHADES)
        log.info("display %s %dx%d (SDL driver %s), CPU compositor", mode.value, *self.size,
                 pygame.display.get_driver())

    def painter(self, scene: SceneSpec, bundle_dir: Path, limits: MediaLimits = DEFAULT_LIMITS) -> ScenePainter:
        """``scene`` drawn by the numpy compositor (an ApplianceError naming a medium that cannot be used)."""
        return SurfacePainter(self, Compositor(scene, bundle_dir, self.size, limits))

    def show(self, image: np.ndarray) -> None:
        """Blit a BGR uint8 array of exactly the display's size (no flip yet)."""
        height, width = self._screen_sized(image)
        if self._bgrx:   # straight into the screen's own pixels: a quarter of what blit's conversion costs
            pixels = np.frombuffer(self.surface.get_buffer(), np.uint8).reshape(height, -1, 4)[:, :width]
            cv2.cvtColor(image, cv2.COLOR_BGR2BGRA, dst=pixels)
        else:
            self.surface.blit(self._from_bgr(image), (0, 0))

    def picture(self, image: np.ndarray, position: tuple[int, int], anchor: str = "center") -> None:
        """Blit a BGR uint8 array of any size (a thumbnail) at ``position``."""
        surface = self._from_bgr(image)
        self.surface.blit(surface, surface.get_rect(**{anchor: position}))

    def _from_bgr(self, image: np.ndarray):
        height, width = image.shape[:2]
        return self._pygame.image.frombuffer(np.ascontiguousarray(image).data, (width, height), "BGR")

    def _shade(self, rect: Any) -> None:
        """A backdrop surface made once per size (at most CACHE_SHADES kept)."""
        self.surface.blit(self._shades.get(rect.size, lambda: self._backdrop(rect.size)), rect.topleft)

    def _backdrop(self, size: tuple[int, int]) -> Any:
        shade = self._pygame.Surface(size, self._pygame.SRCALPHA)
        shade.fill(BACKDROP)
        return shade

    def _line(self, line: str, size: int, colour: tuple[int, int, int], rect: Any) -> None:
        self.surface.blit(self._type.surface(line, size, colour), rect)

    def _own(self, surface: Any) -> Any:
        return surface.convert_alpha()

    def blit(self, image, position: tuple[int, int], anchor: str = "center", angle: float = 0.0,
             scale: float = 1.0) -> None:
        """Draw a loaded image, optionally turned (degrees, counter-clockwise) and scaled about its anchor."""
        if angle or scale != 1.0:
            image = self._pygame.transform.rotozoom(image, angle, scale)
        self.surface.blit(image, image.get_rect(**{anchor: position}))

    def panel(self, rect: tuple[int, int, int, int], colour: tuple[int, int, int], opacity: float = 0.6,
              radius: int = 24, border: tuple[int, int, int] | None = None) -> None:
        """A translucent rounded card, (x, y, w, h), optionally outlined."""
        x, y, width, height = rect
        self.surface.blit(panel_surface(self._pygame, (width, height), colour, opacity, radius, border), (x, y))

    def circle(self, centre: tuple[int, int], radius: int, colour: tuple[int, int, int], width: int = 0,
               opacity: float = 1.0) -> None:
        if opacity >= 1.0:
            self._pygame.draw.circle(self.surface, colour, centre, radius, width)
            return
        spot = spot_surface(self._pygame, radius, colour, width, opacity)
        self.surface.blit(spot, (centre[0] - spot.get_width() // 2, centre[1] - spot.get_height() // 2))

    def ring(self, centre: tuple[int, int], radius: int, fraction: float, colour: tuple[int, int, int],
             width: int) -> None:
        """A progress ring filling clockwise from twelve o'clock (``fraction`` 0..1)."""
        if fraction <= 0:
            return
        ring = ring_surface(self._pygame, radius, fraction, colour, width)
        self.surface.blit(ring, (centre[0] - ring.get_width() // 2, centre[1] - ring.get_height() // 2))

    def snapshot(self) -> np.ndarray:
        """What the screen shows now (text and cursor included), as a BGR uint8 array."""
        return surface_bgr(self.surface)

    def flip(self) -> None:
        self._pygame.display.flip()

    def close(self) -> None:
        self._pygame.display.quit()


class SurfacePainter:
    """A scene composited by numpy (appliance.render.compositor) and blitted to the screen surface."""

    def __init__(self, display: Display, compositor: Compositor) -> None:
        self._display, self._compositor = display, compositor

    def paint(self, frame: np.ndarray, alpha: np.ndarray | None, now: float, picture: str = SCREEN) -> np.ndarray:
        image = self._compositor.compose(frame, alpha, now)
        self._display.show(image)
        return image

    def paint_world(self, now: float, picture: str = SCREEN) -> np.ndarray:
        image = self._compositor.compose_world(now)
        self._display.show(image)
        return image

    def screen_point(self, point: tuple[float, float], frame_size: tuple[int, int]) -> tuple[float, float]:
        return self._compositor.screen_point(point, frame_size)
