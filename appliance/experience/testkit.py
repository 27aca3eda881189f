"""The experience test kit (part of the API, v1): an experience tested without models, display or broker.

Invariants:

- ``FakeContext`` is built from an ``Experience`` and its campaign table as a dict, validated by its
  config model (unknown keys refused, as in a campaign); an API the kiosk would skip is refused.
- It records every drawing, stage, ``image`` and ``new_screen`` call in order, with its frame and its
  arguments by name, bound to the API's signature (a call the kiosk would refuse fails here).
  ``text_size`` is an estimate from length and size; the layout is the kiosk's (clear of ``stage.head``
  when set); ``image`` takes only the table's assets; events get a fake session; ``rng`` is seeded.
- Jobs run on submit (``run_jobs=True``) or on ``run_jobs()``; ``done`` turns true only when the kit
  delivers them, at the start of a frame; a scene's undelivered jobs are dropped at its exit.
- ``play`` runs a scene as the kiosk does: ``enter`` and ``draw`` on the first moment, then per moment
  ``update`` and, unless it returned a target (``menu``, ``attract`` or an offer), ``draw``; ``exit`` once
  with the reason: "done", ``end`` when the script runs out, or "failed", the exception then re-raised.
  With ``reading_s``, gestured CONFIRMs are held back after ``enter`` and ``new_screen``.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from appliance.experience import api
from appliance.experience.assets import assets
from appliance.experience.registry import api_problem
from appliance.render.layout import Layout
from appliance.sources.base import Frame

SESSION = "test-session"
FRAME_SIZE = (320, 180)          # the scripted camera frame (w, h): hands are placed in its pixels


@dataclass(frozen=True)
class Call:
    frame: int
    name: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class FakeImage:
    asset: str
    height: int

    def get_size(self) -> tuple[int, int]:
        return self.height, self.height


def _recorded(protocol: type, name: str) -> Callable[..., None]:
    """A method that records its call under the signature of ``protocol``'s."""
    signature = inspect.signature(getattr(protocol, name))
    return lambda self, *args, **kwargs: self._context.record(name, signature, self, *args, **kwargs)


class FakeCanvas:
    panel, blit, picture, circle, ring = (_recorded(api.Canvas, name)
                                          for name in ("panel", "blit", "picture", "circle", "ring"))

    def __init__(self, context: FakeContext, size: tuple[int, int]) -> None:
        self._context, self.size = context, size

    def text_size(self, line: str, size: int) -> tuple[int, int]:
        return len(line) * size * 11 // 20, size * 6 // 5

    def text(self, *args: Any, **kwargs: Any) -> tuple[int, int, int, int]:
        call = self._context.record("text", inspect.signature(api.Canvas.text), self, *args, **kwargs)
        (x, y), anchor = call.args["position"], call.args["anchor"]
        w, h = self.text_size(call.args["line"], call.args["size"])
        fx = 0.0 if "left" in anchor else 1.0 if "right" in anchor else 0.5
        fy = 0.0 if "top" in anchor else 1.0 if "bottom" in anchor else 0.5
        return round(x - fx * w), round(y - fy * h), w, h


class FakeStage:
    switch_world, cursor = (_recorded(api.Stage, name) for name in ("switch_world", "cursor"))

    def __init__(self, context: FakeContext, world: api.World, size: tuple[int, int]) -> None:
        self._context, self.world, self._size = context, world, size
        self.head: tuple[int, int, int, int] | None = None   # the shopper's head box on screen, to keep clear of

    @property
    def layout(self) -> Layout:
        return Layout(self._size, self.head)

    def show(self, *args: Any, **kwargs: Any) -> np.ndarray:
        self._context.record("show", inspect.signature(api.Stage.show), self, *args, **kwargs)
        return np.zeros((self._size[1], self._size[0], 3), np.uint8)


@dataclass
class FakeJob:
    function: Callable[[], Any]
    name: str
    done: bool = False
    outcome: tuple[bool, Any] | None = None   # (True, value) or (False, exception) once run

    def result(self) -> Any:
        if not self.done or self.outcome is None:
            raise ValueError(f"job {self.name!r} is not done yet (check .done first)")
        ok, value = self.outcome
        if not ok:
            raise value
        return value


class FakeJobs:
    def __init__(self, run_at_once: bool) -> None:
        self.run_at_once, self.submitted, self._open = run_at_once, [], []

    def submit(self, function: Callable[[], Any], name: str) -> FakeJob:
        job = FakeJob(function, name)
        self.submitted.append(job)
        self._open.append(job)
        if self.run_at_once:
            self.run()
        return job

    def run(self) -> None:
        for job in self._open:
            if job.outcome is None:
                try:
                    job.outcome = (True, job.function())
                except Exception as exc:  # noqa: BLE001 - re-raised by result(), on the loop, as in the kiosk
                    job.outcome = (False, exc)

    def deliver(self) -> None:
        for job in self._open:
            job.done = job.outcome is not None
        self._open = [job for job in self._open if not job.done]

    def cancel(self) -> None:
        self._open = []


def configure(experience: api.Experience, table: Mapping[str, Any] | None) -> api.ExperienceConfig | None:
    """``table`` validated as the campaign loader does (None: no table, the model's defaults)."""
    if experience.config is None and table:
        raise ValueError(f"experience {experience.name} has no config: its table must be empty")
    return experience.config.model_validate(dict(table or {})) if experience.config is not None else None


def offer(experience: api.Experience, table: Mapping[str, Any] | None = None) -> api.Offer:
    """``experience`` as the menu offers it with ``table``."""
    return api.Offer(experience.name, experience.card(configure(experience, table)))


