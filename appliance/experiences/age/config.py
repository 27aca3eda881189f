"""The ``[age]`` table of a campaign: what "AI guesses your age" says and whether it guesses gender.

Invariants: gender is off unless the campaign turns it on (then, and only then, the gender model
runs); every text is the campaign's own, short enough for a label beside a face.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from appliance.experience.api import ExperienceConfig


class AgeConfig(ExperienceConfig):
    gender: bool = Field(False, description="Guess and show gender too (false: the gender model is not even run).")
    title: str = Field("AI guesses your age", min_length=1, max_length=40, description="The line at the top.")
    thinking: str = Field("Thinking", min_length=1, max_length=24,
                          description="Beside a face until enough guesses (dots are added as it thinks).")
    looks: str = Field("Looks {band}", min_length=1, max_length=32,
                       description="An adult's label; {band} is the age band (\"25-35\").")
    kid: str = Field("Young star!", min_length=1, max_length=32, description="A child's label (no number, ever).")
    teen: str = Field("Teen spirit!", min_length=1, max_length=32, description="A teenager's label (no number).")
    woman: str = Field("woman", min_length=1, max_length=16, description="Shown under the band (gender on).")
    man: str = Field("man", min_length=1, max_length=16, description="Shown under the band (gender on).")
    hint: str = Field("Hold an open hand: menu", max_length=60, description="The line at the bottom.")
    guesses: int = Field(5, ge=1, le=9, description="Guesses of a face before its band shows (fewer: faster, jumpier).")
    play_s: float = Field(40.0, ge=10.0, le=300.0, description="Seconds before going back to the menu.")

    @field_validator("looks")
    @classmethod
    def _band(cls, looks: str) -> str:
        if "{band}" not in looks:
            raise ValueError("must say where the band goes: {band}")
        try:
            looks.format(band="25-35")
        except (IndexError, KeyError, ValueError) as exc:
            raise ValueError(f"{{band}} is the only field it may have ({exc})") from exc
        return looks
