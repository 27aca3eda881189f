"""The pygame display: fullscreen on the device, a window for development, SDL's dummy driver headless."""

from __future__ import annotations

import logging
import math
import os
from enum import Enum
from pathlib import Path

import numpy as np

from appliance.errors import ApplianceError
from appliance.media import DEFAULT_LIMITS, MediaLimits, read_bgra
from appliance.render.text import Typeface

log = logging.getLogger(__name__)

BACKDROP_PAD = (16, 8)  # a text backdrop is the line's box grown by this much (w, h), centred on it


class DisplayMode(Enum):
    FULLSCREEN = "fullscreen"
    WINDOWED = "windowed"
    HEADLESS = "headless"


def fit_window(size: tuple[int, int], desktop: tuple[int, int], share: float = 0.9) -> tuple[int, int]:
    """``size`` scaled down, aspect kept, to at most ``share`` of the desktop (a 1080p window on a laptop)."""
    scale = min(1.0, share * desktop[0] / size[0], share * desktop[1] / size[1])
    return round(size[0] * scale), round(size[1] * scale)


class Display:
    """Presents BGR frames; text is drawn on top through ``text`` before ``flip``."""

    def __init__(self, mode: DisplayMode, size: tuple[int, int]) -> None:
        if mode is DisplayMode.HEADLESS:
            os.environ["SDL_VIDEODRIVER"] = "dummy"
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame  # imported here so the SDL driver choice above takes effect

        self._pygame = pygame
        try:
            pygame.display.init()
            if mode is DisplayMode.FULLSCREEN:
                self.surface = pygame.display.set_mode((0, 0), pygame.FULLSCREEN)
                pygame.mouse.set_visible(False)
            elif mode is DisplayMode.WINDOWED:
                self.surface = pygame.display.set_mode(fit_window(size, pygame.display.get_desktop_sizes()[0]))
            else:
                self.surface = pygame.display.set_mode(size)
        except pygame.error as exc:
            hint = " (no display: use --headless, or set SDL_VIDEODRIVER=kmsdrm on a board)" \
                if "video" in str(exc).lower() or "display" in str(exc).lower() else ""
            raise ApplianceError(f"cannot open the display: {exc}{hint}") from exc
        pygame.display.set_caption("OIVIS Edge")
        self.size: tuple[int, int] = self.surface.get_size()
        self._type = Typeface()
        log.info("display %s %dx%d (SDL driver %s)", mode.value, *self.size, pygame.display.get_driver())

    def show(self, image: np.ndarray) -> None:
        """Blit a BGR uint8 array of exactly the display's size (no flip yet)."""
        height, width = image.shape[:2]
        if (width, height) != self.size:
            raise ApplianceError(f"frame {width}x{height} does not match the display {self.size[0]}x{self.size[1]}")
        self.surface.blit(self._from_bgr(image), (0, 0))

    def picture(self, image: np.ndarray, position: tuple[int, int], anchor: str = "center") -> None:
        """Blit a BGR uint8 array of any size (a thumbnail) at ``position``."""
        surface = self._from_bgr(image)
        self.surface.blit(surface, surface.get_rect(**{anchor: position}))

    def _from_bgr(self, image: np.ndarray):
        height, width = image.shape[:2]
        return self._pygame.image.frombuffer(np.ascontiguousarray(image).data, (width, height), "BGR")

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
            shade = self._pygame.Surface(drawn.size, self._pygame.SRCALPHA)
            shade.fill((0, 0, 0, 150))
            self.surface.blit(shade, drawn.topleft)
        self.surface.blit(self._type.surface(line, size, tuple(colour)), rect)
        return drawn.x, drawn.y, drawn.width, drawn.height

    def load_image(self, path: Path, height: int, limits: MediaLimits = DEFAULT_LIMITS):
        """A PNG or JPEG as a pygame surface with alpha, scaled to ``height`` pixels; decoded once (through
        appliance.media, within ``limits``), blitted often."""
        image = read_bgra(path, limits)
        surface = self._pygame.image.frombuffer(image.data, (image.shape[1], image.shape[0]), "BGRA").convert_alpha()
        width = max(1, round(surface.get_width() * height / surface.get_height()))
        return self._pygame.transform.smoothscale(surface, (width, height))

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
        card = self._pygame.Surface((width, height), self._pygame.SRCALPHA)
        self._pygame.draw.rect(card, (*colour, round(255 * opacity)), card.get_rect(), border_radius=radius)
        if border:
            self._pygame.draw.rect(card, border, card.get_rect(), width=max(2, height // 60), border_radius=radius)
        self.surface.blit(card, (x, y))

    def circle(self, centre: tuple[int, int], radius: int, colour: tuple[int, int, int], width: int = 0,
               opacity: float = 1.0) -> None:
        if opacity >= 1.0:
            self._pygame.draw.circle(self.surface, colour, centre, radius, width)
            return
        size = 2 * radius + 2
        spot = self._pygame.Surface((size, size), self._pygame.SRCALPHA)
        self._pygame.draw.circle(spot, (*colour, round(255 * opacity)), (size // 2, size // 2), radius, width)
        self.surface.blit(spot, (centre[0] - size // 2, centre[1] - size // 2))

    def ring(self, centre: tuple[int, int], radius: int, fraction: float, colour: tuple[int, int, int],
             width: int) -> None:
        """A progress ring filling clockwise from twelve o'clock (``fraction`` 0..1)."""
        if fraction <= 0:
            return
        # A filled band between two arcs: pygame's wide arcs leave moiré holes.
        steps = max(2, round(72 * min(1.0, fraction)))
        angles = [-math.pi / 2 + 2 * math.pi * min(1.0, fraction) * i / steps for i in range(steps + 1)]
        outer = [(centre[0] + radius * math.cos(a), centre[1] + radius * math.sin(a)) for a in angles]
        inner = [(centre[0] + (radius - width) * math.cos(a), centre[1] + (radius - width) * math.sin(a))
                 for a in reversed(angles)]
        self._pygame.draw.polygon(self.surface, colour, outer + inner)

    def snapshot(self) -> np.ndarray:
        """What the screen shows now (text and cursor included), as a BGR uint8 array."""
        rgb = self._pygame.surfarray.array3d(self.surface).swapaxes(0, 1)
        return np.ascontiguousarray(rgb[:, :, ::-1])

    def flip(self) -> None:
        self._pygame.display.flip()

    def events(self) -> list:
        return self._pygame.event.get()

    def close(self) -> None:
        self._pygame.display.quit()
