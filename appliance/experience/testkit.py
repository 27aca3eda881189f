"""The experience test kit (API v1): an experience tested without models, a display or a broker.

Invariants:

- ``FakeContext(experience, table)`` validates the table with the experience's config model and refuses
  an API the kiosk would skip.  It records each drawing, stage, ``image`` and ``new_screen`` call with its
  frame and its arguments bound to the API's signature (a call the kiosk would refuse fails here).  Events
  get a fake session; ``image`` takes only the table's assets; ``rng`` is seeded; ``text_size`` estimates
  from length and size; the layout is the kiosk's, clear of ``stage.head``.  Jobs run on submit (or on
  ``run_jobs()``) and are ``done`` only once delivered at the start of a later frame, never after exit.
- ``moment`` may carry faces (``face``: a box's grid of landmarks, a track and its age as perception gives).
- ``play`` runs a scene as the kiosk does: ``enter`` and ``draw`` on the first moment, then ``update`` and,
  unless it returned a target (``menu``, ``attract`` or an offer), ``draw``; ``exit`` once with "done", ``end``
  or "failed" (the exception re-raised).  With ``reading_s`` a gestured CONFIRM waits as in the kiosk.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from appliance.experience import api
from appliance.experience.assets import asset_paths, own_asset
from appliance.experience.registry import api_problem
from appliance.media import read_image
from appliance.render.fit import shown_point
from appliance.render.layout import Layout
from appliance.sources.base import Frame

SESSION = "test-session"
FRAME_SIZE = (320, 180)          # the scripted camera frame (w, h): hands are placed in its pixels


class Call(NamedTuple):
    frame: int
    name: str
    args: Mapping[str, Any]


class FakeImage(NamedTuple):
    asset: str
    height: int

    def get_size(self) -> tuple[int, int]:
        return self.height, self.height


def _recorded(protocol: type, name: str, answer: Callable[[Any, Call], Any] = lambda owner, call: None) -> Any:
    """A method recording its call under the signature of ``protocol``'s, returning ``answer(self, call)``."""
    signature = inspect.signature(getattr(protocol, name))
    return lambda self, *args, **kwargs: answer(self, self._context.record(name, signature, self, *args, **kwargs))


class FakeCanvas:
    panel, blit, picture, circle, ring = (_recorded(api.Canvas, n) for n in "panel blit picture circle ring".split())

    def __init__(self, context: FakeContext, size: tuple[int, int]) -> None:
        self._context, self.size = context, size

    def text_size(self, line: str, size: int) -> tuple[int, int]:
        return len(line) * size * 11 // 20, size * 6 // 5

    def box(self, call: Call) -> tuple[int, int, int, int]:   # what the display's text returns
        (x, y), anchor = call.args["position"], call.args["anchor"]
        w, h = self.text_size(call.args["line"], call.args["size"])
        fx = 0.0 if "left" in anchor else 1.0 if "right" in anchor else 0.5
        fy = 0.0 if "top" in anchor else 1.0 if "bottom" in anchor else 0.5
        return round(x - fx * w), round(y - fy * h), w, h

    text = _recorded(api.Canvas, "text", box)


class FakeStage:
    switch_world, cursor = (_recorded(api.Stage, name) for name in ("switch_world", "cursor"))
    show = _recorded(api.Stage, "show", lambda stage, call: np.zeros((stage._size[1], stage._size[0], 3), np.uint8))

    def __init__(self, context: FakeContext, world: api.World, size: tuple[int, int]) -> None:
        self._context, self.world, self._size = context, world, size
        self.head: tuple[int, int, int, int] | None = None   # the shopper's head box on screen, to keep clear of
        self.heads: list[tuple[int, int, int, int]] = []     # or several shoppers' heads

    layout = property(lambda stage: Layout(stage._size, [*([stage.head] if stage.head else []), *stage.heads]))

    def screen_point(self, point: tuple[float, float], frame_size: tuple[int, int]) -> tuple[float, float]:
        """As the kiosk's compositor: mirrored when the world mirrors, then cover-fitted to the screen."""
        return shown_point(point, frame_size, self._size, self.world.mirror)


@dataclass
class FakeJob:
    function: Callable[[], Any]
    name: str
    done: bool = False
    outcome: tuple[bool, Any] | None = None   # (True, value) or (False, exception) once run

    def result(self) -> Any:
        if not self.done or self.outcome is None:
            raise ValueError(f"job {self.name!r} is not done yet (check .done first)")
        if not self.outcome[0]:
            raise self.outcome[1]
        return self.outcome[1]


