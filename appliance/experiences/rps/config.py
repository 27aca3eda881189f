"""The ``[rps]`` table of a campaign: rock–paper–scissors against the campaign's star."""

from __future__ import annotations

from pydantic import Field

from appliance.experience.api import Asset, ExperienceConfig


class RpsConfig(ExperienceConfig):
    star_name: str = Field(min_length=1, max_length=24, description="The star's name, shown on screen.")
    star_image: Asset = Field(description="PNG with alpha of the star, relative to the bundle.")
    star_happy_image: Asset | None = Field(None, description="The star when it wins; absent: star_image.")
    star_sad_image: Asset | None = Field(None, description="The star when it loses; absent: star_image.")
    win_rate: float | None = Field(
        None, ge=0, le=1,
        description="Probability that the shopper wins a round (prize campaigns); absent: the star throws at random.",
    )
    rounds_to_win: int = Field(2, ge=1, le=5, description="Rounds a player needs to win the game (2: best of three).")
    beat_s: float = Field(0.7, ge=0.05, le=3.0, description="Seconds per countdown word (rock, paper, scissors, shoot).")
    intro_s: float = Field(3.0, ge=0.1, le=15.0, description="Seconds the game's introduction stays on screen.")
