"""A block of centred lines placed as one, clear of the shopper's head (an experience API helper).

Invariants: lines are given at their preferred positions (as a scene would draw
them); ``draw`` moves the whole block by one offset, chosen by the stage's layout,
so the lines keep their spacing and the block never covers the head when there is
room elsewhere.  Nothing is drawn before ``draw``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TextBlock:
    context: Any  # an appliance.experience.api.Context
    _lines: list[tuple[str, tuple[int, int], dict[str, Any], tuple[int, int]]] = field(default_factory=list)

    def text(self, line: str, position: tuple[int, int], size: int = 36, **style: Any) -> None:
        """Like ``Canvas.text`` with ``anchor="center"``: ``position`` is the line's preferred centre."""
        style.pop("anchor", None)
        self._lines.append((line, position, {"size": size, **style}, self.context.canvas.text_size(line, size)))

    def draw(self) -> None:
        if not self._lines:
            return
        left = min(x - w // 2 for _, (x, _), _, (w, _) in self._lines)
        right = max(x + w - w // 2 for _, (x, _), _, (w, _) in self._lines)
        top = min(y - h // 2 for _, (_, y), _, (_, h) in self._lines)
        bottom = max(y + h - h // 2 for _, (_, y), _, (_, h) in self._lines)
        width, height = self.context.canvas.size
        preferred = ((left + right) / 2, (top + bottom) / 2)
        centre = self.context.stage.layout.place((right - left, bottom - top),
                                                 (preferred[0] / width, preferred[1] / height))
        dx, dy = round(centre[0] - preferred[0]), round(centre[1] - preferred[1])
        for line, (x, y), style, _ in self._lines:
            self.context.canvas.text(line, (x + dx, y + dy), anchor="center", **style)
        self._lines.clear()