class FakeJobs:
    def __init__(self, run_at_once: bool) -> None:
        self.run_at_once, self.submitted, self._dropped = run_at_once, [], 0   # those before _dropped: cancelled

    def submit(self, function: Callable[[], Any], name: str) -> FakeJob:
        self.submitted.append(FakeJob(function, name))
        if self.run_at_once:
            self.run()
        return self.submitted[-1]

    def run(self) -> None:
        for job in self.submitted[self._dropped:]:
            if job.outcome is None:
                try:
                    job.outcome = (True, job.function())
                except Exception as exc:  # noqa: BLE001 - re-raised by result(), on the loop, as in the kiosk
                    job.outcome = (False, exc)

    def deliver(self) -> None:
        for job in self.submitted[self._dropped:]:
            job.done = job.outcome is not None

    def cancel(self) -> None:
        self._dropped = len(self.submitted)


def configure(experience: api.Experience, table: Mapping[str, Any] | None) -> api.ExperienceConfig | None:
    if experience.config is None and table:
        raise ValueError(f"experience {experience.name} has no config: its table must be empty")
    return experience.config.model_validate(dict(table or {})) if experience.config is not None else None


def offer(experience: api.Experience, table: Mapping[str, Any] | None = None) -> api.Offer:
    return api.Offer(experience.name, experience.card(configure(experience, table)))


class FakeContext:
    def __init__(self, experience: api.Experience, table: Mapping[str, Any] | None = None,
                 offers: Iterable[api.Offer] = (), size: tuple[int, int] = (1920, 1080), run_jobs: bool = True,
                 seed: int = 0, reading_s: float = 0.0, world: api.World = api.World("test", "Test world"),
                 campaign: str | None = None, asset_dir: Path | None = None) -> None:
        if api_problem(experience.api) is not None:
            raise ValueError(f"experience {experience.name}: {api_problem(experience.api)}")
        self.experience, self.config, self.offers = experience, configure(experience, table), tuple(offers)
        self.calls, self.events = [], []                     # Call; (type, data with the session [and campaign])
        self.campaign = campaign                             # given: events carry it, as the kiosk's do (API 1.4)
        self.asset_dir = asset_dir                           # given: ``pixels`` reads the assets from it (API 1.4)
        self.exits: list[str] = []                           # the reasons ``exit`` was given
        self.target: str | None = None                       # where the scene asked to go (``play``)
        self.frame, self.now, self.rng = 0, 0.0, random.Random(seed)
        self.reading_s, self.reading_until = reading_s, float("-inf")
        self.canvas, self.stage, self.jobs = FakeCanvas(self, size), FakeStage(self, world, size), FakeJobs(run_jobs)
        self._assets = asset_paths(self.config, experience.name)
        self.keepsakes: Any = None                           # Context.keepsakes: set to a photo desk to test one

    def record(self, name: str, signature: inspect.Signature, *args: Any, **kwargs: Any) -> Call:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        self.calls.append(Call(self.frame, name, dict(list(bound.arguments.items())[1:])))
        return self.calls[-1]

    def named(self, name: str, frame: int | None = None) -> list[Call]:
        """The calls of ``name`` (of ``frame`` only, when given; -1: the last frame)."""
        frame = self.frame if frame == -1 else frame
        return [call for call in self.calls if call.name == name and frame in (None, call.frame)]

    def texts(self, frame: int | None = None) -> list[str]:
        return [call.args["line"] for call in self.named("text", frame)]

    def published(self, type: str) -> list[dict[str, Any]]:
        return [data for kind, data in self.events if kind == type]

    def run_jobs(self) -> None:
        self.jobs.run()

    def image(self, asset: str, height: int) -> FakeImage:
        own_asset(self._assets, self.experience.name, asset)
        self.record("image", inspect.signature(api.Context.image), self, asset, height)
        return FakeImage(asset, height)

    def pixels(self, asset: str) -> np.ndarray:
        own_asset(self._assets, self.experience.name, asset)
        if self.asset_dir is None:
            raise ValueError(f"FakeContext(asset_dir=…) is needed to read {asset!r}'s pixels")
        return read_image(self.asset_dir / asset)

    def icon(self, offer: api.Offer, height: int) -> FakeImage | None:
        return None if offer.card.icon is None or offer.card.live else FakeImage(offer.card.icon, height)

    def publish(self, type: str, data: Mapping[str, Any]) -> None:
        shown = {} if self.campaign is None else {"campaign": self.campaign}
        self.events.append((type, {"session": SESSION, **shown, **data}))

    def new_screen(self) -> None:
        self.record("new_screen", inspect.signature(api.Context.new_screen), self)
        self.reading_until = self.now + self.reading_s

    def leave(self, scene: api.Scene, reason: str) -> None:
        self.jobs.cancel()
        self.exits.append(reason)
        scene.exit(self, reason)


