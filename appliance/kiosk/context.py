"""The kiosk's side of the experience API: the ``Context`` each experience is given, and its parts.

Invariants:

- A context is made per experience and per shown campaign (its config and assets are
  the campaign's); the kiosk makes new ones when the campaign changes.
- ``ScreenCanvas`` exposes drawing only: a scene cannot flip, read events from or close
  the display.  ``image`` decodes only the assets the experience's own validated table
  names (``KeyError`` otherwise).
- ``jobs`` submits under the current scene run's token: when the scene exits, its jobs
  are cancelled by the kiosk (see ``appliance.kiosk.jobs``).  The stage and the jobs are
  handed functions, never the kiosk or the job runner themselves.
- ``offers`` is set by the state machine (``appliance.kiosk.machine``) whenever they change.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from appliance.experience.api import Card, ExperienceConfig, Job, Layout, Moment, Offer, Perception, World
from appliance.experience.assets import asset_paths, own_asset

if TYPE_CHECKING:
    from appliance.kiosk.display import Display
    from appliance.kiosk.gpu_display import RendererDisplay

T = TypeVar("T")


class ScreenCanvas:
    """The display's drawing methods, and nothing else of it."""

    def __init__(self, display: Display | RendererDisplay) -> None:
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


class KioskStage:
    """The stage as a scene sees it: what the kiosk lends it, as functions (never the kiosk itself)."""

    def __init__(self, world: Callable[[], Any], layout: Callable[[], Layout],
                 show: Callable[[Perception | None, bool], Any], switch_world: Callable[[int], None],
                 cursor: Callable[[Moment, float], None],
                 screen_point: Callable[[tuple[float, float], tuple[int, int]], tuple[float, float] | None]) -> None:
        self._world, self._layout, self._show, self._switch, self._cursor = world, layout, show, switch_world, cursor
        self._screen_point = screen_point

    @property
    def world(self) -> World:
        spec = self._world()
        return World(spec.id, spec.title, spec.mirror)

    @property
    def layout(self) -> Layout:
        return self._layout()

    def show(self, perception: Perception | None, person: bool = True) -> Any:
        return self._show(perception, person)

    def switch_world(self, step: int) -> None:
        self._switch(step)

    def cursor(self, moment: Moment, progress: float = 0.0) -> None:
        self._cursor(moment, progress)

    def screen_point(self, point: tuple[float, float], frame_size: tuple[int, int]) -> tuple[float, float] | None:
        return self._screen_point(point, frame_size)


class ExperienceJobs:
    """``Context.jobs``: submits under the current run's token (the runner stays behind it)."""

    def __init__(self, submit: Callable[[Callable[[], Any], str], Job[Any]]) -> None:
        self._submit = submit

    def submit(self, function: Callable[[], T], name: str) -> Job[T]:
        return self._submit(function, name)


class SceneContext:
    """One experience's context (see the module's invariants)."""

    def __init__(self, name: str, config: ExperienceConfig | None, canvas: ScreenCanvas, stage: KioskStage,
                 jobs: ExperienceJobs, rng: random.Random, load_image: Callable[[str, int], Any],
                 publish: Callable[[str, dict[str, Any]], None], new_screen: Callable[[], None],
                 keepsakes: Any = None, load_pixels: Callable[[str], Any] | None = None) -> None:
        self.name, self.config, self.offers, self.keepsakes = name, config, (), keepsakes
        self.canvas, self.stage, self.jobs, self.rng = canvas, stage, jobs, rng
        self._load_image, self._publish, self._new_screen = load_image, publish, new_screen
        self._load_pixels = load_pixels
        self._assets = asset_paths(config, name)

    def image(self, asset: str, height: int) -> Any:
        return self._load_image(own_asset(self._assets, self.name, asset), height)

    def pixels(self, asset: str) -> Any:
        if self._load_pixels is None:
            raise ValueError(f"experience {self.name}: this context reads no asset's pixels")
        return self._load_pixels(own_asset(self._assets, self.name, asset))

    def icon(self, offer: Offer, height: int) -> Any:
        card: Card = offer.card
        return None if card.icon is None or card.live else self._load_image(card.icon, height)

    def publish(self, type: str, data: Mapping[str, Any]) -> None:
        self._publish(type, dict(data))

    def new_screen(self) -> None:
        self._new_screen()
