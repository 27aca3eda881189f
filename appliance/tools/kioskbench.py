"""The real kiosk, headless, measured: what it costs with nobody in front, its latency live, how fast it greets.

``python -m appliance.tools.kioskbench MODE [--seconds S] [--json]`` with MODE one of:

- ``idle``: a still of an empty scene (nobody in front) served like a 30 fps camera;
- ``live``: the devset's kiosk video (somebody in front) played at 30 fps;
- ``greet``: a looping video of the empty still for ``--empty-s`` seconds, then the kiosk video for
  ``--person-s``; each time the shopper steps in, the time from the capture of the first frame
  showing them to the first flip where the kiosk has left attract for them (the menu, or the first
  offer when there is no menu), over ``--reps`` arrivals.

Invariants:

- The kiosk is the one ``python -m appliance run --headless`` builds and runs
  (``appliance.compose.kiosk_session`` on the configuration ``run`` loads, then ``Kiosk.run``): the
  tool only picks the source and watches, by wrapping that kiosk's display flip (the time and the
  scene of every flip) and its source's read (the capture time of each shopper's first frame).
- CPU cores are the process's CPU time (user and system, every thread) over the wall time of the
  measured window, which starts after ``--warmup`` seconds; frames shown and the kiosk's stage stats
  (``latency`` is capture to flip) cover that window alone; the camera frames left unconverted
  (``CaptureThread.skipped``) count the whole run.
- The videos it plays are written to a temporary folder at ``--fps`` from the frames of its inputs
  (the devset video is 25 fps: its frames are played at 30, as a 30 fps camera would give them).
- Figures are for the README: no timed test asserts them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.errors import ApplianceError, command_line
from appliance.media import open_video, read_image
from appliance.preflight import run_config

MODES = ("idle", "live", "greet")
#: The empty scene served with nobody in front: a world background of the default campaign (no person in it).
EMPTY_STILL = Path(__file__).resolve().parents[2] / "content" / "default" / "street.png"
#: The devset's kiosk video: one person at webcam distance in every frame.
PERSON_VIDEO = "kiosk_fist_thumbup_720p.mp4"
#: How long the stage stats keep samples (longer than any window measured).
STATS_WINDOW = 100_000


@dataclass(frozen=True)
class Reading:
    """The process's CPU seconds and the kiosk's frames shown at one wall time."""

    wall: float
    cpu: float
    frames_shown: int

    @classmethod
    def now(cls, frames_shown: int) -> Reading:
        times = os.times()
        return cls(time.monotonic(), times.user + times.system, frames_shown)


def window_figures(start: Reading, end: Reading) -> dict[str, float]:
    """Cores used and frames shown per second between two readings."""
    wall = end.wall - start.wall
    if wall <= 0:
        raise ApplianceError(f"the measured window is {wall:.3f} s long: nothing to measure")
    return {"seconds": round(wall, 2), "cores": round((end.cpu - start.cpu) / wall, 3),
            "frames_shown_per_s": round((end.frames_shown - start.frames_shown) / wall, 2)}


@dataclass(frozen=True)
class Flip:
    """One flip of the screen: when, and whether the kiosk had left attract for a shopper."""

    at: float
    greeting: bool


def greeting_latencies(arrivals: list[float], flips: list[Flip]) -> list[float]:
    """For each arrival (the capture time of the first frame showing a shopper), the seconds until the first
    flip at or after it that greets them.

    ``flips`` are in time order.  ApplianceError, naming the arrival, when the kiosk was still greeting an
    earlier shopper when this one came (the empty stretch was shorter than the kiosk's leave time), or
    greeted nobody before the next arrival or the last flip.
    """
    latencies = []
    for number, arrived in enumerate(arrivals, 1):
        before = [flip for flip in flips if flip.at < arrived]
        if before and before[-1].greeting:
            raise ApplianceError(f"arrival {number} at {arrived:.3f} s: the kiosk still greeted the shopper before "
                                 "(make the empty stretch longer than [kiosk] attract_after_s)")
        until = arrivals[number] if number < len(arrivals) else float("inf")
        greeted = next((flip.at for flip in flips if arrived <= flip.at < until and flip.greeting), None)
        if greeted is None:
            raise ApplianceError(f"arrival {number} at {arrived:.3f} s: the kiosk never greeted the shopper")
        latencies.append(greeted - arrived)
    return latencies


def write_video(path: Path, frames: Iterator[np.ndarray], fps: float) -> int:
    """``frames`` as an MJPG video at ``fps``; the number of frames written."""
    writer: cv2.VideoWriter | None = None
    count = 0
    try:
        for image in frames:
            if writer is None:
                height, width = image.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
                if not writer.isOpened():
                    raise ApplianceError(f"cannot write video {path} (no MJPG writer in this OpenCV)")
            writer.write(image)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if not count:
        raise ApplianceError(f"video {path}: no frames to write")
    return count


def video_frames(path: Path, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The frames of the video at ``path`` at ``size`` (width, height), one at a time (held together, they
    would raise the peak memory measured)."""
    capture, image = open_video(path)
    try:
        ok = True
        while ok:
            yield cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            ok, image = capture.read()
    finally:
        capture.release()


def still(path: Path, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(read_image(path), size, interpolation=cv2.INTER_AREA)


@dataclass
class Watch:
    """What the tool saw of one run: every flip, the shopper's arrivals, the window's readings."""

    flips: list[Flip] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    start: Reading | None = None
    end: Reading | None = None


def run_watched(config: Any, warmup_s: float, done: Callable[[Watch, float], bool],
                first_person_frame: Callable[[int], bool] | None = None) -> tuple[Watch, Any]:
    """Run the kiosk of ``config`` headless until ``done(watch, seconds since the window opened)``; returns
    what was watched and the kiosk (stopped)."""
    from appliance.compose import kiosk_session
    from appliance.experience.api import ATTRACT
    from appliance.kiosk.display import DisplayMode
    from appliance.stats import StageStats

    watch = Watch()
    with kiosk_session(config, DisplayMode.HEADLESS) as kiosk:
        flip = kiosk.display.flip

        def flipped() -> None:
            flip()
            greeting = kiosk.machine.current not in (ATTRACT, None) and kiosk.machine.failsafe is None
            watch.flips.append(Flip(time.monotonic(), greeting))

        kiosk.display.flip = flipped
        if first_person_frame is not None:
            source = kiosk.workers.capture.source
            read = source.read

            def observed() -> Any:
                frame = read()
                if first_person_frame(frame.index) and watch.start is not None:
                    watch.arrivals.append(frame.captured_at)
                return frame

            source.read = observed

        def measure() -> None:
            time.sleep(warmup_s)
            kiosk.stats = StageStats(STATS_WINDOW)
            watch.start = Reading.now(kiosk.frames_shown)
            while not done(watch, time.monotonic() - watch.start.wall):
                time.sleep(0.05)
            watch.end = Reading.now(kiosk.frames_shown)
            kiosk.stop()

        watcher = threading.Thread(target=measure, name="kioskbench", daemon=True)
        watcher.start()
        kiosk.run()
        watcher.join()
        return watch, kiosk


def person_video(args: argparse.Namespace) -> Path:
    if args.video:
        return Path(args.video)
    media = os.environ.get("OIVIS_TEST_MEDIA")
    if not media:
        raise ApplianceError(f"--video not given and OIVIS_TEST_MEDIA not set (the folder holding {PERSON_VIDEO})")
    return Path(media) / PERSON_VIDEO


def figures(watch: Watch, kiosk: Any, fps: float) -> dict[str, Any]:
    from appliance.fleet.sysinfo import process_peak_rss_mb

    result: dict[str, Any] = window_figures(watch.start, watch.end)
    stages = kiosk.stats.summary()
    result["stages_ms"] = stages
    if "latency" in stages:
        result["latency_frame_periods"] = {key: round(ms * fps / 1000.0, 2) for key, ms in stages["latency"].items()}
    result["peak_rss_mb"] = process_peak_rss_mb()
    result["frames_left_unconverted"] = kiosk.workers.capture.skipped
    return result


def bench(args: argparse.Namespace) -> dict[str, Any]:
    size = (1280, 720)
    with tempfile.TemporaryDirectory(prefix="kioskbench-") as folder:
        if args.mode == "idle":
            uri = f"image:{args.empty}"
        else:
            person = video_frames(person_video(args), size)
            uri = f"video:{Path(folder) / 'source.avi'}"
            frames = person if args.mode == "live" else itertools.chain(
                itertools.repeat(still(Path(args.empty), size), round(args.empty_s * args.fps)),
                itertools.islice(person, round(args.person_s * args.fps)))
            total = write_video(Path(folder) / "source.avi", frames, args.fps)
        config = run_config(Path(args.config) if args.config else None, uri)   # as run --source would
        result: dict[str, Any] = {"mode": args.mode, "source": uri if args.mode == "idle" else
                                  f"{args.video or PERSON_VIDEO} at {args.fps:g} fps"}
        if args.mode != "greet":
            watch, kiosk = run_watched(config, args.warmup, lambda watch, elapsed: elapsed >= args.seconds)
            return result | figures(watch, kiosk, args.fps)
        first = round(args.empty_s * args.fps)
        person_s = args.person_s

        def greeted_all(watch: Watch, elapsed: float) -> bool:
            return len(watch.arrivals) >= args.reps and time.monotonic() - watch.arrivals[-1] >= person_s

        watch, kiosk = run_watched(config, args.warmup, greeted_all, lambda index: index % total == first)
        latencies = greeting_latencies(watch.arrivals, [flip for flip in watch.flips if flip.at >= watch.start.wall])
        ms = [round(latency * 1000.0, 1) for latency in latencies]
        return result | {"greeting_ms": {"median": round(statistics.median(ms), 1), "max": max(ms), "each": ms},
                         "attract_after_s": config.kiosk.attract_after_s} | figures(watch, kiosk, args.fps)


def table(result: dict[str, Any]) -> str:
    lines = [f"kiosk {result['mode']}: {result['source']}",
             f"  window {result['seconds']:.1f} s: {result['cores']:.2f} cores, "
             f"{result['frames_shown_per_s']:.1f} frames shown/s, peak RSS {result['peak_rss_mb']} MB, "
             f"{result['frames_left_unconverted']} camera frames left unconverted in the run"]
    if "greeting_ms" in result:
        greeting = result["greeting_ms"]
        lines.append(f"  greeting: median {greeting['median']:.0f} ms, max {greeting['max']:.0f} ms over "
                     f"{len(greeting['each'])} arrivals ({', '.join(f'{ms:.0f}' for ms in greeting['each'])})")
    for stage, summary in sorted(result["stages_ms"].items()):
        lines.append(f"  {stage:>13s}  p50 {summary['p50']:8.2f} ms   p95 {summary['p95']:8.2f} ms")
    if "latency_frame_periods" in result:
        periods = result["latency_frame_periods"]
        lines.append(f"  capture to flip: p50 {periods['p50']:.2f}, p95 {periods['p95']:.2f} frame periods")
    return "\n".join(lines)


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.tools.kioskbench", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window (idle, live)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds run before the window opens")
    parser.add_argument("--config", help="the kiosk's configuration file (default: the one run uses)")
    parser.add_argument("--empty", default=str(EMPTY_STILL), help="a still with nobody in it")
    parser.add_argument("--video", help=f"a video with somebody in every frame (default: $OIVIS_TEST_MEDIA/{PERSON_VIDEO})")
    parser.add_argument("--fps", type=float, default=30.0, help="the rate the videos are played at")
    parser.add_argument("--reps", type=int, default=5, help="arrivals measured (greet)")
    parser.add_argument("--empty-s", type=float, default=7.0, help="seconds of nobody before each arrival (greet)")
    parser.add_argument("--person-s", type=float, default=3.0, help="seconds the shopper stays (greet)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = bench(args)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
