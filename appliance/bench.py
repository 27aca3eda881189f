"""`bench`: the full pipeline, headless and unpaced, timed per stage (p50/p95 in ms).

Stages run one after another on the calling thread so each is timed alone:
capture (decode the next frame), segmentation (pre-processing, inference and the
full-resolution matte), hands (tracking, the hand search when needed, gestures),
pose (with ``--models …,pose``: every person's landmarks, tracked, the detector
when someone is missing), face (with ``--models …,face``: every face's mesh,
tracked, the face detector when a face is missing), composite (the world drawn on the
display: numpy's chain and its blit, or the GPU's upload and draws; ``--compositor``), present
(the flip: SDL's dummy driver headless, the screen with ``--on-screen``), total (all of them);
and CPU time: each stage's own thread's (``cpu_stages``, p50/p95 ms: with ``--threads 1``
all of a model's work, so a stage's cost on a board's core scales from it, whatever else
the machine is doing) and the process's a frame (all its threads).
With ``[inference] parallel`` segmentation, hands, pose and face run at once in
their lanes, each timed in its own thread.  ``--models`` picks what perception
runs, as an experience's needs would (default: the default experience's,
segmentation and hands); ``--profile cpu-board`` caps them as an RK3399 would
(perception/profile.py); ``--cores N`` keeps the whole frame path to N cores with N
inference threads a model (``--cores 1``: a one-core board's proxy).  The report counts the people pose found per frame
(``people``: p50 and max) and the faces face found (``faces``), so a 2-person
run says it was one.  ``--models campaign`` runs every model the campaign's experiences ask for
and, on the last warm-up frame (every perception model loaded), makes one photo and its styles'
samples as a kiosk's first photo does and paints it in each style, so ``peak_rss_mb`` is the
appliance's memory with every model of the campaign loaded and its costliest style being painted.
Targets live here and in the README, never in timed tests.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.config import Config
from appliance.content import Bundle, load_bundle
from appliance.errors import ApplianceError
from appliance.experience.registry import installed
from appliance.fleet.sysinfo import process_peak_rss_mb
from appliance.inference.backend import Inference
from appliance.kiosk.display import DisplayMode
from appliance.kiosk.gpu_display import open_display
from appliance.kiosk.machine import NAVIGATION
from appliance.media import DEFAULT_LIMITS, MediaLimits
from appliance.perception.face_tracker import FaceSettings
from appliance.perception.matte import MatteSettings
from appliance.perception.needs import EVERY_FRAME, MODELS, Needs
from appliance.perception.pipeline import DEFAULT_NEEDS, Perceiver
from appliance.perception.pose_tracker import PoseSettings
from appliance.perception.profile import FULL, Profile
from appliance.perception.still_faces import StillFaces
from appliance.photo.compose import compose_photo
from appliance.photo.style import desk_and_styles, sample_picture, samples, styled_photo
from appliance.render.gpu import NO_PICTURE
from appliance.sources.base import FrameSource
from appliance.stats import StageStats

#: Frames run before timing starts: interpreter warm-up, first allocations, caches.
WARMUP_FRAMES = 10


@dataclass(frozen=True)
class BenchSetup:
    source: FrameSource
    inference: Inference
    content: Path
    world: int = 0
    screen: tuple[int, int] = (1920, 1080)
    matte: MatteSettings = MatteSettings()
    limits: MediaLimits = DEFAULT_LIMITS
    needs: Needs = DEFAULT_NEEDS
    parallel: bool = False
    pose: PoseSettings = PoseSettings()
    face: FaceSettings = FaceSettings()
    profile: Profile = FULL
    cores: list[int] | None = None    # the CPUs the process was kept to (``--cores``), None: all it may use
    compositor: str = "cpu"           # [display] compositor: auto, gpu or cpu
    on_screen: bool = False           # a window on the screen (a board's GPU) instead of SDL's dummy driver
    photo: Config | None = None       # make a first photo as the kiosk would, with this config (``--models campaign``)


def pin_to_cores(count: int) -> list[int]:
    """Keep this process to the first ``count`` CPUs it may use (the threads it starts from now on with it):
    ``bench --cores 1`` is a one-core board's proxy.  Returns the CPUs kept."""
    allowed = sorted(os.sched_getaffinity(0))
    if not 1 <= count <= len(allowed):
        raise ApplianceError(f"--cores {count}: this process may use {len(allowed)} core(s) here")
    os.sched_setaffinity(0, allowed[:count])
    return allowed[:count]


