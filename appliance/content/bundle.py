"""The campaign.toml schema of a content bundle, and its loader.

A bundle is a directory holding ``campaign.toml`` and the media it names.
Errors come out as one line naming the file and the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from appliance.errors import ApplianceError
from appliance.experience.api import ATTRACT, MENU, AssetRef, ExperienceConfig
from appliance.experience.assets import assets
from appliance.experience.registry import Registry, installed
from appliance.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from appliance.tomlfile import InvalidFile, line_of, read_toml, reject_duplicates, validated

DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parents[2] / "content" / "default"
CAMPAIGN_FILE = "campaign.toml"

class _Strict(BaseModel):
    """A typo in a campaign file must be refused, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _png(value: str | None) -> str | None:
    """Images drawn over the mirror (overlays, the RPS star) need an alpha channel, so PNG only."""
    if value is not None and Path(value).suffix.lower() != ".png":
        raise ValueError(f"{value!r} must be a .png (images drawn over the mirror need an alpha channel)")
    return value


class SnowSpec(_Strict):
    """Falling snow drawn over the whole screen. Sizes and speeds are in pixels of a 1080-line
    screen and scale with the real screen height, so a campaign looks the same on 4K."""

    count: int = Field(300, ge=0, le=5000, description="Number of flakes on screen at once.")
    min_radius: float = Field(1.0, gt=0, le=32, description="Radius of the smallest (farthest) flake.")
    max_radius: float = Field(4.0, gt=0, le=32, description="Radius of the largest (nearest) flake.")
    speed: float = Field(80.0, ge=0, le=2000, description="Fall speed of the largest flakes, px/s.")
    wind: float = Field(15.0, ge=-2000, le=2000, description="Horizontal drift, px/s; negative blows left.")
    seed: int = Field(0, description="Random seed: the same seed gives the same flakes.")

    @model_validator(mode="after")
    def _radii_ordered(self) -> SnowSpec:
        if self.min_radius > self.max_radius:
            raise ValueError(f"min_radius {self.min_radius} is larger than max_radius {self.max_radius}")
        return self


class OverlaySpec(_Strict):
    """A PNG (with alpha) drawn over the screen: a logo, a frame, a sponsor mark."""

    image: str = Field(description="PNG path relative to the bundle directory.")
    anchor: Literal["top-left", "top-right", "bottom-left", "bottom-right", "center", "fill"] = Field(
        "top-left", description="Where the overlay sits; `fill` stretches it over the whole screen."
    )
    margin: float = Field(0.03, ge=0, le=0.5, description="Gap to the screen edge, as a fraction of screen height.")
    scale: float = Field(
        0.15, gt=0, le=1, description="Overlay height as a fraction of screen height (ignored for `fill`)."
    )

    _image_is_png = field_validator("image")(_png)


class SceneSpec(_Strict):
    """One world the shopper can be put in."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Stable identifier used in events and menus.")
    title: str = Field(min_length=1, description="Name shown on screen.")
    background: str = Field(description="Image (.png/.jpg) or looping video (.mp4), relative to the bundle.")
    mirror: bool = Field(True, description="Flip the camera horizontally so the screen acts like a mirror.")
    feather_px: int = Field(6, ge=0, le=64, description="Softening of the person's edge, in camera pixels.")
    snow: SnowSpec | None = Field(None, description="Falling snow; absent means none.")
    overlays: list[OverlaySpec] = Field(default_factory=list, description="Drawn in order, last on top.")

    @field_validator("background")
    def _known_media(cls, value: str) -> str:
        if Path(value).suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
            known = ", ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
            raise ValueError(f"{value!r} is not a supported background ({known})")
        return value


class Campaign(_Strict):
    """The core of campaign.toml; each experience's table is a field added per device (``campaign_model``)."""

    name: str = Field(min_length=1, description="Campaign name, for operators and logs.")
    scenes: list[SceneSpec] = Field(min_length=1, description="The worlds on offer, the first is the default.")
    experiences: list[str] | None = Field(
        None, min_length=1, description="The experiences the menu offers, in this order; absent: the live mirror, then each "
                          "experience that has its table here (rps).")

    @field_validator("scenes")
    def _unique_ids(cls, scenes: list[SceneSpec]) -> list[SceneSpec]:
        reject_duplicates([scene.id for scene in scenes], "scene id")
        return scenes

    @field_validator("experiences")
    def _listed_once(cls, names: list[str] | None) -> list[str] | None:
        if names is not None:
            reject_duplicates(names, "experience")
            for role in (ATTRACT, MENU):
                if role in names:
                    raise ValueError(f"{role!r} is not offered on the menu (the kiosk shows it by itself)")
        return names


@lru_cache(maxsize=8)
def campaign_model(configs: tuple[tuple[str, type[ExperienceConfig]], ...]) -> type[Campaign]:
    """``Campaign`` with an optional field for each installed experience's table."""
    fields: dict[str, Any] = {name: (model | None, None) for name, model in configs}
    return create_model("Campaign", __base__=Campaign, **fields)


