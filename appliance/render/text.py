"""Lines of text for the kiosk screen, set through pygame.freetype with kerning off.

pygame.font (SDL_ttf) always applies the kern table of pygame's bundled FreeSans Bold, and that table holds pairs
that push letters apart (x–p, w–i, n–a: "ex perience", "w in", pygame/pygame#4094); pygame 2.6's font module has no
switch for it. pygame.freetype sets the same glyphs by their advances alone.

Invariants:
- One typeface, pygame's bundled ``freesansbold.ttf``: it is wherever pygame is, so a line measures the same on
  every kiosk and in the tests.
- ``size`` means what it meant to ``pygame.font.Font(None, size)``: the bundled font is set at 0.6875 × size
  points, so screens laid out for the old renderer keep their proportions.
- A line's box is its pen advance (widened to its ink when a glyph overhangs) by the font's ascender-to-descender
  height; the baseline sits at the same height in every box of a size, so lines anchored alike line up.
- Measurements are cached per (line, size) and set lines per (line, size, colour), at most ``CACHE_LINES`` of
  each (the cache empties when full); a cached surface is never drawn on by callers.
"""

from __future__ import annotations

DEFAULT_FONT_SCALE = 0.6875  # pygame.font's factor for its default font (src_c/font.c)
CACHE_LINES = 512


class Typeface:
    """Measures and sets single lines; needs no display."""

    def __init__(self) -> None:
        import pygame
        import pygame.freetype  # here, so importing this module does not import pygame

        self._pygame = pygame
        pygame.freetype.init()
        self._font = pygame.freetype.Font(None)
        self._font.kerning = False
        self._font.origin = True  # render_to's position is the pen's start on the baseline
        self._boxes: dict[tuple[str, int], tuple[int, int, int]] = {}
        self._surfaces: dict[tuple[str, int, tuple[int, int, int]], object] = {}

    @staticmethod
    def points(size: int) -> float:
        return max(1.0, size * DEFAULT_FONT_SCALE)

    def _box(self, line: str, size: int) -> tuple[int, int, int]:
        """(width, height, ascender) of ``line``'s box at ``size``."""
        key = (line, size)
        box = self._boxes.get(key)
        if box is None:
            points = self.points(size)
            ascender = self._font.get_sized_ascender(points)
            height = ascender - self._font.get_sized_descender(points)
            advance = sum(metric[4] for metric in self._font.get_metrics(line, size=points) if metric)
            ink = self._font.get_rect(line, size=points) if line else None
            width = max(round(advance), ink.right if ink else 0)
            if len(self._boxes) >= CACHE_LINES:
                self._boxes.clear()
            box = self._boxes[key] = (width, height, ascender)
        return box

    def size(self, line: str, size: int) -> tuple[int, int]:
        width, height, _ = self._box(line, size)
        return width, height

    def surface(self, line: str, size: int, colour: tuple[int, int, int]):
        """``line`` set in a transparent surface of its box; cached, so a line shown every frame is set once."""
        key = (line, size, colour)
        rendered = self._surfaces.get(key)
        if rendered is None:
            width, height, ascender = self._box(line, size)
            rendered = self._pygame.Surface((max(1, width), height), self._pygame.SRCALPHA)
            if line:
                self._font.render_to(rendered, (0, ascender), line, fgcolor=colour, size=self.points(size))
            if len(self._surfaces) >= CACHE_LINES:
                self._surfaces.clear()
            self._surfaces[key] = rendered
        return rendered