def campaign_needs(bundle: Bundle) -> Needs:
    """What perception runs for every experience ``bundle`` offers at once, with the kiosk's navigation."""
    registry, needs = installed(), NAVIGATION
    for name in bundle.experiences:
        needs = needs.union(registry[name].needs_for(bundle.configs.get(name)))
    return needs


def first_photo(config: Config, inference: Inference, bundle: Bundle, world: str, frame: np.ndarray) -> None:
    """What a kiosk's photos load, by making one as it does: the photo desk's models, every style's (its
    samples), the still faces'; the photo is painted in every style the campaign offers, one after another as
    shoppers may pick them, so the peak includes the costliest (the finest stroke paints the largest image)."""
    desk, styler = desk_and_styles(bundle, world, inference, config.media, config.pose.settings(),
                                   StillFaces(inference, config.face.settings()))
    photo = compose_photo(frame, desk)
    samples(styler, sample_picture(desk.background, desk.star))
    for name in styler.styles:
        styled_photo(photo, styler, name, desk.config.jpeg_quality, desk.config.screen_size())


def needs_of(models: str | None, bundle: Bundle | None = None) -> Needs:
    """``--models segmentation,hands,pose@15`` as Needs: every frame each, or ``@N`` times a second (as an
    experience may ask); None is the default experience's needs; ``campaign`` is ``bundle``'s every experience's."""
    if models is None:
        return DEFAULT_NEEDS
    if models == "campaign":
        if bundle is None:
            raise ApplianceError("--models campaign: no campaign bundle to read the experiences of")
        return campaign_needs(bundle)
    rates: dict[str, float] = {}
    for item in (item.strip() for item in models.split(",")):
        if not item:
            continue
        name, _, rate = item.partition("@")
        if name not in MODELS:
            raise ApplianceError(f"--models: unknown model {name!r} (known: {', '.join(MODELS)})")
        try:
            rates[name] = float(rate) if rate else EVERY_FRAME
            if rate and not 0 < rates[name] <= 240:
                raise ValueError(rate)
        except ValueError as exc:
            raise ApplianceError(f"--models {item}: a rate is @N times a second, 0 < N <= 240") from exc
    try:
        return Needs(**{model: rates.get(model, 0) for model in MODELS})
    except ValueError as exc:   # a model that needs another (age needs face)
        raise ApplianceError(f"--models {models}: {exc}") from exc


