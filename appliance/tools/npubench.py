"""What one model per NPU core buys on an RK3588, estimated with a stand-in NPU on this machine.

There is no NPU here, so the NPU is played by a fake backend: each model's
inference holds its NPU core (one lock per core) for that model's NPU time and
returns the outputs the real model gave for the same input tensor (recorded
with LiteRT in a first pass over the same frames, looked up by the tensor's
digest; a miss runs LiteRT and is counted).  Everything else is the appliance's
own perception — pre-processing, decoding, tracking, the matte, the lanes — on
this machine's CPU, so the frame rate shows how the lanes overlap.  Beside it,
the NPU-bound frame rate: frames over the busiest core's busy time, what the
layout would give were the CPU work free.

NPU times are estimates, not measurements: each model's multiply-accumulates
(counted from its .tflite) placed on the line through two published single-core
INT8 figures of rknn_model_zoo's benchmark table (airockchip/rknn_model_zoo
README, "Model performance benchmark (FPS)"): mobilenetv2-12 (0.30 GMAC) at
433.0 fps and resnet50-v2-7 (4.1 GMAC) at 108.6 fps on an RK3588 core; 197.4 and
40.6 fps on an RK3566/68.  An fp16 model's compute is taken as twice the INT8
one (an assumption: no published figure pairs the two).

Invariants:

- A model runs on the core its lane names (``0``, ``1``, ``2``); two models on one
  core never overlap; a lane's models run one after another (hands: palm, then
  landmarks), as on the board.
- The recorded outputs are exactly the real model's for that input, so every
  configuration perceives the same hands and people as LiteRT would.

``python -m appliance.tools.npubench VIDEO [--frames N] [--json]`` (``make bench-npu``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.errors import command_line
from appliance.inference.backend import Inference, Runner
from appliance.inference.manifest import Manifest
from appliance.inference.soc import NPU_CORES
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.pipeline import Perceiver
from appliance.sources.base import Frame
from appliance.stats import StageStats

#: Published single-core INT8 figures (rknn_model_zoo): (GMAC, fps) for mobilenetv2-12 and resnet50-v2-7.
PUBLISHED = {"rk3588": ((0.30, 433.0), (4.1, 108.6)), "rk3566": ((0.30, 197.4), (4.1, 40.6))}
FP16_COMPUTE_FACTOR = 2.0
CAPTURE_FPS = 30.0
#: Frames each run perceives before its clock starts (models loaded, tracks found, caches warm).
WARMUP_FRAMES = 5
NEEDS = Needs(segmentation=EVERY_FRAME, hands=EVERY_FRAME, pose=EVERY_FRAME)


def macs(tflite: Path) -> int:
    """Multiply-accumulates of one inference: convolutions (plain, depthwise, transposed) and dense layers."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite))
    shapes = {detail["index"]: tuple(detail["shape"]) for detail in interpreter.get_tensor_details()}
    total = 0
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the only way LiteRT lists a graph's ops
        name, inputs, outputs = op["op_name"], op["inputs"], op["outputs"]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            out, weights = shapes[outputs[0]], shapes[inputs[1]]
            per_output = int(np.prod(weights[1:])) if name == "CONV_2D" else weights[1] * weights[2]
            total += int(np.prod(out)) * per_output
        elif name in ("TRANSPOSE_CONV", "Convolution2DTransposeBias"):
            data, weights = (inputs[2], inputs[1]) if name == "TRANSPOSE_CONV" else (inputs[0], inputs[1])
            total += int(np.prod(shapes[data])) * int(np.prod(shapes[weights][:3]))
        elif name == "FULLY_CONNECTED":
            total += int(np.prod(shapes[outputs[0]])) * shapes[inputs[1]][-1]
    return total


