"""``make rknn-check``: every NPU model at every precision, judged at its task against the float model.

For each evaluation frame (evaluation.txt, apart from calibration) the float
pipeline (tasks.FloatPipeline, LiteRT) fixes what each model is asked and what
the float model answers; each model is then built in-process at fp16, int8 and
hybrid (convert.recorded_spec: the hybrid's fp16 layers from precision.toml),
run on rknn-toolkit2's x86 simulator behind the appliance's Runner interface
(simulate.SimulatorRunner) and scored by the appliance's own classes
(tasks.Task).  One table: model x precision, the task metric, the worst
output's mean cosine against the float model on the same inputs, within target,
and the precision recorded for the model.  The simulator's time per inference
is a side note only: it is x86 emulation, not the NPU's speed.

Each model and precision is built and judged in a process of its own: the
toolkit numbers the tensors it creates per process, and a hybrid's fp16_layers
only match the names of a first build.  The float pipeline's scenes are
computed once and cached (``models/cache/rknn/eval/``, keyed by the frame list,
the media directory, tasks.py, frames.py and the float models' checksums).

Exit status 1 when a model's recorded precision misses its target (a model with
no record is judged at fp16, what ``make rknn-models`` then builds), 2 on errors.
The toolkit's own output goes to ``models/cache/rknn/logs/<model>-<precision>.log``.

    PYTHONPATH=. .venv-rknn/bin/python models/rknn/evaluate.py --media ../shared/devset \\
        --models palm_detection_full --precisions fp16,int8
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from appliance.errors import ApplianceError
from appliance.inference.backend import Runner
from appliance.inference.manifest import Manifest
from models.rknn.convert import PRECISIONS, SUPPORTED_TARGETS, ConversionError, recorded_spec
from models.rknn.frames import FrameListError, load_frames, read_list
from models.rknn.precision import recorded_choice
from models.rknn.simulate import SimulationError, SimulatorRunner, cosine
from models.rknn.tasks import FloatPipeline, Scene, tasks

log = logging.getLogger("rknn.evaluate")

EVALUATION_LIST = Path(__file__).resolve().with_name("evaluation.txt")


@contextmanager
def toolkit_output(path: Path) -> Iterator[None]:
    """The process's stdout and stderr (where rknn-toolkit2 prints its progress) appended to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with path.open("ab") as log_file:
            os.dup2(log_file.fileno(), 1)
            os.dup2(log_file.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        os.close(saved[0])
        os.close(saved[1])


class CosineRunner:
    """Runs the converted model and, on the same input, the float one; collects each output of both.

    ``worst_cosine`` is the lowest, over outputs, of the cosine between all of an
    output's values over every inference and the float model's (one long vector
    per output, so a frame whose mask is almost empty does not swing it).
    """

    def __init__(self, runner: Runner, reference: Runner) -> None:
        self.backend = runner.backend
        self._runner = runner
        self._reference = reference
        self._outputs: list[list[np.ndarray]] = []
        self._expected: list[list[np.ndarray]] = []

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs = self._runner.run(inputs)
        self._outputs.append([o.reshape(-1) for o in outputs])
        self._expected.append([np.asarray(e).reshape(-1) for e in self._reference.run(inputs)])
        return outputs

    def worst_cosine(self) -> float:
        if not self._outputs:
            return float("nan")
        return min(cosine(np.concatenate(ours), np.concatenate(theirs))
                   for ours, theirs in zip(zip(*self._outputs, strict=True), zip(*self._expected, strict=True),
                                           strict=True))


@dataclass(frozen=True)
class Row:
    model: str
    precision: str
    metric: str
    value: float
    detail: str
    cosine: float
    within: bool
    chosen: bool
    build_s: float
    sim_ms: float


def judge(model: str, precision: str, target: str, scenes: Sequence[Scene], pipeline: FloatPipeline,
          logs: Path) -> Row | None:
    """One model at one precision; None when there is no such build (a hybrid with no recorded layers)."""
    task = tasks(pipeline.manifest)[model]
    choice = recorded_choice(model)
    spec = recorded_spec(model, target, precision)
    if precision == "hybrid" and not spec.fp16_layers:
        return None
    log_path = logs / f"{model}-{precision}.log"
    log_path.unlink(missing_ok=True)
    with toolkit_output(log_path):
        simulator = SimulatorRunner(spec)
        try:
            runner = CosineRunner(simulator, pipeline.runners[model])
            score = task.score(scenes, runner)
        finally:
            simulator.release()
    return Row(model, precision, task.metric, score.value, score.detail, runner.worst_cosine(), score.within,
               precision == choice.precision, simulator.build_seconds, 1000 * float(np.median(simulator.seconds)))


def print_table(rows: Sequence[Row], target_text: dict[str, str]) -> None:
    print(f"{'model':<34}{'precision':<10}{'metric':<22}{'value':>8}  {'cosine':>8}  {'within':<7}{'chosen':<7}"
          f"{'sim ms':>7}  detail")
    for row in rows:
        print(f"{row.model:<34}{row.precision:<10}{row.metric:<22}{row.value:>8.4f}  {row.cosine:>8.5f}  "
              f"{'yes' if row.within else 'NO':<7}{'<==' if row.chosen else '':<7}{row.sim_ms:>7.1f}  {row.detail}")
    print("targets: " + "; ".join(f"{model}: {text}" for model, text in target_text.items()))
    print("sim ms: median wall time of one inference on rknn-toolkit2's x86 simulator (not the NPU's speed)")


def scene_cache(manifest: Manifest, media: Path, frames: Path) -> Path:
    """Where the float pipeline's scenes for these frames are kept: keyed by everything they depend on."""
    key = hashlib.sha256()
    key.update(str(media.resolve()).encode())
    key.update(frames.read_bytes())
    for source in ("tasks.py", "frames.py"):
        key.update(Path(__file__).with_name(source).read_bytes())
    for model in tasks(manifest):
        key.update(manifest.spec(model).sha256.encode())
    return manifest.cache_dir / "rknn" / "eval" / f"scenes-{key.hexdigest()[:16]}.pickle"


def float_scenes(manifest: Manifest, media: Path, frames: Path) -> list[Scene]:
    """The evaluation frames through the float pipeline, from the cache when it has them."""
    cache = scene_cache(manifest, media, frames)
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    t0 = time.perf_counter()
    pipeline = FloatPipeline(manifest)
    scenes = [pipeline.scene(ref.label, image) for ref, image in load_frames(media, read_list(frames))]
    log.info("float pipeline on %d evaluation frames: %.1f s (cached in %s)", len(scenes), time.perf_counter() - t0,
             cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(scenes))
    return scenes


def judge_one(args: argparse.Namespace, manifest: Manifest, out: Path) -> None:
    """The child's job: one model at one precision, its Row (or null: no such build) written to ``out``."""
    model, precision = args.models[0], args.precisions
    logs = manifest.cache_dir / "rknn" / "logs"
    try:
        row = judge(model, precision, args.target, float_scenes(manifest, args.media, args.frames),
                    FloatPipeline(manifest), logs)
    except Exception as exc:  # noqa: BLE001 - the toolkit raises bare ValueErrors; one build failing
        # is a row of the table (named, never within target), not the end of it
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        log.error("%s %s failed (see %s): %s", model, precision, logs, last)
        row = Row(model, precision, tasks(manifest)[model].metric, float("nan"), "build or run failed",
                  float("nan"), False, precision == recorded_choice(model).precision, 0.0, float("nan"))
    out.write_text(json.dumps(asdict(row) if row else None))


def judged_in_child(args: argparse.Namespace, model: str, precision: str) -> Row | None:
    """``judge_one`` in a fresh process: the toolkit numbers the tensors it creates per process, so a build
    only gets the names its hybrid fp16_layers were proposed with when nothing was built before it."""
    with tempfile.TemporaryDirectory(prefix="rknn-evaluate-") as tmp:
        out = Path(tmp) / "row.json"
        subprocess.run([sys.executable, __file__, "--media", str(args.media), "--frames", str(args.frames),
                        "--target", args.target, "--models", model, "--precisions", precision, "--one", str(out)],
                       check=False)
        if not out.is_file():
            raise SimulationError(f"{model} {precision}: the evaluation process died (see the log above)")
        data = json.loads(out.read_text())
    return Row(**data) if data else None


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--media", type=Path, required=True, help="the devset directory (MEDIA)")
    p.add_argument("--frames", type=Path, default=EVALUATION_LIST)
    p.add_argument("--models", nargs="+", required=True, help="manifest names of the NPU models")
    p.add_argument("--precisions", default=",".join(PRECISIONS))
    p.add_argument("--target", default="rk3588", choices=SUPPORTED_TARGETS)
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: judged_in_child's child
    args = p.parse_args(argv)
    precisions = args.precisions.split(",")
    manifest = Manifest.load()
    known = tasks(manifest)
    unknown = [m for m in args.models if m not in known] + [q for q in precisions if q not in PRECISIONS]
    if unknown:
        log.error("no task or precision for %s (models with a task: %s)", unknown, ", ".join(known))
        return 2
    try:
        if args.one:
            judge_one(args, manifest, args.one)
            return 0
        float_scenes(manifest, args.media, args.frames)
        rows = []
        for model in args.models:
            for precision in precisions:
                t0 = time.perf_counter()
                row = judged_in_child(args, model, precision)
                if row is None:
                    log.info("%s: no hybrid (precision.toml records no fp16_layers)", model)
                    continue
                log.info("%s %s: %s %.4f (%s) in %.0f s", model, precision, row.metric, row.value, row.detail,
                         time.perf_counter() - t0)
                rows.append(row)
    except (ConversionError, SimulationError, FrameListError, ApplianceError) as exc:
        log.error("%s", exc)
        return 2
    print_table(rows, {m: known[m].target for m in args.models})
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=1) + "\n")
    judged = [model for model in args.models if recorded_choice(model).precision in precisions]
    unjudged = sorted(set(args.models) - set(judged))
    if unjudged:
        print(f"not judged (their recorded precision was not asked for): {', '.join(unjudged)}")
    missed = [f"{model} ({recorded_choice(model).precision})" for model in judged
              if not any(r.model == model and r.chosen and r.within for r in rows)]
    if missed:
        print(f"chosen precision not judged within target: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
