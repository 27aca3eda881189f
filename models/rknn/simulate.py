"""Check an RKNN conversion on x86 with rknn-toolkit2's simulator.

There is no NPU on the build host, so the only way to validate the RK3588 path
before it reaches a board is: build the model in-process (the simulator cannot
run a ``.rknn`` loaded from disk), run it with ``init_runtime()`` and no
target, and compare against the TFLite reference on the same real frame.

The simulator gets raw uint8 NHWC RGB (the mean/std baked in by convert.py
does the /255); the TFLite reference gets the float32 0..1 tensor MediaPipe
expects. Agreement therefore also proves the baked-in normalisation is right.

Example (``make rknn-check`` runs this for every NPU model)::

    PYTHONPATH=. .venv-rknn/bin/python models/rknn/simulate.py --model palm_detection_full \\
        --image ../shared/devset/thumb_up.jpg
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:  # run as a script (python models/rknn/simulate.py) or as a module
    from convert import SUPPORTED_TARGETS, ConversionError, ConvertSpec, build_rknn, default_paths, rknn_normalisation
except ImportError:  # pragma: no cover
    from models.rknn.convert import (
        SUPPORTED_TARGETS,
        ConversionError,
        ConvertSpec,
        build_rknn,
        default_paths,
        rknn_normalisation,
    )

log = logging.getLogger("rknn.simulate")


class SimulationError(RuntimeError):
    """The simulator could not run the model or its outputs do not line up."""


@dataclass(frozen=True)
class OutputDiff:
    """Agreement between one simulator output and its TFLite counterpart."""

    index: int
    shape: tuple[int, ...]
    cosine: float
    max_abs: float
    mean_abs: float


def load_frame(image: Path, height: int, width: int) -> np.ndarray:
    """Real camera-like input: uint8 RGB [1, H, W, 3], plain resize (no letterbox)."""
    import cv2

    bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SimulationError(f"cannot read image {image}")
    rgb = cv2.cvtColor(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return rgb[np.newaxis].astype(np.uint8)


def tflite_reference(tflite: Path, frame: np.ndarray, mean: float, std: float) -> list[np.ndarray]:
    """Run the source model the way the appliance does (ai-edge-litert, the manifest's float input)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    if tuple(inp["shape"]) != frame.shape:
        raise SimulationError(f"{tflite}: input shape {tuple(inp['shape'])} != frame {frame.shape}")
    interp.set_tensor(inp["index"], (frame.astype(np.float32) - mean) / std)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def input_hw(tflite: Path) -> tuple[int, int]:
    """Model input (H, W), read from the TFLite file so callers need not know it."""
    from ai_edge_litert.interpreter import Interpreter

    shape = Interpreter(model_path=str(tflite)).get_input_details()[0]["shape"]
    if len(shape) != 4 or shape[3] != 3:
        raise SimulationError(f"{tflite}: expected NHWC RGB input, got shape {tuple(shape)}")
    return int(shape[1]), int(shape[2])


def compare(sim: Sequence[np.ndarray], ref: Sequence[np.ndarray]) -> list[OutputDiff]:
    """Pair outputs by position; 4-D NCHW simulator outputs are moved back to NHWC."""
    if len(sim) != len(ref):
        raise SimulationError(f"simulator returned {len(sim)} outputs, TFLite {len(ref)}")
    diffs = []
    for i, (s, r) in enumerate(zip(sim, ref, strict=True)):
        s = np.asarray(s, dtype=np.float32)
        r = np.asarray(r, dtype=np.float32)
        if s.shape != r.shape and s.ndim == 4 and s.transpose(0, 2, 3, 1).shape == r.shape:
            s = s.transpose(0, 2, 3, 1)
        if s.size != r.size:
            raise SimulationError(f"output {i}: simulator shape {s.shape} vs TFLite {r.shape}")
        a, b = s.reshape(-1).astype(np.float64), r.reshape(-1).astype(np.float64)
        denom = np.linalg.norm(a) * np.linalg.norm(b)
        cosine = float(a @ b / denom) if denom > 0 else float("nan")
        err = np.abs(a - b)
        diffs.append(OutputDiff(i, tuple(r.shape), cosine, float(err.max()), float(err.mean())))
    return diffs


def simulate(spec: ConvertSpec, image: Path, runs: int = 3) -> tuple[list[OutputDiff], dict[str, float]]:
    """Build ``spec`` in-process, run it on the simulator and diff it against TFLite.

    Returns per-output diffs and timings (seconds): build, init_runtime, first
    inference and mean of ``runs`` further inferences.
    """
    frame = load_frame(image, *input_hw(spec.tflite))
    ref = tflite_reference(spec.tflite, frame, spec.mean, spec.std)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rknn: Any = build_rknn(spec)
    timings["build"] = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        if rknn.init_runtime() != 0:  # no target => x86 simulator
            raise SimulationError(f"{spec.model}: init_runtime() (simulator) failed")
        timings["init_runtime"] = time.perf_counter() - t0

        def run() -> list[np.ndarray]:
            out = rknn.inference(inputs=[frame], data_format="nhwc")
            if out is None:
                raise SimulationError(f"{spec.model}: simulator inference returned None")
            return out

        t0 = time.perf_counter()
        sim = run()
        timings["first_inference"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(runs):
            run()
        timings["inference_mean"] = (time.perf_counter() - t0) / max(runs, 1)
    finally:
        rknn.release()
    return compare(sim, ref), timings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model of models/manifest.toml")
    p.add_argument("--target", default="rk3588", choices=SUPPORTED_TARGETS)
    p.add_argument("--image", type=Path, required=True, help="a real photo to feed both runtimes")
    p.add_argument("--quantize", action="store_true")
    p.add_argument("--dataset", type=Path)
    p.add_argument("--runs", type=int, default=3, help="timed inferences after the first")
    p.add_argument("--min-cosine", type=float, default=0.99, help="exit 1 if any output is below")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from appliance.errors import ApplianceError

    try:
        tflite, _ = default_paths(args.model, args.target)
        spec = ConvertSpec(args.model, tflite, *rknn_normalisation(args.model), args.target,
                           args.quantize, args.dataset)
        diffs, timings = simulate(spec, args.image, args.runs)
    except (ConversionError, SimulationError, ApplianceError) as exc:
        log.error("%s", exc)
        return 1
    mode = "int8" if args.quantize else "fp16"
    print(f"== {args.model} [{mode}, {args.target} simulator] image={args.image.name}")
    print("   " + "  ".join(f"{k}={v:.2f}s" for k, v in timings.items()))
    for d in diffs:
        print(f"   out{d.index} {d.shape}: cosine={d.cosine:.6f} max_abs={d.max_abs:.4g} mean_abs={d.mean_abs:.4g}")
    return 0 if all(d.cosine >= args.min_cosine for d in diffs) else 1


if __name__ == "__main__":
    sys.exit(main())
