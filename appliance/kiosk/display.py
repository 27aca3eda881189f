"""The pygame display: fullscreen on the device, a window for development, SDL's dummy driver headless."""

from __future__ import annotations

import logging
import os
from enum import Enum

import numpy as np

from appliance.errors import ApplianceError

log = logging.getLogger(__name__)


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
            pygame.font.init()
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
        self._fonts: dict[int, pygame.font.Font] = {}
        log.info("display %s %dx%d (SDL driver %s)", mode.value, *self.size, pygame.display.get_driver())

    def show(self, image: np.ndarray) -> None:
        """Blit a BGR uint8 array of exactly the display's size (no flip yet)."""
        height, width = image.shape[:2]
        if (width, height) != self.size:
            raise ApplianceError(f"frame {width}x{height} does not match the display {self.size[0]}x{self.size[1]}")
        frame = self._pygame.image.frombuffer(np.ascontiguousarray(image).data, (width, height), "BGR")
        self.surface.blit(frame, (0, 0))

    def text(self, line: str, position: tuple[int, int], size: int = 36,
             colour: tuple[int, int, int] = (255, 255, 255), anchor: str = "topleft",
             backdrop: bool = False) -> None:
        font = self._fonts.get(size)
        if font is None:
            font = self._fonts[size] = self._pygame.font.Font(None, size)
        rendered = font.render(line, True, colour)
        rect = rendered.get_rect(**{anchor: position})
        if backdrop:
            shade = self._pygame.Surface(rect.inflate(16, 8).size, self._pygame.SRCALPHA)
            shade.fill((0, 0, 0, 150))
            self.surface.blit(shade, rect.inflate(16, 8).topleft)
        self.surface.blit(rendered, rect)

    def flip(self) -> None:
        self._pygame.display.flip()

    def events(self) -> list:
        return self._pygame.event.get()

    def close(self) -> None:
        self._pygame.display.quit()
