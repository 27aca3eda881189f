"""The kiosk's render loop: newest perception in, the experiences' state machine, composite out to the display.

Threads: capture (source → frame slot), perception (frame slot → result slot) and
jobs run beside this loop; the loop only ever takes the newest result, so a slow
stage drops frames instead of adding latency, and it never waits on a job.

The state machine: ``attract`` while nobody is in front (or no camera works), the
menu and the experiences it offers while somebody is, and the failsafe state when
an experience's hook raises (``appliance.kiosk.failsafe``: the scene's ``exit`` is
called, the failure logged with a rate limit, an experience that keeps failing is
disabled for the day and reported as an ``experience`` alert).  Experiences are
plug-ins (``appliance.experience``): the kiosk gives each a ``SceneContext`` and
never imports one.  CONFIRM is held back for the reading time (``[kiosk]
reading_s``) after an experience starts or shows a new choice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from appliance.alerts import Alerts
from appliance.config import Config
from appliance.content import Bundle, SceneSpec, load_bundle
from appliance.errors import ApplianceError, one_line
from appliance.events import EventBus
from appliance.experience.api import ATTRACT, Action, Experience, Moment, Needs, Offer, screen_corners
from appliance.experience.registry import Registry, declared_api, installed
from appliance.kiosk.context import ExperienceJobs, KioskStage, SceneContext, ScreenCanvas
from appliance.kiosk.display import Display, ScenePainter
from appliance.kiosk.gpu_display import RendererDisplay
from appliance.kiosk.jobs import JobRunner
from appliance.kiosk.keepsakes import KioskKeepsakes
from appliance.kiosk.machine import Core, Machine
from appliance.kiosk.navigation import Navigator
from appliance.kiosk.presence import Presence
from appliance.kiosk.session import Sessions
from appliance.media import read_image, verify_media
from appliance.perception.body import FACE
from appliance.perception.hand import GestureState
from appliance.perception.pipeline import Perception, PerceptionThread
from appliance.readiness import Readiness
from appliance.render.gpu import NO_PICTURE, PREVIEW, SCREEN
from appliance.render.layout import Layout, head_box, landmarks_box
from appliance.service.logging import journal_context
from appliance.service.notify import ServiceNotifier
from appliance.slot import LatestSlot
from appliance.sources.capture import CaptureThread
from appliance.stats import RateMeter, StageStats

log = logging.getLogger(__name__)

#: Redraw at least this often without a new frame, so snow keeps falling.
IDLE_REDRAW_S = 1 / 30
#: How often the campaign schedule is asked which bundle to show.
BUNDLE_CHECK_S = 1.0
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
#: The technician's keyboard, standing in for gestures (F2 and Ctrl+Q are handled apart); the current
#: experience's own keys (``Experience.keys``) come as ``Moment.inputs``.
KEY_ACTIONS = {
    "left": Action.PREVIOUS, "right": Action.NEXT, "return": Action.CONFIRM, "enter": Action.CONFIRM,
    "backspace": Action.BACK,
}
NO_GESTURES = GestureState()


def picture_for(experience: Experience | None) -> str:
    """What ``experience`` gets back from Stage.show where the GPU composites: the screen itself when written
    before API 1.5 (its contract then), a preview copy when it reads the screen, else nothing."""
    if experience is None or not experience.reads_screen:
        return NO_PICTURE
    return PREVIEW if (declared_api(experience.api) or (0, 0)) >= (1, 5) else SCREEN


@dataclass
class Workers:
    capture: CaptureThread
    perception: PerceptionThread
    results: LatestSlot[Perception]

    @property
    def problem(self) -> str | None:
        return self.capture.problem or self.perception.problem


class Kiosk:
    """Owns the display, the experiences' state machine and their contexts.

    ``events`` is the kiosk's one event bus (the fleet link drains it); ``rng`` is the experiences'
    random source (the RPS star's throws), injectable so a test can fix it; ``registry`` the
    installed experiences; ``today`` the local day, for the quarantine.
    """

    def __init__(self, config: Config, display: Display | RendererDisplay, bundle: Bundle, workers: Workers,
                 backend: str, events: EventBus | None = None, rng: random.Random | None = None,
                 alerts: Alerts | None = None, registry: Registry | None = None,
                 today: Callable[[], str] = lambda: date.today().isoformat(),
                 notifier: ServiceNotifier | None = None, bundle_source: BundleSource | None = None,
                 keepsakes: KioskKeepsakes | None = None) -> None:
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
        self.rng = rng if rng is not None else random.Random()
        self.navigator = Navigator()
        self.sessions = Sessions(self.events, self.navigator, lambda: self.bundle.name)
        self.world_index = 0
        #: systemd's READY/WATCHDOG/STATUS link; None when not run by systemd (see service.notify).
        self.notifier = notifier
        #: The campaign schedule's current bundle directory; None when no fleet side runs.
        self.bundle_source = bundle_source
        self._bundle_checked = float("-inf")
        self._refused_bundle: Path | None = None
        self.stats = StageStats()
        self.shown = RateMeter()
        self.overlay = False
        self.frames_shown = 0
        self._painters: dict[int, ScenePainter] = {}
        self._broken: dict[int, str] = {}  # worlds of this bundle that cannot be built: shown dark, told once
        self._images: dict[tuple[str, int], Any] = {}
        self.registry = registry if registry is not None else installed()
        self.jobs = JobRunner()
        #: The photo desk (None: no photo booth on this screen).
        self.keepsakes = keepsakes
        if keepsakes is not None:
            keepsakes.attach(self.events.publish, lambda: self.sessions.current, lambda: (self.bundle, self.world.id))
        self._now = 0.0
        self._frame_perception: Any = None
        self._private_needs = False   # the experience shown guesses ages: fleet screenshots are blanked
        self._layout: Layout | None = None
        self._canvas = ScreenCanvas(display)
        self._stage = KioskStage(lambda: self.world, lambda: self.layout, self.show_perception, self.switch_world,
                                 self.draw_cursor, self._screen_point)
        core = Core(self._draw_failsafe, lambda moment: self.show_perception(moment.perception, False),
                    self._want, self._context,
                    lambda: self.config.kiosk.reading_s)
        self.machine = Machine(self.registry, core, self.alerts, self.jobs, today)
        self.machine.use(bundle)
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

    def painter(self) -> ScenePainter:
        """The current world's painter (its compositor on this display).  A world that cannot be built breaks its whole bundle: the
        schedule is told (the campaign side falls back to the last good campaign, with an alert) and the
        next frame between sessions shows what it picks instead, so the failure shows once, not every frame."""
        if self.world_index in self._broken:
            raise ApplianceError(self._broken[self.world_index])
        if self.world_index not in self._painters:
            try:
                self._painters[self.world_index] = self._build_painter(self.world, self.bundle)
            except ApplianceError as exc:
                self._broken[self.world_index] = one_line(exc)
                log.error("world %s of campaign %s cannot be shown: %s", self.world.id, self.bundle.name, exc)
                self._refused_bundle, self._reload_requested = self.bundle.directory, True
                if self.bundle_source:
                    self.bundle_source.failed(self.bundle.directory, one_line(exc))
                raise
        return self._painters[self.world_index]

    def _build_painter(self, scene: SceneSpec, bundle: Bundle) -> ScenePainter:
        return self.display.painter(scene, bundle.directory, self.config.media)

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
            bundle = load_bundle(path, self.registry)
            painters = {index: self._build_painter(scene, bundle) for index, scene in enumerate(bundle.scenes)}
            for _, image, _ in bundle.assets():
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
        self._painters, self._broken = painters, {}
        self._images.clear()
        moment = Moment(now, self._frame_perception)
        self.machine.switch_campaign(bundle, moment)
        self._refused_bundle = None
        if self.bundle_source:
            self.bundle_source.shown(path)

    def switch_world(self, step: int) -> None:
        self.world_index = (self.world_index + step) % len(self.bundle.scenes)
        log.info("world %s", self.world.id)

    def show_composite(self, frame: np.ndarray | None, alpha: np.ndarray | None, now: float) -> np.ndarray | None:
        """Draw the current world with ``frame`` cut in by ``alpha`` (``frame`` None: the world alone) and return
        the screen's picture (see ScenePainter; None where making one would cost and the experience shown
        declares it never reads it)."""
        started = time.perf_counter()
        painter = self.painter()
        picture = picture_for(self.registry[self.current] if self.current in self.registry else None)
        image = painter.paint_world(now, picture) if frame is None else painter.paint(frame, alpha, now, picture)
        self.stats.add("composite", (time.perf_counter() - started) * 1000)
        return image

    def image(self, relative: str, height: int) -> Any:
        """A bundle image as a display surface of ``height`` pixels, decoded once per size."""
        key = (relative, height)
        if key not in self._images:
            self._images[key] = self.display.load_image(self.bundle.directory / relative, height, self.config.media)
        return self._images[key]

    def publish(self, type: str, data: dict[str, Any]) -> None:
        """An event of the current shopper's session, in the campaign shown."""
        self.events.publish(type, {"session": self.sessions.current, "campaign": self.bundle.name, **data})

    # -- the stage, as experiences see it (appliance.kiosk.context.StageHost) --------------------------

    def show_perception(self, perception: Any, person: bool) -> np.ndarray | None:
        """The world with the person; a world that cannot be built is the campaign's failure, not the
        experience's: the screen stays dark until the schedule's next pick is shown (``painter``)."""
        try:
            if perception is None or not person:
                return self.show_composite(None, None, self._now)
            return self.show_composite(perception.frame.image, perception.alpha, self._now)
        except ApplianceError:
            width, height = self.display.size
            dark = np.full((height, width, 3), 24, np.uint8)
            self.display.show(dark)
            return dark

    def step_world(self, step: int) -> None:
        self.switch_world(step)

    @property
    def layout(self) -> Layout:
        """This frame's layout: clear of every shopper's face where the face mesh or pose gives one (their face
        landmarks; one head may be boxed twice, harmlessly), else of the head the mask shows (once a frame)."""
        if self._layout is None:
            perception = self._frame_perception
            heads: list[tuple[int, int, int, int]] = []
            if perception is not None:
                height, width = perception.alpha.shape[:2]
                boxes = [landmarks_box(face.landmarks, (width, height)) for face in perception.faces]
                boxes += [landmarks_box(pose.landmarks[list(FACE)][pose.landmarks[list(FACE), 3] >= 0.5],
                                        (width, height)) for pose in perception.poses]
                boxes = [box for box in boxes if box is not None] or [head_box(perception.alpha)]
                heads = [head for box in boxes if box is not None
                         and (head := self._screen_box(box, (width, height))) is not None]
            self._layout = Layout(self.display.size, heads)
        return self._layout

    def _screen_box(self, box: tuple[int, int, int, int], frame: tuple[int, int]) -> tuple[int, int, int, int] | None:
        """A camera box as the screen shows it (None while the world cannot be built)."""
        corners = screen_corners(self._stage, box, frame)
        if corners is None:
            return None
        left, top, right, bottom = corners
        return round(left), round(top), round(right - left), round(bottom - top)

    def _screen_point(self, point: tuple[float, float], frame: tuple[int, int]) -> tuple[float, float] | None:
        """Where a camera point shows on screen in the current world; None while the world cannot be built
        (the campaign's failure: see ``painter``)."""
        try:
            return self.painter().screen_point(point, frame)
        except ApplianceError:
            return None

    def draw_cursor(self, moment: Moment, progress: float) -> None:
        """The cursor at the driving hand's palm, where the shopper sees it on the mirrored screen,
        with the open palm's ``progress`` (0..1) as a ring around it."""
        primary = moment.gestures.primary
        if primary is None or moment.perception is None:
            return
        height, width = moment.perception.frame.image.shape[:2]
        point = self._screen_point(primary.hand.palm_centre, (width, height))
        if point is None:
            return
        x, y = point
        centre, radius = (round(x), round(y)), max(8, self.display.size[1] // 30)
        self.display.circle(centre, radius, (255, 255, 255), opacity=0.35)
        self.display.circle(centre, radius, (255, 255, 255), width=max(2, radius // 8))
        self.display.ring(centre, radius + radius // 2, progress, (255, 214, 90), max(3, radius // 4))

    # -- the experiences (appliance.kiosk.machine) ------------------------------------------------------

    def _context(self, name: str, bundle: Bundle) -> SceneContext:
        """Experience ``name``'s context for ``bundle``."""
        def submit(function: Callable[[], Any], job: str) -> Any:
            return self.jobs.submit(function, job, self.machine.token)

        keepsakes = self.keepsakes.for_jobs(submit) if self.keepsakes is not None else None
        return SceneContext(name, bundle.configs.get(name), self._canvas, self._stage, ExperienceJobs(submit),
                            self.rng, self.image, self.publish, self._new_screen, keepsakes,
                            lambda relative: read_image(bundle.directory / relative, limits=self.config.media))

    def _new_screen(self) -> None:
        self.machine.reading_until = self._now + self.config.kiosk.reading_s

    @property
    def current(self) -> str | None:
        """The experience shown now (None in the failsafe state or on the plain world)."""
        return self.machine.current

    @property
    def offers(self) -> tuple[Offer, ...]:
        return self.machine.offers

    def stop(self, exit_status: int = 0) -> None:
        """End the loop after this frame; ``run`` returns ``exit_status`` (service.status.RESTART_STATUS: start me again)."""
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

    def _want(self, needs: Needs) -> None:
        """The perception the experience shown asks for; while it guesses ages (a face shown with its age and
        gender), fleet screenshots are blanked as they are while a shopper's photo is on screen."""
        self._private_needs = needs.age > 0
        self.workers.perception.want(needs)

    def _answer_screen_requests(self) -> None:
        with self._grab_lock:
            requests, self._grab_requests = self._grab_requests, []
        if requests:
            image = self.display.snapshot()
            if self._private_needs or (self.keepsakes is not None and self.keepsakes.private_on):
                image = np.zeros_like(image)   # a shopper's photo, or their face with its age: never in a screenshot
            for request in requests:
                request.image = image
                request.done.set()

    def _handle_events(self) -> tuple[tuple[Action, ...], tuple[str, ...]]:
        """Window and technician keys: the actions their keys stand for, and every other key's name."""
        import pygame

        typed, names = [], []
        for event in self.display.events():
            if event.type == pygame.QUIT:
                self.stop()
            elif event.type == pygame.KEYDOWN:
                name = pygame.key.name(event.key)
                if event.key == pygame.K_q and event.mod & pygame.KMOD_CTRL:
                    self.stop()
                elif event.key == pygame.K_F2:
                    self.overlay = not self.overlay
                elif name in KEY_ACTIONS:
                    typed.append(KEY_ACTIONS[name])
                else:
                    names.append(name)
        return tuple(typed), tuple(names)

    def _draw_overlay(self, moment: Moment, present: bool, problem: str | None) -> None:
        lines = [f"{self.shown.rate:5.1f} fps shown · scene {self.current or 'failsafe'} · world {self.world.id} · "
                 f"backend {self.backend} · source {self.workers.capture.source.description}"]
        for stage, summary in sorted(self.stats.summary().items()):
            lines.append(f"{stage:>13s}  p50 {summary['p50']:6.2f} ms   p95 {summary['p95']:6.2f} ms")
        if moment.perception:
            lines.append(f"person coverage {moment.perception.coverage:.2f} · present {present}")
        if problem:
            lines.append(f"problem: {problem}")
        lines += self.machine.quarantine.reasons(self.machine.day)
        for row, line in enumerate(lines):
            self.display.text(line, (12, 12 + row * 26), size=26, colour=(120, 255, 120), backdrop=True)

    def _draw_failsafe(self) -> None:
        width, height = self.display.size
        self.display.show(np.full((height, width, 3), 24, np.uint8))
        self.display.text("Back in a moment", (width // 2, height // 2), size=height // 12, anchor="center")

    def run(self, max_frames: int | None = None) -> int:
        """Loop until Ctrl+Q / window close, or until ``max_frames`` camera frames were shown."""
        seen = 0
        self._now = time.monotonic()
        self.machine.start(Moment(self._now, None))   # each run starts at attract (``--frames`` runs, tests)
        while self._running and (max_frames is None or self.frames_shown < max_frames):
            version, perception = self.workers.results.newer_than(seen, IDLE_REDRAW_S)
            now = self._now = time.monotonic()
            typed, keys = self._handle_events()
            fresh = version != seen
            present = self._presence.present
            if fresh and perception is not None:
                seen = version
                self.stats.add_all(perception.timings_ms)
                present = self._presence.update(perception.coverage, now)
                if self.keepsakes is not None:
                    self.keepsakes.remember(perception)
            gestured = self.navigator.update(perception.gestures if perception else NO_GESTURES, now)
            problem = self.workers.problem
            self.jobs.deliver()
            if self.keepsakes is not None:
                self.keepsakes.tick()
            reading = now < self.machine.reading_until
            if reading:   # a fist confirms only once the screen could be read (a technician's Enter at once)
                gestured = [action for action in gestured if action is not Action.CONFIRM]
            actions = typed + tuple(gestured)
            own_keys = self.registry[self.current].keys if self.current in self.registry else {}
            moment = Moment(now, None if problem else perception, actions, typed,
                            tuple(own_keys[key] for key in keys if key in own_keys),
                            self.navigator.back.progress(now), reading)
            self._frame_perception, self._layout = moment.perception, None
            if present:   # a session starts before its first experience and ends after its last one's exit
                self.sessions.update(present, now)
            if self.current in (ATTRACT, None) and self.machine.failsafe is None:
                self.follow_campaign(now)
            self.machine.step(moment, away=not present or problem is not None)
            if not present:
                self.sessions.update(present, now)
            if self.overlay:
                self._draw_overlay(moment, present, problem)
            self._answer_screen_requests()   # before the flip: a GPU's back buffer is undefined after it
            flipping = time.perf_counter()
            self.display.flip()
            self.stats.add("present", (time.perf_counter() - flipping) * 1000)
            shown = fresh and perception is not None
            if shown:
                self.frames_shown += 1
                self.shown.tick(now)
                self.stats.add("latency", (time.monotonic() - perception.frame.captured_at) * 1000)
            if self.notifier is not None:
                failing = self.machine.streak.starving(now)
                if shown and not failing:
                    self.notifier.frame_shown(now, self.shown.rate, self.backend, self.bundle.name)
                else:
                    self.notifier.frame_missed(now, problem or ("experiences keep failing" if failing else None))
            self._watch(now, shown, max_frames is not None)
        return self._exit_status

    def close(self) -> None:
        """Ends the current run (its exit, reason ``stopped``) and the jobs' lanes."""
        self.machine.stop()
        self.jobs.stop()

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
