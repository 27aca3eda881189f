"""The CPU and GPU compositors side by side on the same frames: ``make bench-compositor``.

Each compositor draws the same frames with their real mattes (the video's first frames
through the segmentation stage) in a process of its own (SDL's video driver is chosen once
a process), round after round in alternating order (this machine is shared: side by side in
one run is what makes the figures comparable).
Each draw is timed like the kiosk times it: ``composite`` (the display's painter: numpy's
chain and its conversion to the screen, or the GPU path's matte, upload and draw calls)
and ``present`` (the flip), in wall time and in the render thread's own CPU time; ``cpu
a frame`` is the whole process's CPU time a frame, every thread's (a GL driver's
rasterising threads included).

The compositors: ``cpu`` (numpy, SDL's dummy driver), ``gpu-software`` (the GPU path on
SDL's software renderer), and with ``--on-screen`` ``gpu-screen``: the GPU path in a
window on the screen's own renderer (a board's Mali, or Mesa's llvmpipe under Xvfb, which
rasterises on the CPU).  Where no GPU is, the GPU rows measure the path, not a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.config import Config, load_config
from appliance.content import load_bundle
from appliance.errors import ApplianceError, command_line
from appliance.kiosk.display import DisplayMode, screen_size
from appliance.kiosk.gpu_display import open_display
from appliance.media import DEFAULT_LIMITS, MediaLimits
from appliance.perception.stages import SegmentationStage
from appliance.render.gpu import NO_PICTURE
from appliance.sources.open import open_source
from appliance.stats import StageStats


@dataclass(frozen=True)
class Way:
    name: str
    mode: DisplayMode
    compositor: str


WAYS = {"cpu": Way("cpu", DisplayMode.HEADLESS, "cpu"),
        "gpu-software": Way("gpu-software", DisplayMode.HEADLESS, "gpu"),
        "gpu-screen": Way("gpu-screen", DisplayMode.WINDOWED, "gpu")}


def record(source_uri: str, frames: int, config: Config) -> list[tuple[np.ndarray, np.ndarray]]:
    """``frames`` frames of the source with their real mattes (``config``'s matte, inference and limits)."""
    source = open_source(source_uri, paced=False, limits=config.media)
    stage = SegmentationStage(config.inference.inference(), matte=config.segmentation.matte())
    try:
        recorded = []
        for _ in range(frames):
            image = source.read().image
            recorded.append((image, stage.run(image).alpha))
        return recorded
    finally:
        source.close()


def run_way(way: Way, recorded: list[tuple[np.ndarray, np.ndarray]], content: Path, world: int,
            screen: tuple[int, int], limits: MediaLimits = DEFAULT_LIMITS) -> dict:
    """One pass of ``way`` over the recorded frames: its per-frame timings."""
    bundle = load_bundle(content)
    display = open_display(way.mode, screen, way.compositor)
    stats, cpu = StageStats(window=len(recorded)), StageStats(window=len(recorded))
    try:
        painter = display.painter(bundle.scenes[world], bundle.directory, limits)
        painter.paint(*recorded[0], 0.0)   # textures made, caches filled
        display.flip()
        process_start, started = time.process_time(), time.perf_counter()
        for index, (frame, alpha) in enumerate(recorded):
            t0, c0 = time.perf_counter(), time.thread_time()
            painter.paint(frame, alpha, index / 30, NO_PICTURE)   # as every experience but the menu
            t1, c1 = time.perf_counter(), time.thread_time()
            display.flip()
            t2, c2 = time.perf_counter(), time.thread_time()
            stats.add_all({"composite": (t1 - t0) * 1000, "present": (t2 - t1) * 1000})
            cpu.add_all({"composite": (c1 - c0) * 1000, "present": (c2 - c1) * 1000})
        process_ms = (time.process_time() - process_start) * 1000 / len(recorded)
        wall_ms = (time.perf_counter() - started) * 1000 / len(recorded)
        return {"renderer": display.renderer_name, "size": list(display.size),
                "stages": stats.summary(), "cpu_stages": cpu.summary(), "process_cpu_ms": process_ms,
                "wall_ms": wall_ms}
    finally:
        display.close()


def one_way(args: argparse.Namespace, way: Way) -> dict:
    """``way``'s pass over the source's first frames, in a process of its own."""
    command = [sys.executable, "-m", "appliance.tools.compositorbench", args.source, "--frames", str(args.frames),
               "--screen", args.screen, "--world", str(args.world), "--only", way.name,
               *(["--config", str(args.config)] if args.config else [])]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise ApplianceError(lines[-1].removeprefix("error: ") if lines
                             else f"the {way.name} compositor's pass ended with exit status {result.returncode}")
    return json.loads(result.stdout)


def compare(args: argparse.Namespace, ways: list[Way]) -> dict:
    """Every way over the same frames, ``args.rounds`` times in alternating order; medians over the rounds."""
    runs: dict[str, list[dict]] = {way.name: [] for way in ways}
    for number in range(args.rounds):
        for way in ways if number % 2 == 0 else reversed(ways):
            runs[way.name].append(one_way(args, way))
    summary = {}
    for name, results in runs.items():
        summary[name] = {
            "renderer": results[0]["renderer"], "size": results[0]["size"],
            **{f"{stage}_p50_ms": statistics.median([r["stages"][stage]["p50"] for r in results])
               for stage in ("composite", "present")},
            **{f"{stage}_cpu_p50_ms": statistics.median([r["cpu_stages"][stage]["p50"] for r in results])
               for stage in ("composite", "present")},
            "process_cpu_ms_per_frame": statistics.median([r["process_cpu_ms"] for r in results]),
            "wall_ms_per_frame": statistics.median([r["wall_ms"] for r in results]),
        }
    return {"frames": args.frames, "rounds": args.rounds, "screen": args.screen, "ways": summary}


def format_table(result: dict) -> str:
    lines = [f"{result['frames']} frames, {result['rounds']} rounds, medians of each round's p50 (ms); "
             "render thread's CPU in brackets; cpu a frame = every thread's",
             f"{'compositor':<14}{'renderer':<44}{'screen':>11}{'composite':>16}{'present':>16}{'cpu a frame':>13}"]
    for name, way in result["ways"].items():
        lines.append(f"{name:<14}{way['renderer'][:43]:<44}{'x'.join(map(str, way['size'])):>11}"
                     f"{way['composite_p50_ms']:>7.2f} ({way['composite_cpu_p50_ms']:>5.2f})"
                     f"{way['present_p50_ms']:>8.2f} ({way['present_cpu_p50_ms']:>5.2f})"
                     f"{way['process_cpu_ms_per_frame']:>13.2f}")
    return "\n".join(lines)


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a video or image (any source uri bench takes)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--screen", default="1920x1080")
    parser.add_argument("--world", type=int, default=0)
    parser.add_argument("--on-screen", action="store_true", help="also the GPU path on the screen's own renderer")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=WAYS, help=argparse.SUPPRESS)   # one pass, in this process (JSON)
    args = parser.parse_args(argv)
    screen = screen_size(args.screen)
    if args.frames < 1 or args.rounds < 1:
        raise ApplianceError("--frames and --rounds must be at least 1")
    if args.only:
        config = load_config(args.config)
        recorded = record(args.source, args.frames, config)
        print(json.dumps(run_way(WAYS[args.only], recorded, config.kiosk.content, args.world, screen, config.media)))
        return 0
    result = compare(args, [WAYS["cpu"], WAYS["gpu-software"]] + ([WAYS["gpu-screen"]] if args.on_screen else []))
    print(json.dumps(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