def npu_ms(gmac: float, soc: str = "rk3588", fp16: bool = False) -> float:
    """A model's estimated time on one NPU core: the published line's fixed cost plus its compute."""
    (small_gmac, small_fps), (large_gmac, large_fps) = PUBLISHED[soc]
    slope = (1000 / large_fps - 1000 / small_fps) / (large_gmac - small_gmac)
    fixed = 1000 / small_fps - slope * small_gmac
    return fixed + slope * gmac * (FP16_COMPUTE_FACTOR if fp16 else 1.0)


def digest(inputs: list[np.ndarray]) -> bytes:
    hasher = hashlib.blake2b(digest_size=16)
    for tensor in inputs:
        hasher.update(np.ascontiguousarray(tensor).data)
    return hasher.digest()


class Recorder(Inference):
    """The real LiteRT models; every output kept by model and input digest."""

    def __init__(self) -> None:
        super().__init__("litert")
        self.outputs: dict[tuple[str, bytes], list[np.ndarray]] = {}

    def load(self, model: str) -> Runner:
        runner = super().load(model)

        def record(inputs: list[np.ndarray]) -> list[np.ndarray]:
            key = (model, digest(inputs))
            if key not in self.outputs:   # an input another layout already sent has its answer
                self.outputs[key] = runner.run(inputs)
            return self.outputs[key]
        return _Wrapped(record)


@dataclass
class _Wrapped:
    call: Callable[[list[np.ndarray]], list[np.ndarray]]
    backend: str = "npu-standin"

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return self.call(inputs)


class StandInNpu(Inference):
    """Models on NPU cores: each inference holds its core for the model's estimated time, answers the recording."""

    def __init__(self, recorder: Recorder, cores: dict[str, int], times_ms: dict[str, float]) -> None:
        super().__init__("litert")
        self.recorder = recorder
        self.cores = cores
        self.times_ms = times_ms
        self.locks = {core: threading.Lock() for core in set(cores.values())}
        self.busy_s = dict.fromkeys(self.locks, 0.0)   # each core's held time (written under its lock)
        self.misses = 0
        self._misses_lock = threading.Lock()

    def start_timing(self) -> None:
        """Forget the busy time so far (model loading, warm-up frames)."""
        for core, lock in self.locks.items():
            with lock:
                self.busy_s[core] = 0.0

    def load(self, model: str) -> Runner:
        real = self.recorder.load(model)
        core = self.cores[model]

        def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
            outputs = self.recorder.outputs.get((model, digest(inputs)))
            if outputs is None:
                with self._misses_lock:
                    self.misses += 1
                outputs = real.run(inputs)
            with self.locks[core]:
                started = time.perf_counter()
                time.sleep(self.times_ms[model] / 1000)
                self.busy_s[core] += time.perf_counter() - started
            return outputs
        return _Wrapped(run)


@dataclass(frozen=True)
class Layout:
    """One way to place the models: on which core each runs, and whether stages run in their own lanes."""

    name: str
    parallel: bool
    cores: dict[str, int]


SEGMENTATION, HANDS, POSE = ("selfie_landscape",), ("palm_detection_full", "hand_landmark_full"), \
    ("pose_detection", "pose_landmark_full")


def _on(core_of: tuple[int, int, int]) -> dict[str, int]:
    return {model: core for models, core in zip((SEGMENTATION, HANDS, POSE), core_of, strict=True) for model in models}


LAYOUTS = (
    Layout("one lane, one core (RK3566/68, or any board without lanes)", False, _on((0, 0, 0))),
    Layout("a lane per stage, one shared core (RK3566/68 with lanes)", True, _on((0, 0, 0))),
    Layout("a lane per stage, a core each (RK3588)", True, _on((0, 1, 2))),
)


def read_frames(video: Path, count: int) -> list[Frame]:
    from appliance.media import DEFAULT_LIMITS
    from appliance.sources.open import open_source

    source = open_source(str(video), paced=False, limits=DEFAULT_LIMITS)
    try:
        return [Frame(source.read().image, index, index / CAPTURE_FPS) for index in range(count)]
    finally:
        source.close()


