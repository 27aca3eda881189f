"""The kiosk's scenes: each one is entered, drawn every frame, and says which scene comes next.

The shape is pibooth's state machine: ``enter`` / ``draw`` (its "do") /
``next_scene`` (its "validate") / ``exit``.  Scenes draw through the kiosk's
compositors and display; they hold no threads and never block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from appliance.kiosk.app import Kiosk
    from appliance.perception.pipeline import Perception


@dataclass(frozen=True)
class Tick:
    """What a scene gets each frame: the newest perception (None before the first) and the time."""

    perception: Perception | None
    now: float
    present: bool
    source_problem: str | None


class Scene(Protocol):
    name: str

    def enter(self, kiosk: Kiosk, tick: Tick) -> None: ...

    def draw(self, kiosk: Kiosk, tick: Tick) -> None: ...

    def next_scene(self, kiosk: Kiosk, tick: Tick) -> str | None: ...

    def exit(self, kiosk: Kiosk) -> None: ...


class AttractScene:
    """Nobody in front: the campaign's world without a person, and an invitation to step in."""

    name = "attract"

    def enter(self, kiosk: Kiosk, tick: Tick) -> None:
        self._since = tick.now

    def draw(self, kiosk: Kiosk, tick: Tick) -> None:
        frame = tick.perception.frame.image if tick.perception else None
        kiosk.show_composite(frame, None if frame is None else kiosk.empty_alpha(frame), tick.now)
        width, height = kiosk.display.size
        pulse = 0.75 + 0.25 * math.sin((tick.now - self._since) * 2.5)
        colour = tuple(int(255 * pulse) for _ in range(3))
        kiosk.display.text("Step in front of the screen", (width // 2, int(height * 0.42)),
                           size=height // 12, colour=colour, anchor="center", backdrop=True)
        kiosk.display.text("and play with us", (width // 2, int(height * 0.52)),
                           size=height // 18, anchor="center")
        if tick.source_problem:
            kiosk.display.text("Camera reconnecting…", (width // 2, height - height // 10),
                               size=height // 24, colour=(255, 200, 120), anchor="center", backdrop=True)

    def next_scene(self, kiosk: Kiosk, tick: Tick) -> str | None:
        return "mirror" if tick.present and not tick.source_problem else None

    def exit(self, kiosk: Kiosk) -> None:
        """Nothing to release."""


class MirrorScene:
    """The shopper, live, inside the current world; the technician's arrows switch worlds."""

    name = "mirror"
    title_seconds = 3.0

    def enter(self, kiosk: Kiosk, tick: Tick) -> None:
        self._title_until = tick.now + self.title_seconds
        kiosk.on_world_change = self._show_title

    def _show_title(self, now: float) -> None:
        self._title_until = now + self.title_seconds

    def draw(self, kiosk: Kiosk, tick: Tick) -> None:
        perception = tick.perception
        if perception is None:
            return
        kiosk.show_composite(perception.frame.image, perception.alpha, tick.now)
        if tick.now < self._title_until:
            width, height = kiosk.display.size
            kiosk.display.text(kiosk.world.title, (width // 2, height - height // 8),
                               size=height // 16, anchor="center", backdrop=True)

    def next_scene(self, kiosk: Kiosk, tick: Tick) -> str | None:
        return "attract" if not tick.present or tick.source_problem else None

    def exit(self, kiosk: Kiosk) -> None:
        kiosk.on_world_change = None


def all_scenes() -> dict[str, Scene]:
    return {scene.name: scene for scene in (AttractScene(), MirrorScene())}

