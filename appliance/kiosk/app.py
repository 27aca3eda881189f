"""The kiosk's render loop: newest perception in, scene state machine, composite out to the display.

Threads: capture (source → frame slot) and perception (frame slot → result
slot) run beside this loop; the loop only ever takes the newest result, so a
slow stage drops frames instead of adding latency.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from appliance.alerts import Alerts
from appliance.config import Config
from appliance.content import Bundle, SceneSpec, load_bundle
from appliance.errors import ApplianceError, one_line
from appliance.events import EventBus
from appliance.kiosk.display import Display
from appliance.kiosk.navigation import Action, Navigator
from appliance.kiosk.presence import Presence
from appliance.kiosk.scenes import all_scenes
from appliance.kiosk.session import Sessions
from appliance.kiosk.tick import NO_GESTURES, Scene, Tick
from appliance.media import verify_media
from appliance.perception.pipeline import Perception, PerceptionThread
from appliance.readiness import Readiness
from appliance.render.compositor import Compositor
from appliance.service.logging import journal_context
from appliance.service.notify import ServiceNotifier
from appliance.slot import LatestSlot
from appliance.sources.capture import CaptureThread
from appliance.stats import RateMeter, StageStats

log = logging.getLogger(__name__)

#: What the attract scene composites before any camera frame has arrived.
PLACEHOLDER_FRAME_SIZE = (1280, 720)
#: Redraw at least this often without a new frame, so snow keeps falling.
IDLE_REDRAW_S = 1 / 30
#: How often the campaign schedule is asked which bundle to show.
BUNDLE_CHECK_S = 1.0
#: Exit status asking the service manager for a restart (EX_TEMPFAIL; the unit restarts on failure).
RESTART_STATUS = 75
#: A source problem lasting this long is a ``camera`` alert to the fleet (shorter blips are retried quietly).
CAMERA_ALERT_AFTER_S = 3.0
#: With ``--frames`` and no camera frame at all for this long, ``run`` gives up with the source's problem.
FRAMES_GIVE_UP_S = 10.0


class BundleSource(Protocol):
    """The campaign schedule (campaigns.scheduler.Scheduler): what to show, what is shown, what failed."""

    def pick(self) -> Path: ...

    def shown(self, bundle: Path) -> None: ...

    def failed(self, bundle: Path, reason: str) -> None: ...


@dataclass
class ScreenRequest:
    done: threading.Event = field(default_factory=threading.Event)
    image: np.ndarray | None = None
#: The technician's keyboard, standing in for gestures (F2 and Ctrl+Q are handled apart).
KEY_ACTIONS = {
    "left": Action.PREVIOUS, "right": Action.NEXT, "return": Action.CONFIRM, "enter": Action.CONFIRM,
    "backspace": Action.BACK, "r": Action.ROCK, "p": Action.PAPER, "s": Action.SCISSORS,
}


@dataclass
class Workers:
    capture: CaptureThread
    perception: PerceptionThread
    results: LatestSlot[Perception]

    @property
    def problem(self) -> str | None:
        return self.capture.problem or self.perception.problem


class Kiosk:
    """Owns the display and the scenes; scenes draw through ``show_composite`` and ``display``.

    ``events`` is the kiosk's one event bus (the fleet link drains it); ``rng`` decides the
    RPS star's throws, injectable so a test can fix them.
    """

    def __init__(self, config: Config, display: Display, bundle: Bundle, workers: Workers,
                 backend: str, events: EventBus | None = None, rng: random.Random | None = None,
                 alerts: Alerts | None = None) -> None:
        self.config = config
        self.display = display
        self.bundle = bundle
        journal_context.update(campaign=bundle.name)
        self.workers = workers
        self.backend = backend
        self.events = events if events is not None else EventBus()
        #: What is wrong now, for the fleet's status (a camera that stays away, a campaign that broke).
        self.alerts = alerts if alerts is not None else Alerts()
        #: Ready by the one rule (see appliance.readiness); ``on_ready`` hooks are called once, with the reason.
        self.readiness = Readiness()
        self.on_ready: list[Callable[[str], None]] = []
        #: (seconds, hook): each hook is called once, on this loop, when the kiosk is not ready that long
        #: after its first frame.
        self.not_ready_by: list[tuple[float, Callable[[], None]]] = []
        self._problem_since: float | None = None
        self._last_failure: str | None = None
        self.rng = rng if rng is not None else random.Random()
        self.navigator = Navigator()
        self.sessions = Sessions(self.events, self.navigator)
        self.world_index = 0
        self.on_world_change: Callable[[float], None] | None = None
        #: systemd's READY/WATCHDOG/STATUS link; None when not run by systemd (see service.notify).
        self.notifier: ServiceNotifier | None = None
        #: The campaign schedule's current bundle directory; None when no fleet side runs.
        self.bundle_source: BundleSource | None = None
        self._bundle_checked = float("-inf")
        self._refused_bundle: Path | None = None
        self.stats = StageStats()
        self.shown = RateMeter()
        self.overlay = False
        self.frames_shown = 0
        self._compositors: dict[int, Compositor] = {}
        self._empty: dict[tuple[int, int], np.ndarray] = {}
        self._images: dict[tuple[str, int], Any] = {}
        self._scenes = all_scenes()
        self._presence = Presence(config.kiosk.person_enter, config.kiosk.person_leave,
                                  config.kiosk.attract_after_s)
        self._running = True
        self._exit_status = 0
        self._grab_lock = threading.Lock()
        self._grab_requests: list[ScreenRequest] = []
        self._reload_requested = False

    @property
    def world(self) -> SceneSpec:
        return self.bundle.scenes[self.world_index]

    def compositor(self) -> Compositor:
        """The current world's compositor.  A world that cannot be built breaks its whole bundle: the
        schedule is told (the campaign side falls back to the last good campaign, with an alert) and the
        next frame between sessions shows what it picks instead, so the failure shows once, not every frame."""
        if self.world_index not in self._compositors:
            try:
                self._compositors[self.world_index] = self._build_compositor(self.world, self.bundle)
            except ApplianceError as exc:
                self._refused_bundle, self._reload_requested = self.bundle.directory, True
                if self.bundle_source:
                    self.bundle_source.failed(self.bundle.directory, one_line(exc))
                raise
        return self._compositors[self.world_index]

    def _build_compositor(self, scene: SceneSpec, bundle: Bundle) -> Compositor:
        return Compositor(scene, bundle.directory, self.display.size, limits=self.config.media)

    def follow_campaign(self, now: float) -> None:
        """Once a second, show the bundle the campaign schedule picks (called between sessions only,
        so nobody's game changes under them).  Every world is decoded before the switch, so a bundle
        that cannot be shown is found here, not frame after frame on screen: it is logged once, the
        schedule is told (it falls back to the last good campaign and raises the alert) and the
        current bundle stays."""
        if now - self._bundle_checked < BUNDLE_CHECK_S and not self._reload_requested:
            return
        self._bundle_checked = now
        path = self.bundle_source.pick() if self.bundle_source else self.bundle.directory
        reload, self._reload_requested = self._reload_requested, False
        if not reload and (path == self.bundle.directory or path == self._refused_bundle):
            return
        try:
            bundle = load_bundle(path)
            compositors = {index: self._build_compositor(scene, bundle) for index, scene in enumerate(bundle.scenes)}
            if bundle.rps:
                for image in bundle.rps.images().values():
                    verify_media(bundle.directory / image, self.config.media)
        except ApplianceError as exc:
            self._refused_bundle = path
            log.error("campaign bundle %s cannot be shown, keeping %s: %s", path, self.bundle.name, exc)
            if self.bundle_source:
                self.bundle_source.failed(path, one_line(exc))
            return
        log.info("showing campaign %s (%s)", bundle.name, path)
        self.bundle, self.world_index = bundle, 0
        journal_context.update(campaign=bundle.name)
        self._compositors = compositors
        self._images.clear()
        self._refused_bundle = None
        if self.bundle_source:
            self.bundle_source.shown(path)

    def switch_world(self, step: int, now: float) -> None:
        self.world_index = (self.world_index + step) % len(self.bundle.scenes)
        log.info("world %s", self.world.id)
        if self.on_world_change:
            self.on_world_change(now)

    def empty_alpha(self, frame: np.ndarray) -> np.ndarray:
        shape = frame.shape[:2]
        if shape not in self._empty:
            self._empty[shape] = np.zeros(shape, np.uint8)
        return self._empty[shape]

    def show_composite(self, frame: np.ndarray | None, alpha: np.ndarray | None, now: float) -> np.ndarray:
        """Composite the current world over ``frame`` (a placeholder when None), blit it and return it."""
        if frame is None:
            width, height = PLACEHOLDER_FRAME_SIZE
            frame = np.zeros((height, width, 3), np.uint8)
            alpha = self.empty_alpha(frame)
        started = time.perf_counter()
        image = self.compositor().compose(frame, alpha, now)
        composed = time.perf_counter()
        self.display.show(image)
        self.stats.add("composite", (composed - started) * 1000)
        self.stats.add("present", (time.perf_counter() - composed) * 1000)
        return image

    def image(self, relative: str, height: int) -> Any:
        """A bundle image as a display surface of ``height`` pixels, decoded once per size."""
        key = (relative, height)
        if key not in self._images:
            self._images[key] = self.display.load_image(self.bundle.directory / relative, height, self.config.media)
        return self._images[key]

    def publish(self, type: str, data: dict[str, Any]) -> None:
        """An event of the current shopper's session."""
        self.events.publish(type, {"session": self.sessions.current, **data})

    def draw_hand(self, tick: Tick, progress: float) -> None:
        """The cursor at the driving hand's palm, where the shopper sees it on the mirrored screen,
        with the open palm's ``progress`` (0..1) as a ring around it."""
        primary = tick.gestures.primary
        if primary is None or tick.perception is None:
            return
        height, width = tick.perception.frame.image.shape[:2]
        x, y = self.compositor().screen_point(primary.hand.palm_centre, (width, height))
        centre, radius = (round(x), round(y)), max(8, self.display.size[1] // 30)
        self.display.circle(centre, radius, (255, 255, 255), opacity=0.35)
        self.display.circle(centre, radius, (255, 255, 255), width=max(2, radius // 8))
        self.display.ring(centre, radius + radius // 2, progress, (255, 214, 90), max(3, radius // 4))

    def stop(self, exit_status: int = 0) -> None:
        """End the loop after this frame; ``run`` returns ``exit_status`` (RESTART_STATUS: start me again)."""
        self._exit_status = exit_status
        self._running = False

    def grab_screen(self, timeout: float = 2.0) -> np.ndarray:
        """A copy of what the screen shows, taken by the render loop (the only thread that may touch
        pygame) at the end of its next frame; for the fleet's screenshot command."""
        request = ScreenRequest()
        with self._grab_lock:
            self._grab_requests.append(request)
        if not request.done.wait(timeout):
            raise ApplianceError(f"the render loop did not answer within {timeout:.0f} s (frozen or stopped)")
        return request.image

    def request_reload(self) -> None:
        """Load the campaign's bundle again from disk at the next frame between sessions."""
        self._reload_requested = True

    def _answer_screen_requests(self) -> None:
        with self._grab_lock:
            requests, self._grab_requests = self._grab_requests, []
        if requests:
            image = self.display.snapshot()
            for request in requests:
                request.image = image
                request.done.set()

    def _handle_events(self) -> tuple[Action, ...]:
        """Window and technician keys; returns the keys that stand in for gestures."""
        import pygame

        typed = []
        for event in self.display.events():
            if event.type == pygame.QUIT:
                self.stop()
            elif event.type == pygame.KEYDOWN:
                if event.key == pygame.K_q and event.mod & pygame.KMOD_CTRL:
                    self.stop()
                elif event.key == pygame.K_F2:
                    self.overlay = not self.overlay
                elif pygame.key.name(event.key) in KEY_ACTIONS:
                    typed.append(KEY_ACTIONS[pygame.key.name(event.key)])
        return tuple(typed)

    def _draw_overlay(self, tick: Tick, scene: Scene) -> None:
        lines = [f"{self.shown.rate:5.1f} fps shown · scene {scene.name} · world {self.world.id} · "
                 f"backend {self.backend} · source {self.workers.capture.source.description}"]
        for stage, summary in sorted(self.stats.summary().items()):
            lines.append(f"{stage:>13s}  p50 {summary['p50']:6.2f} ms   p95 {summary['p95']:6.2f} ms")
        if tick.perception:
            lines.append(f"person coverage {tick.perception.coverage:.2f} · present {tick.present}")
        if tick.source_problem:
            lines.append(f"problem: {tick.source_problem}")
        for row, line in enumerate(lines):
            self.display.text(line, (12, 12 + row * 26), size=26, colour=(120, 255, 120), backdrop=True)

    def _draw_failsafe(self, error: Exception) -> None:
        width, height = self.display.size
        self.display.show(np.full((height, width, 3), 24, np.uint8))
        self.display.text("Back in a moment", (width // 2, height // 2), size=height // 12, anchor="center")
        if str(error) != self._last_failure:   # a failure that repeats frame after frame is logged once
            self._last_failure = str(error)
            log.error("scene failed, showing the failsafe screen: %s", error, exc_info=error)

    def run(self, max_frames: int | None = None) -> int:
        """Loop until Ctrl+Q / window close, or until ``max_frames`` camera frames were shown."""
        scene: Scene = self._scenes["attract"]
        seen = 0
        start = time.monotonic()
        scene.enter(self, Tick(None, start, False, None))
        while self._running and (max_frames is None or self.frames_shown < max_frames):
            version, perception = self.workers.results.newer_than(seen, IDLE_REDRAW_S)
            now = time.monotonic()
            typed = self._handle_events()
            fresh = version != seen
            present = self._presence.present
            if fresh and perception is not None:
                seen = version
                self.stats.add_all(perception.timings_ms)
                present = self._presence.update(perception.coverage, now)
            gestured = self.navigator.update(perception.gestures if perception else NO_GESTURES, now)
            tick = Tick(perception, now, present, self.workers.problem, typed + tuple(gestured), typed,
                        self.navigator.back.progress(now))
            self.sessions.update(present, now)
            if scene.name == "attract":
                self.follow_campaign(now)
            try:
                following = scene.next_scene(self, tick)
                if following:
                    scene.exit(self)
                    scene = self._scenes[following]
                    scene.enter(self, tick)
                    log.info("scene %s", following)
                scene.draw(self, tick)
            except Exception as error:  # noqa: BLE001 - the failsafe screen is the edge for scene bugs
                self._draw_failsafe(error)
                scene = self._scenes["attract"]
                scene.enter(self, tick)
            if self.overlay:
                self._draw_overlay(tick, scene)
            self.display.flip()
            self._answer_screen_requests()
            if fresh and perception is not None:
                self.frames_shown += 1
                self.shown.tick(now)
                self.stats.add("latency", (time.monotonic() - perception.frame.captured_at) * 1000)
            if self.notifier is not None:
                if fresh and perception is not None:
                    self.notifier.frame_shown(now, self.shown.rate, self.backend, self.bundle.name)
                else:
                    self.notifier.frame_missed(now, self.workers.problem)
            self._watch(now, fresh and perception is not None, max_frames is not None)
        return self._exit_status

    def _watch(self, now: float, frame_shown: bool, counting_frames: bool) -> None:
        """Readiness, the camera alert, and giving up a ``--frames`` run that no camera frame will end."""
        problem = self.workers.capture.problem
        why = self.readiness.update(now, frame_shown, self.workers.problem)
        if why:
            for hook in self.on_ready:
                hook(why)
        for deadline in [deadline for deadline in self.not_ready_by if self.readiness.overdue(now, deadline[0])]:
            self.not_ready_by.remove(deadline)
            deadline[1]()
        if problem is None:
            self._problem_since = None
            self.alerts.clear("camera")
            return
        self._problem_since = self._problem_since if self._problem_since is not None else now
        if now - self._problem_since >= CAMERA_ALERT_AFTER_S:
            self.alerts.raise_alert("camera", problem)
        if counting_frames and self.frames_shown == 0 and now - self._problem_since >= FRAMES_GIVE_UP_S:
            raise ApplianceError(f"{problem}: no camera frame within {FRAMES_GIVE_UP_S:.0f} s "
                                 "(--frames counts camera frames shown)")