def run_bench(setup: BenchSetup, frames: int) -> dict:
    if frames < 1:
        raise ApplianceError("--frames must be at least 1")
    bundle = load_bundle(setup.content)
    if not 0 <= setup.world < len(bundle.scenes):
        raise ApplianceError(f"--world {setup.world}: the bundle has {len(bundle.scenes)} world(s)")
    perceiver = Perceiver(setup.inference, setup.matte, setup.parallel, setup.pose, setup.face,
                          profile=setup.profile)
    display = open_display(DisplayMode.WINDOWED if setup.on_screen else DisplayMode.HEADLESS, setup.screen,
                           setup.compositor)
    scene = bundle.scenes[setup.world]
    stats = StageStats(window=frames)
    cpu_stats = StageStats(window=frames)
    people: list[int] = []
    faces: list[int] = []
    timed_start = cpu_start = 0.0
    try:
        painter = display.painter(scene, bundle.directory, setup.limits)
        for index in range(WARMUP_FRAMES + frames):
            if index == WARMUP_FRAMES:
                timed_start, cpu_start = time.perf_counter(), time.process_time()
            t0, c0 = time.perf_counter(), time.thread_time()
            frame = setup.source.read()
            t1, c1 = time.perf_counter(), time.thread_time()
            if index == WARMUP_FRAMES - 1 and setup.photo is not None:
                first_photo(setup.photo, setup.inference, bundle, scene.id, frame.image)
                t1, c1 = time.perf_counter(), time.thread_time()
            perception = perceiver.process(frame, setup.needs)
            t2, c2 = time.perf_counter(), time.thread_time()
            painter.paint(frame.image, perception.alpha, time.monotonic(), NO_PICTURE)   # as most experiences
            t3, c3 = time.perf_counter(), time.thread_time()
            display.flip()
            t4, c4 = time.perf_counter(), time.thread_time()
            if index >= WARMUP_FRAMES:
                people.append(len(perception.poses))
                faces.append(len(perception.faces))
                stats.add_all({"capture": (t1 - t0) * 1000, **perception.timings_ms,
                               "composite": (t3 - t2) * 1000, "present": (t4 - t3) * 1000,
                               "total": (t4 - t0) * 1000})
                cpu_stats.add_all({"capture": (c1 - c0) * 1000, **perception.cpu_ms,
                                   "composite": (c3 - c2) * 1000, "present": (c4 - c3) * 1000})
        elapsed, cpu = time.perf_counter() - timed_start, time.process_time() - cpu_start
    finally:
        perceiver.close()
        display.close()
        setup.source.close()
    return {
        "frames": frames,
        "fps": round(frames / elapsed, 2),
        "cpu_ms_per_frame": round(cpu * 1000 / frames, 2),
        "backend": setup.inference.backend_summary,
        "models": [model for model in MODELS if setup.needs.wants(model)],
        "parallel": setup.parallel or setup.profile.lanes,
        "profile": setup.profile.name,
        "cores": setup.cores,
        "threads": setup.inference.options.threads,
        "source": setup.source.description,
        "screen": list(display.size),
        "compositor": display.compositor,
        "renderer": display.renderer_name,
        "stages": stats.summary(),
        "cpu_stages": cpu_stats.summary(),
        **({"people": _counts(people)} if setup.needs.wants("pose") else {}),
        **({"faces": _counts(faces)} if setup.needs.wants("face") else {}),
        "peak_rss_mb": process_peak_rss_mb(),
    }


def _counts(per_frame: list[int]) -> dict:
    return {"p50": float(sorted(per_frame)[len(per_frame) // 2]), "max": max(per_frame)}


def format_table(result: dict) -> str:
    lines = [f"{result['frames']} frames from {result['source']} to {result['screen'][0]}x{result['screen'][1]}, "
             f"backend {result['backend']}, profile {result['profile']}, "
             f"{'cores ' + ','.join(map(str, result['cores'])) if result['cores'] else 'all cores'}, "
             f"{result['threads']} inference thread(s) a model, {result['compositor']} compositor "
             f"({result['renderer']}): {result['fps']} fps, "
             f"{result['cpu_ms_per_frame']} ms of CPU a frame (all threads), peak RSS {result['peak_rss_mb']} MB",
             f"{'stage':<14}{'p50 ms':>10}{'p95 ms':>10}{'CPU p50':>10}{'CPU p95':>10}"]
    for stage, summary in result["stages"].items():
        cpu = result["cpu_stages"].get(stage)
        lines.append(f"{stage:<14}{summary['p50']:>10.2f}{summary['p95']:>10.2f}"
                     + (f"{cpu['p50']:>10.2f}{cpu['p95']:>10.2f}" if cpu else ""))
    return "\n".join(lines)
