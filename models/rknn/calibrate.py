"""Calibration inputs for the NPU models: what the appliance feeds each model on the calibration frames.

The frames come from calibration.txt (read from the devset directory); the
appliance's float pipeline (tasks.FloatPipeline, LiteRT) goes over each one and
every input tensor a model is given there is recorded: whole frames for the
segmenters, the hand search plan's windows for the palm detector, the rotated
hand regions (from the float palms, the whole-frame probe and the float hands'
tracking regions) for the hand landmark models (full and lite), the pose
search's windows and the body regions for the pose models, the still face
search's windows for both face detectors, the face regions for the mesh model
and the chips cut from the float meshes for age and gender.  Nothing is guessed: a crop is exactly
the appliance's crop.

Output (git-ignored): ``models/cache/rknn/calib/<model>/NNNN.png`` (the uint8
RGB tensor, stored so rknn-toolkit2 reads it back as RGB) and
``models/cache/rknn/calib/<model>.txt``, the toolkit's dataset list (one
absolute path a line).  Invariant: a list only ever names the images written by
the same run (the model's folder is emptied first).

    PYTHONPATH=. .venv-rknn/bin/python models/rknn/calibrate.py --media ../shared/devset
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from appliance.inference.backend import Runner
from appliance.inference.manifest import Manifest
from models.rknn.frames import FrameListError, load_frames, read_list
from models.rknn.tasks import FloatPipeline

log = logging.getLogger("rknn.calibrate")

HERE = Path(__file__).resolve().parent
CALIBRATION_LIST = HERE / "calibration.txt"


class Recorder:
    """A Runner that keeps a copy of every image it is given, then runs the wrapped runner."""

    def __init__(self, runner: Runner) -> None:
        self.backend = runner.backend
        self._runner = runner
        self.images: list[np.ndarray] = []

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.images.append(inputs[0][0].copy())
        return self._runner.run(inputs)


def calibration_dir(manifest: Manifest) -> Path:
    return manifest.cache_dir / "rknn" / "calib"


def dataset_list(manifest: Manifest, model: str) -> Path:
    """The toolkit's dataset list for ``model`` (written by ``write_datasets``)."""
    return calibration_dir(manifest) / f"{model}.txt"


def record_inputs(manifest: Manifest, media: Path, frame_list: Path) -> dict[str, list[np.ndarray]]:
    """Every input each float model got on the listed frames, in order."""
    recorders: dict[str, Recorder] = {}

    def wrap(model: str, runner: Runner) -> Runner:
        recorders[model] = Recorder(runner)
        return recorders[model]

    pipeline = FloatPipeline(manifest, wrap)
    for ref, image in load_frames(media, read_list(frame_list)):
        pipeline.scene(ref.label, image)
    return {model: recorder.images for model, recorder in recorders.items()}


def write_datasets(manifest: Manifest, inputs: dict[str, list[np.ndarray]]) -> dict[str, Path]:
    """One folder of PNGs and one dataset list per model; returns the lists."""
    lists = {}
    for model, images in inputs.items():
        folder = calibration_dir(manifest) / model
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        paths = []
        for index, rgb in enumerate(images):
            path = folder / f"{index:04d}.png"
            if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise OSError(f"cannot write calibration image {path}")
            paths.append(str(path))
        lists[model] = dataset_list(manifest, model)
        lists[model].write_text("\n".join(paths) + "\n")
    return lists


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--media", type=Path, required=True, help="the devset directory (MEDIA)")
    p.add_argument("--frames", type=Path, default=CALIBRATION_LIST, help="the frame list")
    args = p.parse_args(argv)
    from appliance.errors import ApplianceError

    manifest = Manifest.load()
    try:
        lists = write_datasets(manifest, record_inputs(manifest, args.media, args.frames))
    except (FrameListError, ApplianceError) as exc:
        log.error("%s", exc)
        return 1
    for model, path in lists.items():
        count = len(path.read_text().splitlines())
        log.info("%s: %d calibration inputs -> %s", model, count, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