class FakeContext:
    def __init__(self, experience: api.Experience, table: Mapping[str, Any] | None = None,
                 offers: Iterable[api.Offer] = (), size: tuple[int, int] = (1920, 1080),
                 world: api.World = api.World("test-world", "Test world"), run_jobs: bool = True, seed: int = 0,
                 reading_s: float = 0.0) -> None:
        problem = api_problem(experience.api)
        if problem is not None:
            raise ValueError(f"experience {experience.name}: {problem}")
        self.experience, self.config, self.offers = experience, configure(experience, table), tuple(offers)
        self.calls: list[Call] = []
        self.events: list[tuple[str, dict[str, Any]]] = []   # (type, data with the session)
        self.exits: list[str] = []                           # the reasons ``exit`` was given
        self.frame, self.now, self.rng = 0, 0.0, random.Random(seed)
        self.reading_s, self.reading_until = reading_s, float("-inf")
        self.canvas, self.stage, self.jobs = FakeCanvas(self, size), FakeStage(self, world, size), FakeJobs(run_jobs)
        self._assets = {path for _, path, _ in assets(self.config, experience.name)} if self.config else set()

    def record(self, name: str, signature: inspect.Signature | None, *args: Any, **kwargs: Any) -> Call:
        """A call, its arguments bound to ``signature`` (whose first is ``self``) when given."""
        if signature is not None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            kwargs = dict(list(bound.arguments.items())[1:])
        self.calls.append(Call(self.frame, name, kwargs))
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
        if asset not in self._assets:
            name = self.experience.name
            raise KeyError(f"experience {name}: {asset!r} is not an asset of its [{name}] table")
        self.record("image", None, asset=asset, height=height)
        return FakeImage(asset, height)

    def icon(self, offer: api.Offer, height: int) -> FakeImage | None:
        return None if offer.card.icon is None or offer.card.live else FakeImage(offer.card.icon, height)

    def publish(self, type: str, data: Mapping[str, Any]) -> None:
        self.events.append((type, {"session": SESSION, **data}))

    def new_screen(self) -> None:
        self.record("new_screen", None)
        self.reading_until = self.now + self.reading_s


def gestures(held: str | None = None, label: str | None = None, swipe: api.Swipe | None = None, hand: bool = True,
             at: tuple[float, float] = (FRAME_SIZE[0] / 2, FRAME_SIZE[1] / 2)) -> api.GestureState:
    """A frame's gestures: a driving hand at ``at`` (frame pixels) reading ``label`` and held as ``held``
    (None while settling), and the last ``swipe`` (``api.Swipe(direction, serial, at)``)."""
    if not hand:
        return api.GestureState(swipe=swipe)
    landmarks = np.tile(np.array([*at, 0.0], np.float32), (21, 1))
    primary = api.HandGesture(api.Hand("Right", 0.95, 0.99, landmarks), label or held or "other", 0.9, held)
    return api.GestureState(hands=(primary,), primary=primary, swipe=swipe)


def moment(now: float, actions: Sequence[api.Action] = (), inputs: Sequence[str] = (),
           gestures: api.GestureState | None = None, person: bool = True, camera: bool = True,
           typed: Sequence[api.Action] = (), hold_progress: float = 0.0, reading: bool = False) -> api.Moment:
    """One frame's input; ``person=False``: nobody in the frame; ``camera=False``: no perception at all."""
    perception = None
    if camera:
        width, height = FRAME_SIZE
        alpha = np.zeros((height, width), np.uint8)
        if person:
            alpha[height // 6:, width // 3: 2 * width // 3] = 255
        frame = Frame(np.zeros((height, width, 3), np.uint8), round(now * 30), now)
        perception = api.Perception(frame, alpha, float(alpha.mean() / 255), gestures=gestures or api.GestureState(),
                                    ran=("segmentation", "hands"))
    return api.Moment(now, perception, tuple(actions), tuple(typed), tuple(inputs), hold_progress, reading)


@dataclass(frozen=True)
class Result:
    context: FakeContext
    target: str | None      # where the scene asked to go; None when the script ran out first
    reason: str             # the reason ``exit`` was given


def play(experience: api.Experience, table: Mapping[str, Any] | None, script: Sequence[api.Moment],
         context: FakeContext | None = None, end: str = "left") -> Result:
    """Run one scene of ``experience`` through ``script`` (see the module's invariants)."""
    context = context if context is not None else FakeContext(experience, table)
    scene, inputs = experience.scene(), set(experience.keys.values())
    try:
        for index, frame in enumerate(script):
            context.frame, context.now = index, frame.now
            context.jobs.deliver()
            if index == 0:
                context.reading_until = frame.now + context.reading_s
            if frame.now < context.reading_until:
                kept = tuple(a for a in frame.actions if a is not api.Action.CONFIRM or a in frame.typed)
                frame = replace(frame, actions=kept, reading=True)
            if set(frame.inputs) - inputs:
                raise ValueError(f"moment {index}: inputs {frame.inputs} are not all {experience.name}'s keys")
            target = scene.update(context, frame) if index else scene.enter(context, frame)
            if target is not None:
                if target not in (api.ATTRACT, api.MENU, *(offer.name for offer in context.offers)):
                    raise ValueError(f"experience {experience.name} asked for {target!r}, which is not offered")
                _exit(context, scene, "done")
                return Result(context, target, "done")
            scene.draw(context, frame)
    except Exception:
        _exit(context, scene, "failed")
        raise
    _exit(context, scene, end)
    return Result(context, None, end)


def _exit(context: FakeContext, scene: api.Scene, reason: str) -> None:
    context.jobs.cancel()
    context.exits.append(reason)
    scene.exit(context, reason)
