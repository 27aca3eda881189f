"""The kiosk's scenes and how they connect: attract → menu → mirror | rps, and back.

Presence lost sends every scene back to attract; each scene handles the actions
of the frames it is current for (see ``Tick``).
"""

from __future__ import annotations

import math

from appliance.kiosk.menu import MenuScene
from appliance.kiosk.navigation import Action
from appliance.kiosk.rps_scene import RpsScene
from appliance.kiosk.tick import Scene, Stage, Tick


def world_steps(actions: tuple[Action, ...]) -> list[int]:
    """Previous / next as steps through the campaign's worlds."""
    return [{Action.PREVIOUS: -1, Action.NEXT: 1}[action] for action in actions
            if action in (Action.PREVIOUS, Action.NEXT)]


class AttractScene:
    """Nobody in front: the campaign's world without a person, and an invitation to step in.

    Without a working camera nobody could answer the invitation, so the screen shows the
    campaign's world alone: no call to action and no technical text in public (the fleet
    gets a ``camera`` alert; F2 shows the problem to a technician).
    """

    name = "attract"

    def enter(self, kiosk: Stage, tick: Tick) -> None:
        self._since = tick.now

    def draw(self, kiosk: Stage, tick: Tick) -> None:
        frame = tick.perception.frame.image if tick.perception else None
        kiosk.show_composite(frame, None if frame is None else kiosk.empty_alpha(frame), tick.now)
        if tick.source_problem:
            return
        width, height = kiosk.display.size
        pulse = 0.75 + 0.25 * math.sin((tick.now - self._since) * 2.5)
        colour = tuple(int(255 * pulse) for _ in range(3))
        kiosk.display.text("Step in front of the screen", (width // 2, int(height * 0.42)),
                           size=height // 12, colour=colour, anchor="center", backdrop=True)
        kiosk.display.text("and play with us", (width // 2, int(height * 0.52)),
                           size=height // 18, anchor="center")

    def next_scene(self, kiosk: Stage, tick: Tick) -> str | None:
        for step in world_steps(tick.typed):   # a technician previews the worlds
            kiosk.switch_world(step, tick.now)
        return "menu" if tick.present and not tick.source_problem else None

    def exit(self, kiosk: Stage) -> None:
        """Nothing to release."""


class MirrorScene:
    """The shopper, live, inside the current world: swipe or victory for another world, open palm for the menu."""

    name = "mirror"
    title_seconds = 3.0

    def enter(self, kiosk: Stage, tick: Tick) -> None:
        self._title_until = tick.now + self.title_seconds
        kiosk.on_world_change = self._show_title

    def _show_title(self, now: float) -> None:
        self._title_until = now + self.title_seconds

    def draw(self, kiosk: Stage, tick: Tick) -> None:
        perception = tick.perception
        if perception is None:
            return
        kiosk.show_composite(perception.frame.image, perception.alpha, tick.now)
        width, height = kiosk.display.size
        if tick.now < self._title_until:
            kiosk.display.text(kiosk.world.title, (width // 2, height - height // 6),
                               size=height // 16, anchor="center", backdrop=True)
            kiosk.display.text("Victory sign or swipe: another world · hold an open hand: menu",
                               (width // 2, height - height // 12), size=height // 30, anchor="center",
                               backdrop=True)
        kiosk.draw_hand(tick, tick.hold_progress)

    def next_scene(self, kiosk: Stage, tick: Tick) -> str | None:
        if not tick.present or tick.source_problem:
            return "attract"
        if Action.BACK in tick.actions:
            return "menu"
        for step in world_steps(tick.actions):
            kiosk.switch_world(step, tick.now)
        if Action.SWITCH in tick.actions:
            kiosk.switch_world(1, tick.now)
        return None

    def exit(self, kiosk: Stage) -> None:
        kiosk.on_world_change = None


def all_scenes() -> dict[str, Scene]:
    return {scene.name: scene for scene in (AttractScene(), MenuScene(), MirrorScene(), RpsScene())}