def _perceive(inference: Inference, parallel: bool, frames: list[Frame],
              stats: StageStats | None = None, timing_starts: Callable[[], None] = lambda: None) -> float:
    """``frames`` through a fresh Perceiver (models loaded, first WARMUP_FRAMES untimed); the seconds the
    rest took, each frame's stages and whole time added to ``stats``."""
    perceiver = Perceiver(inference, parallel=parallel)
    try:
        for frame in frames[:WARMUP_FRAMES]:
            perceiver.process(frame, NEEDS)
        timing_starts()
        started = time.perf_counter()
        for frame in frames[WARMUP_FRAMES:]:
            frame_started = time.perf_counter()
            perception = perceiver.process(frame, NEEDS)
            if stats is not None:
                stats.add_all({**perception.timings_ms, "frame": (time.perf_counter() - frame_started) * 1000})
        return time.perf_counter() - started
    finally:
        perceiver.close()


def run(video: Path, count: int, soc: str = "rk3588", fp16: bool = True) -> dict:
    manifest = Manifest.load()
    models = [*SEGMENTATION, *HANDS, *POSE]
    gmacs = {model: macs(manifest.verified_path(model)) / 1e9 for model in models}
    times = {model: npu_ms(gmacs[model], soc, fp16) for model in models}
    frames = read_frames(video, WARMUP_FRAMES + count)
    layouts = [layout for layout in LAYOUTS if max(layout.cores.values()) < NPU_CORES[soc]]
    recorder = Recorder()
    for layout in layouts:       # the real outputs of every call each layout makes
        _perceive(recorder, layout.parallel, frames)
    rows = []
    for layout in layouts:
        npu = StandInNpu(recorder, layout.cores, times)
        stats = StageStats(window=count)
        elapsed = _perceive(npu, layout.parallel, frames, stats, npu.start_timing)
        rows.append({"layout": layout.name, "fps": round(count / elapsed, 1), "stages": stats.summary(),
                     "npu_bound_fps": round(count / max(npu.busy_s.values()), 1),
                     "npu_busy": {f"core {core}": round(busy / elapsed, 2) for core, busy in sorted(npu.busy_s.items())},
                     "misses": npu.misses})
    return {"soc": soc, "precision": "fp16" if fp16 else "int8", "frames": count, "source": str(video),
            "models": {model: {"gmac": round(gmacs[model], 3), "npu_ms": round(times[model], 2)} for model in models},
            "layouts": rows}


def format_report(report: dict) -> str:
    lines = [f"{report['frames']} frames of {Path(report['source']).name}, segmentation + hands + pose every frame; "
             f"stand-in {report['soc']} NPU, {report['precision']} times estimated from published figures:"]
    lines += [f"  {model:<22}{info['gmac']:>7.3f} GMAC {info['npu_ms']:>6.2f} ms"
              for model, info in report["models"].items()]
    lines.append(f"{'layout':<62}{'fps':>6}{'frame p50':>11}{'NPU-bound fps':>15}  NPU busy")
    for row in report["layouts"]:
        busy = ", ".join(f"{core} {share:.0%}" for core, share in row["npu_busy"].items())
        lines.append(f"{row['layout']:<62}{row['fps']:>6}{row['stages']['frame']['p50']:>9.1f}ms"
                     f"{row['npu_bound_fps']:>15}  {busy}"
                     + (f"  ({row['misses']} unrecorded calls)" if row["misses"] else ""))
    return "\n".join(lines)


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.tools.npubench", description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path, help="a video with a person and a hand (the devset's kiosk video)")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--soc", choices=sorted(PUBLISHED), default="rk3588")
    parser.add_argument("--int8", action="store_true", help="INT8 times (default: fp16, twice the compute)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args.video, args.frames, args.soc, not args.int8)
    print(json.dumps(report) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
