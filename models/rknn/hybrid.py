"""Propose a hybrid build's fp16 layers from rknn-toolkit2's per-layer accuracy analysis.

The model is built int8 on its calibration list, then ``accuracy_analysis``
runs a few of the calibration inputs through the float graph and the int8
simulator layer by layer.  Its ``single`` cosine is each layer's own
quantization error (the float input fed to that layer alone); the layers
whose single cosine is lowest are the sensitive ones.  The proposal is every
layer with single cosine below ``--below``, at most ``--most`` of them, worst
first: deterministic for a given model, calibration list and toolkit version.
Paste the printed ``fp16_layers`` into precision.toml with the rule used, then
judge the hybrid with ``make rknn-check``.

    PYTHONPATH=. .venv-rknn/bin/python models/rknn/hybrid.py --model palm_detection_full --below 0.999
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from models.rknn.convert import SUPPORTED_TARGETS, ConversionError, build_rknn, recorded_spec
from models.rknn.evaluate import toolkit_output

log = logging.getLogger("rknn.hybrid")

#: One analysed layer: "[Type] name   entire_cos | entire_euc   single_cos | single_euc" (columns may touch).
_ROW = re.compile(r"^\[(\w+)\] (\S.*?)\s+(\d\.\d{5}) \| *([\d.]+?)\s*(\d\.\d{5}) \| *([\d.]+)\s*$")
#: Analysis rows that are data conversions or the graph's ends, not layers a cfg can set to fp16.
NOT_LAYERS = ("Input", "exDataConvert", "Reshape")


@dataclass(frozen=True)
class LayerError:
    kind: str
    name: str
    entire_cosine: float
    single_cosine: float


def parse_analysis(text: str) -> list[LayerError]:
    """The layers of the toolkit's error_analysis.txt, in graph order."""
    rows = [_ROW.match(line.rstrip()) for line in text.splitlines()]
    return [LayerError(m[1], m[2], float(m[3]), float(m[5])) for m in rows if m and m[1] not in NOT_LAYERS]


def propose(layers: Sequence[LayerError], below: float, most: int) -> list[LayerError]:
    """The layers with single cosine below ``below``, worst first, at most ``most``."""
    return sorted((layer for layer in layers if layer.single_cosine < below), key=lambda e: e.single_cosine)[:most]


def analyse(model: str, target: str, samples: int, logs: Path) -> list[LayerError]:
    """Build ``model`` int8 and run the toolkit's accuracy analysis on ``samples`` of its calibration inputs."""
    spec = recorded_spec(model, target, "int8")
    inputs = [line for line in spec.dataset.read_text().splitlines() if line]
    step = max(1, len(inputs) // samples)
    chosen = inputs[::step][:samples]
    with tempfile.TemporaryDirectory(prefix="rknn-analysis-") as tmp, toolkit_output(logs / f"{model}-analysis.log"):
        rknn = build_rknn(spec)
        try:
            if rknn.accuracy_analysis(inputs=chosen, output_dir=tmp) != 0:
                raise ConversionError(f"{model}: accuracy_analysis failed (see {logs})")
        finally:
            rknn.release()
        return parse_analysis((Path(tmp) / "error_analysis.txt").read_text())


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--target", default="rk3588", choices=SUPPORTED_TARGETS)
    p.add_argument("--samples", type=int, default=4, help="calibration inputs to analyse")
    p.add_argument("--below", type=float, default=0.999, help="single-layer cosine under which a layer is fp16")
    p.add_argument("--most", type=int, default=1000, help="at most this many layers")
    args = p.parse_args(argv)
    from appliance.inference.manifest import Manifest

    try:
        layers = analyse(args.model, args.target, args.samples, Manifest.load().cache_dir / "rknn" / "logs")
    except ConversionError as exc:
        log.error("%s", exc)
        return 1
    chosen = propose(layers, args.below, args.most)
    for layer in chosen:
        log.info("%-8s single %.5f entire %.5f  %s", layer.kind, layer.single_cosine, layer.entire_cosine, layer.name)
    log.info("%d of %d layers below single cosine %g; last layer's entire cosine %.5f", len(chosen), len(layers),
             args.below, layers[-1].entire_cosine if layers else float("nan"))
    print("fp16_layers = " + json.dumps([layer.name for layer in chosen], indent=4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
