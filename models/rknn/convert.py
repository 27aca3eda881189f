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
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # run as a script (python models/rknn/convert.py) or as a module
    from load import load_model
except ImportError:  # pragma: no cover
    from models.rknn.load import load_model

log = logging.getLogger("rknn.convert")

#: Targets we ship. rknn-toolkit2 supports more, but only these are tested.
SUPPORTED_TARGETS = ("rk3588", "rk3576", "rk3568", "rk3566")
#: fp16: no quantization; int8: w8a8 on the calibration set; hybrid: int8 with ``fp16_layers`` left in fp16.
PRECISIONS = ("fp16", "int8", "hybrid")
#: rknn-toolkit2's quantized_algorithm: how the int8 ranges are fitted to the calibration set.
ALGORITHMS = ("normal", "mmse", "kl_divergence")


def rknn_normalisation(model: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The manifest's ``float[c] = uint8[c] * scale + offset[c]`` as RKNN's per-channel ``(x - mean) / std``.

    One value per channel in the model's channel order (RGB for every model here),
    so per-channel models (age, gender) are baked in like the uniform ones.
    """
    from appliance.inference.manifest import Manifest

    scale, offsets = Manifest.load().spec(model).channel_normalisation
    return tuple(-offset / scale for offset in offsets), (1.0 / scale,) * len(offsets)


def default_paths(model: str, target: str) -> tuple[Path, Path]:
    """(verified source .tflite, output .rknn) for a manifest model."""
    from appliance.inference.manifest import Manifest

    manifest = Manifest.load()
    return manifest.verified_path(model), manifest.cache_dir / "rknn" / f"{model}-{target}.rknn"


def recorded_spec(model: str, target: str, precision: str | None = None, dataset: Path | None = None,
                  verbose: bool = False) -> ConvertSpec:
    """What ``make rknn-models`` builds: the model's precision and fp16 layers from precision.toml
    (``precision`` overrides the choice, keeping the recorded hybrid layers) and the calibration list
    ``make rknn-calibration`` wrote (unless ``dataset`` is given)."""
    from appliance.inference.manifest import Manifest
    from models.rknn.calibrate import dataset_list
    from models.rknn.precision import recorded_choice

    choice = recorded_choice(model)
    precision = precision or choice.precision
    if precision != "fp16" and dataset is None:
        dataset = dataset_list(Manifest.load(), model)
    tflite, _ = default_paths(model, target)
    return ConvertSpec(model, tflite, *rknn_normalisation(model), target, precision, dataset,
                       choice.fp16_layers if precision == "hybrid" else (), choice.algorithm, verbose)


class ConversionError(RuntimeError):
    """A rknn-toolkit2 step returned a non-zero status."""


@dataclass(frozen=True)
class ConvertSpec:
    """Everything needed to build one model; the model name is only a label."""

    model: str
    tflite: Path
    mean: tuple[float, ...]  # per channel, as rknn_normalisation gives it
    std: tuple[float, ...]
    target: str = "rk3588"
    precision: str = "fp16"
    dataset: Path | None = None          # the toolkit's calibration list (int8, hybrid)
    fp16_layers: tuple[str, ...] = ()    # hybrid: tensors (as the toolkit's quantization.cfg names them) kept fp16
    algorithm: str = "normal"            # int8, hybrid: one of ALGORITHMS
    verbose: bool = False

    def validate(self) -> None:
        """Fail early with a readable message instead of a toolkit traceback."""
        if not self.tflite.is_file():
            raise ConversionError(f"{self.model}: TFLite model not found: {self.tflite}")
        if self.target not in SUPPORTED_TARGETS:
            raise ConversionError(
                f"{self.model}: unsupported target {self.target!r}; expected one of {SUPPORTED_TARGETS}"
            )
        if self.precision not in PRECISIONS:
            raise ConversionError(f"{self.model}: unknown precision {self.precision!r}; expected one of {PRECISIONS}")
        if self.precision != "fp16" and (self.dataset is None or not self.dataset.is_file()):
            # rknn-toolkit2 needs a text file listing calibration images (one path per line).
            raise ConversionError(f"{self.model}: {self.precision} needs a calibration list (got {self.dataset}); "
                                  "`make rknn-calibration` writes them")
        if self.algorithm not in ALGORITHMS:
            raise ConversionError(f"{self.model}: unknown quantized algorithm {self.algorithm!r}; expected one of "
                                  f"{ALGORITHMS}")
        if (self.precision == "hybrid") != bool(self.fp16_layers):
            raise ConversionError(f"{self.model}: fp16_layers are for hybrid, and hybrid needs them "
                                  f"(precision {self.precision}, {len(self.fp16_layers)} layers)")


def _check(ret: int, step: str, spec: ConvertSpec) -> None:
    """rknn-toolkit2 reports failure via return codes (and logs), not exceptions."""
    if ret != 0:
        raise ConversionError(f"{spec.model}: rknn {step} failed (ret={ret}) for {spec.tflite}")


def build_rknn(spec: ConvertSpec, loaded_only: bool = False) -> Any:
    """Load + build the model and return the live ``RKNN`` object.

    The object is returned (not just exported) because the x86 simulator can
    only run a model built in the same session; a ``.rknn`` loaded from disk
    needs a real board. The caller owns the object and must ``release()`` it.
    ``loaded_only`` stops after config and load (the toolkit's hybrid proposal
    starts there).
    """
    from rknn.api import RKNN  # imported lazily: heavy, and only in .venv-rknn

    spec.validate()
    rknn = RKNN(verbose=spec.verbose)
    try:
        _check(
            rknn.config(
                mean_values=[list(spec.mean)],
                std_values=[list(spec.std)],
                target_platform=spec.target,
                quantized_algorithm=spec.algorithm,
            ),
            "config",
            spec,
        )
        with tempfile.TemporaryDirectory(prefix="rknn-convert-") as tmp:
            # TFLite or ONNX, with exact rewrites of what the toolkit cannot take (see load.py).
            ret, step = load_model(rknn, spec.model, spec.tflite, Path(tmp))
            _check(ret, step, spec)
            if not loaded_only:  # loaded only: for the toolkit's hybrid proposal (hybrid.py)
                rknn = _build(rknn, spec, Path(tmp))
    except BaseException:
        rknn.release()
        raise
    return rknn


def _build(rknn: Any, spec: ConvertSpec, workdir: Path) -> Any:
    """Build the loaded model in ``spec.precision``; returns the built object (for hybrid, a new one).

    Hybrid is the toolkit's two steps: step 1 quantizes on the calibration set
    and writes ``<model>.model/.data/.quantization.cfg`` into the working
    directory; the cfg's ``custom_quantize_layers`` then names the fp16 tensors
    and step 2 builds from the three files.  On success ``rknn`` is released.
    """
    if spec.precision != "hybrid":
        quantize = spec.precision == "int8"
        _check(rknn.build(do_quantization=quantize, dataset=str(spec.dataset) if quantize else None), "build", spec)
        return rknn
    from rknn.api import RKNN

    config = hybrid_step1(rknn, spec, workdir, proposal=False)
    stem = config.name.removesuffix(".quantization.cfg")
    _keep_fp16(config, spec)
    hybrid = RKNN(verbose=spec.verbose)
    try:
        _check(hybrid.hybrid_quantization_step2(model_input=str(workdir / f"{stem}.model"),
                                                data_input=str(workdir / f"{stem}.data"),
                                                model_quantization_cfg=str(config)),
               "hybrid_quantization_step2", spec)
    except BaseException:
        hybrid.release()
        raise
    rknn.release()
    return hybrid


def hybrid_step1(rknn: Any, spec: ConvertSpec, workdir: Path, **options: Any) -> Path:
    """The toolkit's hybrid step 1 on ``spec``'s calibration list, run in ``workdir`` (it writes its
    ``<model>.model/.data/.quantization.cfg`` into the working directory); returns the config's path."""
    here = Path.cwd()
    os.chdir(workdir)
    try:
        _check(rknn.hybrid_quantization_step1(dataset=str(spec.dataset), **options), "hybrid_quantization_step1",
               spec)
    finally:
        os.chdir(here)
    configs = sorted(workdir.glob("*.quantization.cfg"))
    if len(configs) != 1:
        raise ConversionError(f"{spec.model}: hybrid step 1 left {len(configs)} quantization.cfg files in {workdir}")
    return configs[0]


def _keep_fp16(config: Path, spec: ConvertSpec) -> None:
    """Name ``spec.fp16_layers`` in the step-1 config's ``custom_quantize_layers`` as float16.

    Only that first line is rewritten: step 2 refuses a config whose quantize
    parameters differ from step 1's in any way, a YAML round trip's float formatting included.
    """
    from ruamel.yaml import YAML

    text = config.read_text()
    head, sep, rest = text.partition("\n")
    if head.strip() != "custom_quantize_layers: {}" or not sep:
        raise ConversionError(f"{spec.model}: {config.name} does not start with an empty custom_quantize_layers "
                              f"(rknn-toolkit2 other than 2.5.0?): {head[:80]!r}")
    known = YAML(typ="safe").load(rest).get("quantize_parameters") or {}
    missing = [name for name in spec.fp16_layers if name not in known]
    if missing:
        raise ConversionError(f"{spec.model}: fp16 layers not in the toolkit's graph (renamed by another toolkit "
                              f"version? propose them again with models/rknn/hybrid.py): {missing}")
    layers = "".join(f"    {json.dumps(name)}: float16\n" for name in spec.fp16_layers)
    config.write_text("custom_quantize_layers:\n" + layers + rest)


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
    p.add_argument("--precision", choices=PRECISIONS,
                   help="default: the model's choice in models/rknn/precision.toml (fp16 when it has none)")
    p.add_argument("--dataset", type=Path,
                   help="calibration list, one image a line (default: the one `make rknn-calibration` wrote)")
    p.add_argument("--verbose", action="store_true", help="rknn-toolkit2 verbose logging")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from appliance.errors import ApplianceError

    try:
        out = args.out or default_paths(args.model, args.target)[1]
        spec = recorded_spec(args.model, args.target, args.precision, args.dataset, args.verbose)
        seconds = convert(spec, out)
    except (ConversionError, ApplianceError) as exc:
        log.error("%s", exc)
        return 1
    size_kib = out.stat().st_size / 1024
    log.info("%s [%s] -> %s (%.0f KiB) in %.1f s", spec.model, spec.precision, out, size_kib, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
