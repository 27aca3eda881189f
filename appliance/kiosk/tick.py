"""The scene protocol, what a scene may use of the kiosk, and the per-frame input every scene gets.

The shape is pibooth's state machine: ``enter`` / ``draw`` (its "do") /
``next_scene`` (its "validate") / ``exit``.  Scenes draw through the kiosk's
compositors and display (the ``Stage``, which the kiosk implements; scenes never
import the kiosk itself); they hold no threads and never block.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from appliance.kiosk.navigation import Action
from appliance.perception.hand import GestureState

if TYPE_CHECKING:
    import numpy as np

    from appliance.content import Bundle, SceneSpec
    from appliance.kiosk.display import Display
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


class Stage(Protocol):
    """What a scene may use of the kiosk (appliance.kiosk.app.Kiosk implements it)."""

    bundle: Bundle
    display: Display
    rng: random.Random
    on_world_change: Callable[[float], None] | None

    @property
    def world(self) -> SceneSpec: ...

    def switch_world(self, step: int, now: float) -> None: ...

    def empty_alpha(self, frame: np.ndarray) -> np.ndarray: ...

    def show_composite(self, frame: np.ndarray | None, alpha: np.ndarray | None, now: float) -> np.ndarray: ...

    def image(self, relative: str, height: int) -> Any: ...

    def publish(self, type: str, data: dict[str, Any]) -> None: ...

    def draw_hand(self, tick: Tick, progress: float) -> None: ...


class Scene(Protocol):
    name: str

    def enter(self, kiosk: Stage, tick: Tick) -> None: ...

    def draw(self, kiosk: Stage, tick: Tick) -> None: ...

    def next_scene(self, kiosk: Stage, tick: Tick) -> str | None: ...

    def exit(self, kiosk: Stage) -> None: ...
