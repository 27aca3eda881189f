"""Check an RKNN conversion on x86 with rknn-toolkit2's simulator.

There is no NPU on the build host, so the only way to validate the RK3588 path
before it reaches a board is: build the model in-process (the simulator cannot
run a ``.rknn`` loaded from disk), run it with ``init_runtime()`` and no
target, and compare against the TFLite reference on the same real frame.

The simulator gets raw uint8 NHWC RGB (the mean/std baked in by convert.py
does the /255); the TFLite reference gets the float32 0..1 tensor MediaPipe
expects. Agreement therefore also proves the baked-in normalisation is right.

One model on one image (``make rknn-check`` judges every model at its task: evaluate.py)::

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

from appliance.inference.layout import float_output_shapes, to_model_layout
from models.rknn.convert import (
    PRECISIONS,
    SUPPORTED_TARGETS,
    ConversionError,
    ConvertSpec,
    build_rknn,
    recorded_spec,
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


def _manifest_spec(model: Path) -> Any:
    """The manifest entry whose file is ``model`` (the ONNX models' layout and normalisation live there)."""
    from appliance.inference.manifest import Manifest

    specs = [spec for spec in Manifest.load().models.values() if spec.filename == model.name]
    if len(specs) != 1:
        raise SimulationError(f"{model}: {len(specs)} manifest models use this file; expected one")
    return specs[0]


def tflite_reference(tflite: Path, frame: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> list[np.ndarray]:
    """Run the source model the way the appliance does.

    A .tflite runs in ai-edge-litert on ``(frame - mean) / std`` (per channel).
    A .onnx runs through the appliance's own onnx plugin runner
    (appliance/inference/plugins/onnx.py: onnxruntime, the manifest's
    per-channel normalisation, NCHW when the manifest says so), so ``mean`` and
    ``std`` are not used and agreement also proves rknn_normalisation bakes in
    the appliance's normalisation.
    """
    if tflite.suffix == ".onnx":
        from appliance.inference.manifest import Manifest
        from appliance.inference.plugins.onnx import OnnxRunner

        return OnnxRunner(_manifest_spec(tflite), Manifest.load(), threads=1).run([frame])
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    if tuple(inp["shape"]) != frame.shape:
        raise SimulationError(f"{tflite}: input shape {tuple(inp['shape'])} != frame {frame.shape}")
    tensor = (frame.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    interp.set_tensor(inp["index"], tensor)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def input_hw(tflite: Path) -> tuple[int, int]:
    """Model input (H, W): read from a TFLite file, from the manifest for an ONNX one (its batch is free)."""
    if tflite.suffix == ".onnx":
        _, height, width, _ = _manifest_spec(tflite).input_shape
        if not height or not width:
            raise SimulationError(f"{tflite}: takes any image size; the RKNN path needs a fixed one")
        return height, width
    from ai_edge_litert.interpreter import Interpreter

    shape = Interpreter(model_path=str(tflite)).get_input_details()[0]["shape"]
    if len(shape) != 4 or shape[3] != 3:
        raise SimulationError(f"{tflite}: expected NHWC RGB input, got shape {tuple(shape)}")
    return int(shape[1]), int(shape[2])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two outputs' values (nan when either is all zeros)."""
    x, y = a.reshape(-1).astype(np.float64), b.reshape(-1).astype(np.float64)
    denom = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / denom) if denom > 0 else float("nan")


def compare(sim: Sequence[np.ndarray], ref: Sequence[np.ndarray]) -> list[OutputDiff]:
    """Pair outputs by position (the simulator's already in the float model's shapes)."""
    if len(sim) != len(ref):
        raise SimulationError(f"simulator returned {len(sim)} outputs, TFLite {len(ref)}")
    diffs = []
    for i, (s, r) in enumerate(zip(sim, ref, strict=True)):
        if s.shape != r.shape:
            raise SimulationError(f"output {i}: simulator shape {s.shape} vs TFLite {r.shape}")
        err = np.abs(s.astype(np.float64) - r.astype(np.float64))
        diffs.append(OutputDiff(i, tuple(r.shape), cosine(s, r), float(err.max()), float(err.mean())))
    return diffs


class SimulatorRunner:
    """A model built in-process and run on rknn-toolkit2's x86 simulator, behind the appliance's Runner.

    Outputs come back in the float model's shapes (layout.to_model_layout, as
    RKNNRunner does on the board).  ``seconds`` holds every inference's wall time:
    the simulator's, which says nothing about the NPU's speed.  Call ``release()``.
    """

    backend = "rknn-simulator"

    def __init__(self, spec: ConvertSpec) -> None:
        self.spec = spec
        self._shapes = float_output_shapes(spec.tflite)
        t0 = time.perf_counter()
        self._rknn: Any = build_rknn(spec)
        self.build_seconds = time.perf_counter() - t0
        if self._rknn.init_runtime() != 0:  # no target => x86 simulator
            self._rknn.release()
            raise SimulationError(f"{spec.model}: init_runtime() (simulator) failed")
        self.seconds: list[float] = []

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        outputs = self._rknn.inference(inputs=inputs, data_format="nhwc")
        self.seconds.append(time.perf_counter() - t0)
        if outputs is None:
            raise SimulationError(f"{self.spec.model}: simulator inference returned None")
        return [np.asarray(o, dtype=np.float32) for o in to_model_layout(outputs, self._shapes)]

    def release(self) -> None:
        self._rknn.release()


def simulate(spec: ConvertSpec, image: Path, runs: int = 3) -> tuple[list[OutputDiff], dict[str, float]]:
    """Build ``spec`` in-process, run it on the simulator and diff it against TFLite.

    Returns per-output diffs and timings (seconds): build, first inference and
    mean of ``runs`` further inferences.
    """
    frame = load_frame(image, *input_hw(spec.tflite))
    ref = tflite_reference(spec.tflite, frame, spec.mean, spec.std)
    runner = SimulatorRunner(spec)
    try:
        sim = runner.run([frame])
        for _ in range(runs):
            runner.run([frame])
    finally:
        runner.release()
    timings = {"build": runner.build_seconds, "first_inference": runner.seconds[0],
               "inference_mean": float(np.mean(runner.seconds[1:])) if runs else float("nan")}
    return compare(sim, ref), timings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model of models/manifest.toml")
    p.add_argument("--target", default="rk3588", choices=SUPPORTED_TARGETS)
    p.add_argument("--image", type=Path, required=True, help="a real photo to feed both runtimes")
    p.add_argument("--precision", choices=PRECISIONS, help="default: the model's choice in precision.toml")
    p.add_argument("--dataset", type=Path, help="calibration list (default: the one make rknn-calibration wrote)")
    p.add_argument("--runs", type=int, default=3, help="timed inferences after the first")
    p.add_argument("--min-cosine", type=float, default=0.99, help="exit 1 if any output is below")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from appliance.errors import ApplianceError

    try:
        spec = recorded_spec(args.model, args.target, args.precision, args.dataset)
        diffs, timings = simulate(spec, args.image, args.runs)
    except (ConversionError, SimulationError, ApplianceError) as exc:
        log.error("%s", exc)
        return 1
    print(f"== {args.model} [{spec.precision}, {args.target} simulator] image={args.image.name}")
    print("   " + "  ".join(f"{k}={v:.2f}s" for k, v in timings.items()))
    for d in diffs:
        print(f"   out{d.index} {d.shape}: cosine={d.cosine:.6f} max_abs={d.max_abs:.4g} mean_abs={d.mean_abs:.4g}")
    return 0 if all(d.cosine >= args.min_cosine for d in diffs) else 1


if __name__ == "__main__":
    sys.exit(main())
