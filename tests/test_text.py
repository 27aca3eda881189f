"""Text on the kiosk screen: no gaps inside words, and the box ``Display.text`` reports is the one it drew."""

from __future__ import annotations

import numpy as np
import pygame
import pytest

from appliance.kiosk.display import BACKDROP_PAD, Display, DisplayMode

LINES = ["Choose your experience", "Swipe to choose", "You win", "Nova wins", "Show your hand",
         "Make a fist to continue"]
SIZES = [24, 36, 45, 60, 90, 120]
MAX_GAP_IN_WORD = 0.5  # half the narrowest gap between words of the same render: wider reads as a break


@pytest.fixture(scope="module")
def display() -> Display:
    shown = Display(DisplayMode.HEADLESS, (1920, 400))
    yield shown
    shown.close()


def gaps(ink: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) columns of the ink-free runs between a line's first and last inked column."""
    inked = np.flatnonzero(ink.any(axis=0))
    columns = ink.any(axis=0)[inked[0]:inked[-1] + 1]
    edges = np.flatnonzero(np.diff(columns.astype(np.int8)))
    return [(inked[0] + start + 1, inked[0] + end + 1) for start, end in zip(edges[::2], edges[1::2], strict=True)]


def worst_gap_in_words(ink: np.ndarray, spaces: list[int]) -> float:
    """The widest gap inside a word over the narrowest gap between words; ``spaces`` are columns inside the word
    gaps (the pen position at each space)."""
    found = gaps(ink)
    between = [gap for gap in found if any(gap[0] <= x <= gap[1] for x in spaces)]
    assert len(between) == len(spaces), f"expected {len(spaces)} word gaps at {spaces}, found {found}"
    inside = [end - start for start, end in found if (start, end) not in between]
    return max(inside, default=0) / min(end - start for start, end in between)


def ink_of(display: Display, line: str, size: int) -> tuple[np.ndarray, list[int]]:
    display.surface.fill((0, 0, 0))
    x, y, w, h = display.text(line, (10, 10), size=size)
    shot = display.snapshot()
    assert not shot[:, :x].any() and not shot[:, x + w:].any(), "ink outside the reported box"
    spaces = [x + display.text_size(line[:i], size)[0] + display.text_size(" ", size)[0] // 2
              for i, letter in enumerate(line) if letter == " "]
    return shot[y:y + h].max(axis=2) > 64, spaces


@pytest.mark.parametrize("size", SIZES)
def test_no_gap_inside_a_word_comes_near_a_space(display: Display, size: int) -> None:
    for line in LINES:
        ink, spaces = ink_of(display, line, size)
        assert worst_gap_in_words(ink, spaces) <= MAX_GAP_IN_WORD, (line, size)


def test_the_gauge_catches_the_gaps_of_pygame_font() -> None:
    """pygame.font with its default font (the renderer this replaced) shows "ex perience" in the menu title at
    1080p (size 90): the gauge must say so."""
    pygame.font.init()
    font = pygame.font.Font(None, 90)
    line = "Choose your experience"
    ink = pygame.surfarray.array_alpha(font.render(line, True, (255, 255, 255))).T > 64
    spaces = [font.size(line[:i])[0] + font.size(" ")[0] // 2 for i, letter in enumerate(line) if letter == " "]
    assert worst_gap_in_words(ink, spaces) > MAX_GAP_IN_WORD


def test_text_returns_the_box_it_drew_at_its_anchor(display: Display) -> None:
    display.surface.fill((0, 0, 0))
    box = display.text("Beat Nova!", (960, 200), size=90, anchor="center")
    x, y, w, h = box
    assert (w, h) == display.text_size("Beat Nova!", 90)
    assert abs(x + w / 2 - 960) <= 1 and abs(y + h / 2 - 200) <= 1
    shot = display.snapshot().max(axis=2)
    rows, columns = np.nonzero(shot)
    assert x <= columns.min() and columns.max() < x + w and y <= rows.min() and rows.max() < y + h
    assert columns.max() - columns.min() > 0.9 * w, "the box is much wider than the ink"


def test_a_backdrop_grows_the_box_by_its_pad(display: Display) -> None:
    display.surface.fill((100, 100, 100))
    plain = display.text_size("Show your hand!", 60)
    x, y, w, h = display.text("Show your hand!", (960, 200), size=60, anchor="center", backdrop=True)
    assert (w, h) == display.text_size("Show your hand!", 60, backdrop=True) == \
        (plain[0] + BACKDROP_PAD[0], plain[1] + BACKDROP_PAD[1])
    rows, columns = np.nonzero((display.snapshot() != 100).any(axis=2))
    assert (columns.min(), rows.min(), columns.max() + 1, rows.max() + 1) == (x, y, x + w, y + h)


def test_lines_of_one_size_share_a_baseline(display: Display) -> None:
    """Boxes of a size are equally tall whatever the letters, so centred lines do not jump."""
    heights = {display.text_size(line, 60)[1] for line in ("ace", "Shoot!", "Rock, paper, scissors", "gyp")}
    assert len(heights) == 1
    assert display.text_size("", 60) == (0, next(iter(heights)))