@dataclass(frozen=True)
class Bundle:
    """A validated campaign and the directory its media paths are relative to.

    ``experiences`` are the names the menu offers, in the campaign's order, each installed here;
    ``configs`` holds each experience's validated table (only those the campaign has)."""

    directory: Path
    name: str
    scenes: tuple[SceneSpec, ...]
    experiences: tuple[str, ...] = ()
    configs: Mapping[str, ExperienceConfig] = field(default_factory=dict)

    def assets(self) -> list[tuple[str, str, AssetRef]]:
        """(key, path, ref) of every file the experiences' tables name."""
        return [found for name, config in self.configs.items() for found in assets(config, name)]

    def media(self) -> list[str]:
        """Every media path the campaign names (backgrounds, overlays, experience assets), normalised, each once."""
        names: list[str] = []
        for scene in self.scenes:
            names += [scene.background, *(overlay.image for overlay in scene.overlays)]
        names += [path for _, path, _ in self.assets()]
        return list(dict.fromkeys(str(PurePosixPath(name)) for name in names))

    def scene(self, scene_id: str) -> SceneSpec:
        for scene in self.scenes:
            if scene.id == scene_id:
                return scene
        known = ", ".join(scene.id for scene in self.scenes)
        raise ApplianceError(f"campaign {self.name!r} has no scene {scene_id!r} (it has: {known})")


def _check_media(bundle_dir: Path, toml_path: Path, key: str, relative: str) -> None:
    root = bundle_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ApplianceError(f"{toml_path}: {key}: {relative!r} points outside the bundle directory")
    hint = ""
    if root == DEFAULT_BUNDLE_DIR.resolve():
        hint = "; generate the default media with `python -m appliance.content generate`"
    if not path.is_file():
        raise ApplianceError(f"{toml_path}: {key}: {path} does not exist{hint}")
    if not os.access(path, os.R_OK):
        raise ApplianceError(f"{toml_path}: {key}: {path} is not readable (check its permissions)")


def load_bundle(bundle_dir: Path, registry: Registry | None = None) -> Bundle:
    """Parse and validate ``bundle_dir/campaign.toml`` against the experiences installed (``registry``,
    default: this environment's) and check every media file it names.

    A table of an experience that is not installed, or an ``experiences`` entry naming one, is
    refused with its line: a campaign is never half-shown.  Decoding the media is left to the
    compositor and the kiosk, which decode them anyway and report an undecodable file by name.
    """
    registry = registry if registry is not None else installed()
    toml_path = Path(bundle_dir) / CAMPAIGN_FILE
    data = read_toml(toml_path)
    lines = getattr(data, "lines", {})
    core = set(Campaign.model_fields)
    configs = tuple((name, registry[name].config) for name in registry.names() if registry[name].config is not None)
    for key in data:
        if key not in core and key not in registry:
            raise InvalidFile(toml_path, [f"[{key}]: no experience {key!r} is installed here ({_installed(registry)})"
                                          + _at(lines, (key,))])
    campaign = validated(campaign_model(configs), data, toml_path)
    for i, scene in enumerate(campaign.scenes):
        _check_media(bundle_dir, toml_path, f"scenes[{i}].background", scene.background)
        for j, overlay in enumerate(scene.overlays):
            _check_media(bundle_dir, toml_path, f"scenes[{i}].overlays[{j}].image", overlay.image)
    tables = {name: getattr(campaign, name) for name, _ in configs if getattr(campaign, name) is not None}
    offered = _offered(campaign.experiences, tables, registry, toml_path, lines)
    for name in offered:   # an experience listed without its table gets its config's defaults
        model = registry[name].config
        if model is not None and name not in tables:
            tables[name] = model()
    bundle = Bundle(Path(bundle_dir), campaign.name, tuple(campaign.scenes), offered, tables)
    for key, path, ref in bundle.assets():
        if PurePosixPath(path).suffix.lower() not in ref.suffixes:
            wanted = f"a {ref.suffixes[0]}" if len(ref.suffixes) == 1 else f"one of {', '.join(ref.suffixes)}"
            raise InvalidFile(toml_path, [f"{key}: {path!r} must be {wanted}" + _at(lines, tuple(key.split(".")))])
    for key, path, _ in bundle.assets():
        _check_media(bundle_dir, toml_path, key, path)
    return bundle


def _installed(registry: Registry) -> str:
    return f"installed: {', '.join(registry.names())}" if registry.names() else "none installed"


def _at(lines: dict, location: tuple[str | int, ...]) -> str:
    line = line_of(lines, location)
    return f" (line {line})" if line else ""


def _offered(listed: list[str] | None, tables: Mapping[str, ExperienceConfig], registry: Registry, toml_path: Path,
             lines: dict) -> tuple[str, ...]:
    """What the menu offers: the campaign's list (each installed, with its table when it has a config), or,
    without one, the experiences ``offered`` "always", then those "with_table" whose table is here."""
    if listed is None:
        always = [name for name in registry.names() if registry[name].offered == "always"]
        return tuple(always + [name for name in tables if registry[name].offered == "with_table"])
    for index, name in enumerate(listed):
        where = _at(lines, ("experiences",))
        if name not in registry:
            raise InvalidFile(toml_path, [f"experiences[{index}]: no experience {name!r} is installed here "
                                          f"({_installed(registry)}){where}"])
        model = registry[name].config
        if model is not None and name not in tables and any(f.is_required() for f in model.model_fields.values()):
            raise InvalidFile(toml_path, [f"experiences[{index}]: {name!r} needs its [{name}] table{where}"])
    return tuple(listed)
