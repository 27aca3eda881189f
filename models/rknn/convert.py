"""Offline TFLite -> RKNN conversion for the RK3588 NPU path.

Runs on an x86 build host inside the dedicated ``.venv-rknn`` virtualenv
(rknn-toolkit2 pins numpy<=1.26.4 / protobuf<=4.25.4, which clash with the
appliance's own venv). The board itself only needs the exported ``.rknn``
file plus rknn-toolkit-lite2 / librknnrt.

Models are named as in models/manifest.toml; the source .tflite is the verified
cached file and the normalisation comes from the manifest's ``input_range``,
baked into the RKNN graph as mean/std so the NPU is fed raw uint8 NHWC RGB
frames straight from the camera pipeline, with no per-pixel float work on the
CPU.  The output lands where the appliance's rknn backend looks for it:
``models/cache/rknn/<model>-<target>.rknn``.

Example (``make rknn-models SOC=rk3588`` runs this for every NPU model)::

    PYTHONPATH=. .venv-rknn/bin/python models/rknn/convert.py --model selfie_landscape --target rk3588
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # run as a script (python models/rknn/convert.py) or as a module
    from tflite_patch import rewrite_for_rknn
except ImportError:  # pragma: no cover
    from models.rknn.tflite_patch import rewrite_for_rknn

log = logging.getLogger("rknn.convert")

#: Targets we ship. rknn-toolkit2 supports more, but only these are tested.
SUPPORTED_TARGETS = ("rk3588", "rk3576", "rk3568", "rk3566")


def rknn_normalisation(model: str) -> tuple[float, float]:
    """The manifest's ``float = uint8 * scale + offset`` as RKNN's ``(x - mean) / std``."""
    from appliance.inference.manifest import Manifest

    scale, offset = Manifest.load().spec(model).normalisation
    return -offset / scale, 1.0 / scale


def default_paths(model: str, target: str) -> tuple[Path, Path]:
    """(verified source .tflite, output .rknn) for a manifest model."""
    from appliance.inference.manifest import Manifest

    manifest = Manifest.load()
    return manifest.verified_path(model), manifest.cache_dir / "rknn" / f"{model}-{target}.rknn"


class ConversionError(RuntimeError):
    """A rknn-toolkit2 step returned a non-zero status."""


@dataclass(frozen=True)
class ConvertSpec:
    """Everything needed to build one model; the model name is only a label."""

    model: str
    tflite: Path
    mean: float
    std: float
    target: str = "rk3588"
    quantize: bool = False
    dataset: Path | None = None
    verbose: bool = False

    def validate(self) -> None:
        """Fail early with a readable message instead of a toolkit traceback."""
        if not self.tflite.is_file():
            raise ConversionError(f"{self.model}: TFLite model not found: {self.tflite}")
        if self.target not in SUPPORTED_TARGETS:
            raise ConversionError(
                f"{self.model}: unsupported target {self.target!r}; expected one of {SUPPORTED_TARGETS}"
            )
        if self.quantize and (self.dataset is None or not self.dataset.is_file()):
            # rknn-toolkit2 needs a text file listing calibration images (one path per line).
            raise ConversionError(f"{self.model}: --quantize needs --dataset LIST (got {self.dataset})")


def _check(ret: int, step: str, spec: ConvertSpec) -> None:
    """rknn-toolkit2 reports failure via return codes (and logs), not exceptions."""
    if ret != 0:
        raise ConversionError(f"{spec.model}: rknn {step} failed (ret={ret}) for {spec.tflite}")


def build_rknn(spec: ConvertSpec) -> Any:
    """Load + build the model and return the live ``RKNN`` object.

    The object is returned (not just exported) because the x86 simulator can
    only run a model built in the same session; a ``.rknn`` loaded from disk
    needs a real board. The caller owns the object and must ``release()`` it.
    """
    from rknn.api import RKNN  # imported lazily: heavy, and only in .venv-rknn

    spec.validate()
    rknn = RKNN(verbose=spec.verbose)
    try:
        _check(
            rknn.config(
                mean_values=[[spec.mean] * 3],
                std_values=[[spec.std] * 3],
                target_platform=spec.target,
            ),
            "config",
            spec,
        )
        with tempfile.TemporaryDirectory(prefix="rknn-convert-") as tmp:
            # Constructs load_tflite cannot take -> exact builtin equivalents (see tflite_patch).
            source, rewrites = rewrite_for_rknn(spec.tflite, Path(tmp))
            for what, count in rewrites.items():
                log.info("%s: rewrote %d x %s", spec.model, count, what)
            _check(rknn.load_tflite(model=str(source)), "load_tflite", spec)
            _check(
                rknn.build(
                    do_quantization=spec.quantize,
                    dataset=str(spec.dataset) if spec.quantize and spec.dataset else None,
                ),
                "build",
                spec,
            )
    except BaseException:
        rknn.release()
        raise
    return rknn


def convert(spec: ConvertSpec, out: Path) -> float:
    """Build and export ``spec`` to ``out``; return the build+export time in seconds."""
    start = time.perf_counter()
    rknn = build_rknn(spec)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _check(rknn.export_rknn(str(out)), f"export_rknn({out})", spec)
    finally:
        rknn.release()
    return time.perf_counter() - start


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model of models/manifest.toml, e.g. selfie_landscape")
    p.add_argument("--target", default="rk3588", choices=SUPPORTED_TARGETS)
    p.add_argument("--out", type=Path, help="output .rknn path (default: models/cache/rknn/MODEL-TARGET.rknn)")
    p.add_argument("--quantize", action="store_true", help="int8 (w8a8) instead of fp16")
    p.add_argument("--dataset", type=Path, help="calibration list: one image path per line")
    p.add_argument("--verbose", action="store_true", help="rknn-toolkit2 verbose logging")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from appliance.errors import ApplianceError

    try:
        tflite, default_out = default_paths(args.model, args.target)
        out = args.out or default_out
        spec = ConvertSpec(args.model, tflite, *rknn_normalisation(args.model), args.target,
                           args.quantize, args.dataset, args.verbose)
        seconds = convert(spec, out)
    except (ConversionError, ApplianceError) as exc:
        log.error("%s", exc)
        return 1
    size_kib = out.stat().st_size / 1024
    log.info("%s -> %s (%.0f KiB) in %.1f s", spec.model, out, size_kib, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
