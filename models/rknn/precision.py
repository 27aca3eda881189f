"""The precision record (precision.toml): per NPU model, the precision it ships in and why.

``make rknn-models`` builds each model as recorded here; ``make rknn-check``
judges fp16, int8 and hybrid side by side and fails when a recorded choice
misses its target.  Per model (``[models.<name>]``):

- ``precision``: ``int8`` | ``hybrid`` | ``fp16`` (the fastest that is within target);
- ``fp16_layers``: the hybrid build's fp16 tensors (as rknn-toolkit2's quantization.cfg
  names them), proposed by models/rknn/hybrid.py from the toolkit's per-layer accuracy
  analysis; recorded whenever a hybrid was tried, so its row can be rebuilt;
- ``algorithm``: rknn-toolkit2's quantized_algorithm for the int8 and hybrid builds
  (``normal`` min/max, ``mmse``, ``kl_divergence``; default normal);
- ``reason``: the measured figures behind the choice.

Invariant: a model not in the record is built fp16 (never quantized unjudged);
a hybrid choice always names its fp16 layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from appliance.tomlfile import read_toml, validated

RECORD = Path(__file__).resolve().with_name("precision.toml")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    precision: Literal["fp16", "int8", "hybrid"]
    fp16_layers: list[str] = []
    algorithm: Literal["normal", "mmse", "kl_divergence"] = "normal"
    reason: str

    @model_validator(mode="after")
    def _hybrid_names_layers(self) -> _Entry:
        if self.precision == "hybrid" and not self.fp16_layers:
            raise ValueError("a hybrid choice needs fp16_layers (models/rknn/hybrid.py proposes them)")
        return self


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, _Entry] = {}


@dataclass(frozen=True)
class Choice:
    precision: str = "fp16"
    fp16_layers: tuple[str, ...] = ()
    algorithm: str = "normal"
    reason: str = "not in precision.toml: fp16 until judged"
    recorded: bool = False


def read_record(path: Path = RECORD) -> dict[str, Choice]:
    """Every recorded model's choice (ApplianceError naming the key and line when malformed)."""
    record = validated(_Record, read_toml(path), path)
    return {model: Choice(entry.precision, tuple(entry.fp16_layers), entry.algorithm, entry.reason, True)
            for model, entry in record.models.items()}


def recorded_choice(model: str, path: Path = RECORD) -> Choice:
    return read_record(path).get(model, Choice())
