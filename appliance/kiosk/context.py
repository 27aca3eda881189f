"""The kiosk's side of the experience API: the ``Context`` each experience is given, and its parts.

Invariants:

- A context is made per experience and per shown campaign (its config and assets are
  the campaign's); the kiosk makes new ones when the campaign changes.
- ``ScreenCanvas`` exposes drawing only: a scene cannot flip, read events from or close
  the display.  ``image`` decodes only the assets the experience's own validated table
  names (``KeyError`` otherwise).
- ``jobs`` submits under the current scene run's token: when the scene exits, its jobs
  are cancelled by the kiosk (see ``appliance.kiosk.jobs``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from appliance.experience.api import Card, ExperienceConfig, Job, Layout, Moment, Offer, Perception, World
from appliance.experience.assets import assets
from appliance.kiosk.jobs import JobRunner

if TYPE_CHECKING:
    from appliance.kiosk.display import Display

T = TypeVar("T")


class ScreenCanvas:
    """The display's drawing methods, and nothing else of it."""

    def __init__(self, display: Display) -> None:
        self._display = display

    @property
    def size(self) -> tuple[int, int]:
        return self._display.size

    def text(self, *args: Any, **kwargs: Any) -> Any:
        return self._display.text(*args, **kwargs)

    def text_size(self, line: str, size: int) -> tuple[int, int]:
        return self._display.text_size(line, size)

    def panel(self, *args: Any, **kwargs: Any) -> None:
        self._display.panel(*args, **kwargs)

    def blit(self, *args: Any, **kwargs: Any) -> None:
        self._display.blit(*args, **kwargs)

    def picture(self, *args: Any, **kwargs: Any) -> None:
        self._display.picture(*args, **kwargs)

    def circle(self, *args: Any, **kwargs: Any) -> None:
        self._display.circle(*args, **kwargs)

    def ring(self, *args: Any, **kwargs: Any) -> None:
        self._display.ring(*args, **kwargs)


class StageHost:
    """What the kiosk does for the stage (``appliance.kiosk.app.Kiosk`` implements it)."""

    world: Any
    layout: Layout

    def show_perception(self, perception: Perception | None, person: bool) -> Any: ...

    def step_world(self, step: int) -> None: ...

    def draw_cursor(self, moment: Moment, progress: float) -> None: ...


class KioskStage:
    def __init__(self, host: StageHost) -> None:
        self._host = host

    @property
    def world(self) -> World:
        return World(self._host.world.id, self._host.world.title)

    @property
    def layout(self) -> Layout:
        return self._host.layout

    def show(self, perception: Perception | None, person: bool = True) -> Any:
        return self._host.show_perception(perception, person)

    def switch_world(self, step: int) -> None:
        self._host.step_world(step)

    def cursor(self, moment: Moment, progress: float = 0.0) -> None:
        self._host.draw_cursor(moment, progress)


@dataclass
class ExperienceJobs:
    runner: JobRunner
    token: Callable[[], int]

    def submit(self, function: Callable[[], T], name: str) -> Job[T]:
        return self.runner.submit(function, name, self.token())


class SceneContext:
    """One experience's context (see the module's invariants)."""

    def __init__(self, name: str, config: ExperienceConfig | None, offers: tuple[Offer, ...], canvas: ScreenCanvas,
                 stage: KioskStage, jobs: ExperienceJobs, rng: random.Random,
                 load_image: Callable[[str, int], Any], publish: Callable[[str, dict[str, Any]], None],
                 new_screen: Callable[[], None]) -> None:
        self.name, self.config, self.offers = name, config, offers
        self.canvas, self.stage, self.jobs, self.rng = canvas, stage, jobs, rng
        self._load_image, self._publish, self._new_screen = load_image, publish, new_screen
        self._assets = {path for _, path, _ in assets(config, name)} if config is not None else set()

    def image(self, asset: str, height: int) -> Any:
        if asset not in self._assets:
            raise KeyError(f"experience {self.name}: {asset!r} is not an asset of its [{self.name}] table")
        return self._load_image(asset, height)

    def icon(self, offer: Offer, height: int) -> Any:
        card: Card = offer.card
        return None if card.icon is None or card.live else self._load_image(card.icon, height)

    def publish(self, type: str, data: Mapping[str, Any]) -> None:
        self._publish(type, dict(data))

    def new_screen(self) -> None:
        self._new_screen()
