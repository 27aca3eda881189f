"""Propose a hybrid build's fp16 layers: rknn-toolkit2's own proposal from its per-layer accuracy analysis.

``hybrid_quantization_step1(proposal=True)`` quantizes the model on its
calibration list, runs ``proposal_dataset_size`` of those inputs through the
float graph and the int8 simulator layer by layer, and fills the step-1
config's ``custom_quantize_layers`` with the tensors whose quantization costs
the most accuracy (as float16).  This prints them as precision.toml's
``fp16_layers``: the names are the config's own, so step 2 (convert._build)
takes them as they are.  The proposal depends only on the model, the
calibration list, ``--samples`` and the toolkit version, so it can be made
again; judge the hybrid with ``make rknn-check`` before recording it.

(Measured on hand_landmark_full: the toolkit's 15 tensors bring the landmark
error from 1.75 % to 0.62 % of the hand; the 37 layers whose single-layer
cosine in ``accuracy_analysis`` was below 0.9999 only to 1.67 %.)

    PYTHONPATH=. .venv-rknn/bin/python models/rknn/hybrid.py --model hand_landmark_full
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from models.rknn.convert import SUPPORTED_TARGETS, ConversionError, build_rknn, hybrid_step1, recorded_spec
from models.rknn.evaluate import toolkit_output

log = logging.getLogger("rknn.hybrid")


def propose(model: str, target: str, samples: int, logs: Path) -> list[str]:
    """The tensors rknn-toolkit2 proposes to keep in fp16 for ``model``, in its config's order."""
    from ruamel.yaml import YAML

    spec = recorded_spec(model, target, "int8")
    with tempfile.TemporaryDirectory(prefix="rknn-proposal-") as tmp, toolkit_output(logs / f"{model}-proposal.log"):
        rknn = build_rknn(spec, loaded_only=True)
        try:
            path = hybrid_step1(rknn, spec, Path(tmp), proposal=True, proposal_dataset_size=samples)
        finally:
            rknn.release()
        config = YAML(typ="safe").load(path)
    proposed = [str(name) for name in config.get("custom_quantize_layers") or {}]
    known = config.get("quantize_parameters") or {}
    dropped = [name for name in proposed if name not in known]
    if dropped:  # step 2 only takes tensors the config quantizes; the proposal sometimes names others
        log.warning("%s: %d proposed tensors are not quantized tensors of the config, left out: %s",
                    model, len(dropped), dropped)
    return [name for name in proposed if name in known]


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--target", default="rk3588", choices=SUPPORTED_TARGETS)
    p.add_argument("--samples", type=int, default=4, help="calibration inputs the toolkit analyses")
    args = p.parse_args(argv)
    from appliance.inference.manifest import Manifest

    try:
        layers = propose(args.model, args.target, args.samples, Manifest.load().cache_dir / "rknn" / "logs")
    except ConversionError as exc:
        log.error("%s", exc)
        return 1
    log.info("%s: the toolkit proposes %d tensors in fp16", args.model, len(layers))
    print("fp16_layers = " + json.dumps(layers, indent=4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
