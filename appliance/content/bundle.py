"""The campaign.toml schema of a content bundle, and its loader.

A bundle is a directory holding ``campaign.toml`` and the media it names.
Errors come out as one line naming the file and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from appliance.errors import ApplianceError
from appliance.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from appliance.tomlfile import read_toml, reject_duplicates, validated

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


class RpsSpec(_Strict):
    """Rock–paper–scissors against the campaign's star."""

    star_name: str = Field(min_length=1, max_length=24, description="The star's name, shown on screen.")
    star_image: str = Field(description="PNG with alpha of the star, relative to the bundle.")
    star_happy_image: str | None = Field(None, description="The star when it wins; absent: star_image.")
    star_sad_image: str | None = Field(None, description="The star when it loses; absent: star_image.")
    win_rate: float | None = Field(
        None, ge=0, le=1,
        description="Probability that the shopper wins a round (prize campaigns); absent: the star throws at random.",
    )
    rounds_to_win: int = Field(2, ge=1, le=5, description="Rounds a player needs to win the game (2: best of three).")
    beat_s: float = Field(0.7, ge=0.05, le=3.0, description="Seconds per countdown word (rock, paper, scissors, shoot).")

    _images_are_png = field_validator("star_image", "star_happy_image", "star_sad_image")(_png)

    def images(self) -> dict[str, str]:
        """Key → path of every image the spec names (for the media check)."""
        keys = ("star_image", "star_happy_image", "star_sad_image")
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}


class Campaign(_Strict):
    """The contents of campaign.toml."""

    name: str = Field(min_length=1, description="Campaign name, for operators and logs.")
    scenes: list[SceneSpec] = Field(min_length=1, description="The worlds on offer, the first is the default.")
    rps: RpsSpec | None = Field(None, description="Rock–paper–scissors; absent: the menu does not offer it.")

    @field_validator("scenes")
    def _unique_ids(cls, scenes: list[SceneSpec]) -> list[SceneSpec]:
        reject_duplicates([scene.id for scene in scenes], "scene id")
        return scenes


@dataclass(frozen=True)
class Bundle:
    """A validated campaign and the directory its media paths are relative to."""

    directory: Path
    name: str
    scenes: tuple[SceneSpec, ...]
    rps: RpsSpec | None = None

    def media(self) -> list[str]:
        """Every media path the campaign names (backgrounds, overlays, the star), normalised, each once."""
        names: list[str] = []
        for scene in self.scenes:
            names += [scene.background, *(overlay.image for overlay in scene.overlays)]
        if self.rps:
            names += list(self.rps.images().values())
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


def load_bundle(bundle_dir: Path) -> Bundle:
    """Parse and validate ``bundle_dir/campaign.toml`` and check every media file it names.

    Decoding the media is left to the compositor, which has to decode them anyway and
    reports an undecodable file by name when a scene is built.
    """
    toml_path = Path(bundle_dir) / CAMPAIGN_FILE
    campaign = validated(Campaign, read_toml(toml_path), toml_path)
    for i, scene in enumerate(campaign.scenes):
        _check_media(bundle_dir, toml_path, f"scenes[{i}].background", scene.background)
        for j, overlay in enumerate(scene.overlays):
            _check_media(bundle_dir, toml_path, f"scenes[{i}].overlays[{j}].image", overlay.image)
    if campaign.rps:
        for key, image in campaign.rps.images().items():
            _check_media(bundle_dir, toml_path, f"rps.{key}", image)
    return Bundle(directory=Path(bundle_dir), name=campaign.name, scenes=tuple(campaign.scenes), rps=campaign.rps)