def gestures(held: str | None = None, label: str | None = None, swipe: api.Swipe | None = None, hand: bool = True,
             at: tuple[float, float] = (FRAME_SIZE[0] / 2, FRAME_SIZE[1] / 2)) -> api.GestureState:
    """A frame's gestures: a driving hand at ``at`` (frame pixels) reading ``label`` and held as ``held``
    (None while settling), and the last ``swipe`` (``api.Swipe(direction, serial, at)``)."""
    if not hand:
        return api.GestureState(swipe=swipe)
    landmarks = np.tile(np.array([*at, 0.0], np.float32), (21, 1))
    primary = api.HandGesture(api.Hand("Right", 0.95, 0.99, landmarks), label or held or "other", 0.9, held)
    return api.GestureState(hands=(primary,), primary=primary, swipe=swipe)


def face(box: tuple[float, float, float, float], track_id: int = 1, age: api.FaceAge | None = None) -> api.Face:
    """A face filling ``box`` (x, y, w, h in frame pixels): 468 landmarks on a grid over it, tracked as
    ``track_id``, with ``age`` (``api.FaceAge(age, band, guesses, gender, gender_score)``) as perception gives."""
    x, y, w, h = box
    grid = np.stack(np.meshgrid(np.linspace(x, x + w, 26), np.linspace(y, y + h, 18)), axis=-1).reshape(-1, 2)
    return api.Face(0.9, np.column_stack([grid, np.zeros(len(grid))]).astype(np.float32), track_id, age)


def moment(now: float, actions: Sequence[api.Action] = (), inputs: Sequence[str] = (),
           gestures: api.GestureState | None = None, person: bool = True, camera: bool = True,
           typed: Sequence[api.Action] = (), hold_progress: float = 0.0, reading: bool = False,
           faces: Sequence[api.Face] = ()) -> api.Moment:
    """One frame's input; ``person=False``: nobody in the frame; ``camera=False``: no perception at all;
    ``faces`` (``face(...)``): what face perception found, largest first."""
    perception, (width, height) = None, FRAME_SIZE
    if camera:
        alpha = np.zeros((height, width), np.uint8)
        if person:
            alpha[height // 6:, width // 3: 2 * width // 3] = 255
        frame = Frame(np.zeros((height, width, 3), np.uint8), round(now * 30), now)
        perception = api.Perception(frame, alpha, float(alpha.mean() / 255), gestures=gestures or api.GestureState(),
                                    ran=("segmentation", "hands", *(("face",) if faces else ())), faces=tuple(faces))
    return api.Moment(now, perception, tuple(actions), tuple(typed), tuple(inputs), hold_progress, reading)


def play(experience: api.Experience, table: Mapping[str, Any] | None, script: Sequence[api.Moment],
         context: FakeContext | None = None, end: str = "left") -> FakeContext:
    """Run one scene of ``experience`` through ``script`` in ``context`` (default: one made with ``table``); returns
    the context, its ``target`` where the scene asked to go (None when the script ran out first)."""
    context = context if context is not None else FakeContext(experience, table)
    scene, inputs, reason = experience.scene(), set(experience.keys.values()), end
    context.reading_until = (script[0].now if script else 0.0) + context.reading_s
    try:
        for index, frame in enumerate(script):
            context.frame, context.now = index, frame.now
            context.jobs.deliver()
            if frame.now < context.reading_until:
                kept = tuple(a for a in frame.actions if a is not api.Action.CONFIRM or a in frame.typed)
                frame = replace(frame, actions=kept, reading=True)
            if set(frame.inputs) - inputs:
                raise ValueError(f"moment {index}: inputs {frame.inputs} are not all {experience.name}'s keys")
            if index == 0:
                scene.enter(context, frame)
            elif (target := scene.update(context, frame)) is not None:
                if target not in (api.ATTRACT, api.MENU, *(offer.name for offer in context.offers)):
                    raise ValueError(f"experience {experience.name} asked for {target!r}, which is not offered")
                context.target, reason = target, "done"
                break
            scene.draw(context, frame)
    except Exception:
        context.leave(scene, "failed")
        raise
    context.leave(scene, reason)
    return context
