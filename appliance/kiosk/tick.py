"""The scene protocol and the per-frame input every scene gets.

The shape is pibooth's state machine: ``enter`` / ``draw`` (its "do") /
``next_scene`` (its "validate") / ``exit``.  Scenes draw through the kiosk's
compositors and display; they hold no threads and never block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from appliance.kiosk.navigation import Action
from appliance.perception.hand import GestureState

if TYPE_CHECKING:
    from appliance.kiosk.app import Kiosk
    from appliance.perception.pipeline import Perception

NO_GESTURES = GestureState()


@dataclass(frozen=True)
class Tick:
    """One frame's input: the newest perception (None before the first), the time, and the actions.

    ``actions`` come from gestures and from the technician's keyboard; ``typed`` is the keyboard's
    share, for scenes where a gesture means something else than its key (a palm is a throw in RPS).
    Actions are handled by the scene whose ``next_scene`` sees them, and by no other.
    """

    perception: Perception | None
    now: float
    present: bool
    source_problem: str | None
    actions: tuple[Action, ...] = ()
    typed: tuple[Action, ...] = ()
    hold_progress: float = 0.0      # the open palm's way to "back", 0..1

    @property
    def gestures(self) -> GestureState:
        return self.perception.gestures if self.perception else NO_GESTURES


class Scene(Protocol):
    name: str

    def enter(self, kiosk: Kiosk, tick: Tick) -> None: ...

    def draw(self, kiosk: Kiosk, tick: Tick) -> None: ...

    def next_scene(self, kiosk: Kiosk, tick: Tick) -> str | None: ...

    def exit(self, kiosk: Kiosk) -> None: ...
