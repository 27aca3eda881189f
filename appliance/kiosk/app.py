"""The kiosk's render loop: newest perception in, scene state machine, composite out to the display.

Threads: capture (source → frame slot) and perception (frame slot → result
slot) run beside this loop; the loop only ever takes the newest result, so a
slow stage drops frames instead of adding latency.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from appliance.config import Config
from appliance.content import Bundle, SceneSpec
from appliance.kiosk.display import Display
from appliance.kiosk.presence import Presence
from appliance.kiosk.scenes import Scene, Tick, all_scenes
from appliance.perception.pipeline import Perception, PerceptionThread
from appliance.render.compositor import Compositor
from appliance.slot import LatestSlot
from appliance.sources.capture import CaptureThread
from appliance.stats import RateMeter, StageStats

log = logging.getLogger(__name__)

#: What the attract scene composites before any camera frame has arrived.
PLACEHOLDER_FRAME_SIZE = (1280, 720)
#: Redraw at least this often without a new frame, so snow keeps falling.
IDLE_REDRAW_S = 1 / 30


@dataclass
class Workers:
    capture: CaptureThread
    perception: PerceptionThread
    results: LatestSlot[Perception]

    @property
    def problem(self) -> str | None:
        return self.capture.problem or self.perception.problem


class Kiosk:
    """Owns the display and the scenes; scenes draw through ``show_composite`` and ``display``."""

    def __init__(self, config: Config, display: Display, bundle: Bundle, workers: Workers,
                 backend: str) -> None:
        self.config = config
        self.display = display
        self.bundle = bundle
        self.workers = workers
        self.backend = backend
        self.world_index = 0
        self.on_world_change: Callable[[float], None] | None = None
        self.stats = StageStats()
        self.shown = RateMeter()
        self.overlay = False
        self.frames_shown = 0
        self._compositors: dict[int, Compositor] = {}
        self._empty: dict[tuple[int, int], np.ndarray] = {}
        self._scenes = all_scenes()
        self._presence = Presence(config.kiosk.person_enter, config.kiosk.person_leave,
                                  config.kiosk.attract_after_s)
        self._running = True

    @property
    def world(self) -> SceneSpec:
        return self.bundle.scenes[self.world_index]

    def compositor(self) -> Compositor:
        if self.world_index not in self._compositors:
            self._compositors[self.world_index] = Compositor(self.world, self.bundle.directory, self.display.size)
        return self._compositors[self.world_index]

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

    def show_composite(self, frame: np.ndarray | None, alpha: np.ndarray | None, now: float) -> None:
        """Composite the current world over ``frame`` (a placeholder when None) and blit it."""
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

    def stop(self) -> None:
        self._running = False

    def _handle_events(self, now: float) -> None:
        import pygame

        for event in self.display.events():
            if event.type == pygame.QUIT:
                self.stop()
            elif event.type == pygame.KEYDOWN:
                if event.key == pygame.K_q and event.mod & pygame.KMOD_CTRL:
                    self.stop()
                elif event.key == pygame.K_F2:
                    self.overlay = not self.overlay
                elif event.key in (pygame.K_RIGHT, pygame.K_LEFT):
                    self.switch_world(1 if event.key == pygame.K_RIGHT else -1, now)

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
            self._handle_events(now)
            fresh = version != seen
            present = self._presence.present
            if fresh and perception is not None:
                seen = version
                self.stats.add_all(perception.timings_ms)
                present = self._presence.update(perception.coverage, now)
            tick = Tick(perception, now, present, self.workers.problem)
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
            if fresh and perception is not None:
                self.frames_shown += 1
                self.shown.tick(now)
                self.stats.add("latency", (time.monotonic() - perception.frame.captured_at) * 1000)
        return 0
