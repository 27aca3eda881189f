"""The face fusion's campaign table, ``[fusion]``: the star's poster the shopper's face is fused into, and texts.

Invariants: validated like every campaign table (frozen, unknown keys refused); ``template`` is a bundle PNG or
JPEG (an ``Asset``: ``load_bundle`` checks it exists and ships it).  Whether the poster has a face that can be
fused onto is known only once a model has looked at it: the experience checks it at its first use and fails
with the file's name (``scene.TemplateCache``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from appliance.experience.api import AssetRef, ExperienceConfig
from appliance.experience.photo import check_notice


class FusionConfig(ExperienceConfig):
    template: Annotated[str, AssetRef((".png", ".jpg", ".jpeg"))] = Field(
        description="The star's poster (PNG or JPEG in the bundle) with one face looking at the camera, at least "
                    "80 px from cheek to cheek; the shopper's inner face replaces it, hair and clothes stay.")
    star_name: str = Field("the star", min_length=1, max_length=24, description="The star's name, shown on screen.")
    title: str | None = Field(None, min_length=1, max_length=40,
                              description="The menu card's title; absent: \"Your face in <star_name>'s poster\".")
    subtitle: str = Field("Take it home by QR code", max_length=60, description="The line under the card's title.")
    pose_prompt: str = Field("Look at the screen · thumbs up", min_length=1, max_length=60,
                             description="Shown while the shopper's face can be fused.")
    notice: str | None = Field(
        None, min_length=1, max_length=160,
        description="The one-line notice read before consenting; `{hours}` and `{minutes}` as in `[photo]`. "
                    "Absent: the screen writes it from what it does (upload, print).")
    retakes: int = Field(2, ge=0, le=10, description="How many times a shopper may try again.")
    countdown_s: int = Field(3, ge=1, le=10, description="Seconds of the countdown before the picture is taken.")

    @field_validator("notice")
    def _known_placeholders(cls, notice: str | None) -> str | None:
        return check_notice(notice)

    def card_title(self) -> str:
        return self.title or f"Your face in {self.star_name}'s poster"
