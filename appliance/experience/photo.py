"""The experience API's photo table (since API 1.3): ``[photo]`` of a campaign — the star, where it stands, the frame,
the print format and the texts; the kiosk's photo desk composes by it, any photo experience reads it.

Invariants: validated like every campaign table (frozen, unknown keys refused); ``star``, ``frame``
and ``logo`` are bundle PNGs (``Asset``), so ``load_bundle`` checks they exist; ``print_size_px``
is given landscape (long side first) and ``orientation`` decides which side is the width.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from appliance.experience.api import Asset, ExperienceConfig


class PhotoConfig(ExperienceConfig):
    star: Asset = Field(description="The star's cut-out, a PNG with alpha (a full-length figure), relative to the "
                                    "bundle; `python -m appliance.ops star-cutout` makes one from a photo.")
    star_name: str = Field("the star", min_length=1, max_length=24, description="The star's name, shown on screen.")
    star_side: Literal["left", "right", "auto"] = Field(
        "auto", description="Which side of the shopper the star stands on, as seen in the photo; `auto`: the side "
                            "with more room.")
    star_scale: float = Field(1.0, ge=0.3, le=2.0, description="The star's height relative to the shopper's.")
    star_harmonize: float = Field(0.3, ge=0, le=1, description="How far the star's colours move toward the world's "
                                                               "light (Reinhard transfer; 0: not at all).")
    harmonize: float = Field(0.5, ge=0, le=1, description="How far the shopper's colours move toward the world's "
                                                          "light (Reinhard transfer; 0: not at all).")
    shadow: bool = Field(True, description="Soft shadows behind the shopper and the star, and a contact shadow "
                                           "under feet that are in the picture.")
    world: str | None = Field(None, description="The scene id the photo is taken in; absent: the world the shopper "
                                                "is in (the `photo` command: the campaign's first).")
    world_overlays: bool = Field(True, description="Draw the world's own overlays (logo, frame) on the photo; "
                                                   "turn off when the photo's frame replaces them.")
    frame: Asset | None = Field(None, description="PNG with alpha stretched over the whole photo (the campaign's "
                                                  "frame).")
    logo: Asset | None = Field(None, description="PNG with alpha placed in a corner of the photo.")
    logo_anchor: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = Field(
        "bottom-right", description="The corner the logo sits in.")
    logo_scale: float = Field(0.12, gt=0, le=0.5, description="The logo's height as a fraction of the photo's.")
    orientation: Literal["landscape", "portrait"] = Field("landscape", description="The photo's orientation.")
    print_size_px: tuple[int, int] = Field(
        (1800, 1200), description="The print's long and short side in pixels (6x4 in at 300 dpi by default).")
    screen_long_side_px: int = Field(1280, ge=320, le=3840, description="Long side of the version shown on screen.")
    jpeg_quality: int = Field(92, ge=50, le=100, description="JPEG quality of the photo files.")
    retakes: int = Field(2, ge=0, le=10, description="How many times a shopper may try again.")
    countdown_s: int = Field(3, ge=1, le=10, description="Seconds of the countdown before the photo is taken.")
    title: str = Field("Photo with the star", min_length=1, max_length=40, description="The menu card's title.")
    subtitle: str = Field("Take it home by QR code", max_length=60, description="The line under the menu card's title.")
    pose_prompt: str = Field("Thumbs up to take the photo", min_length=1, max_length=60,
                             description="Shown while the shopper poses.")
    review_prompt: str = Field("Thumbs up: print and take it home · swipe: try again", min_length=1, max_length=80,
                               description="Shown under the finished photo.")
    notice: str | None = Field(
        None, min_length=1, max_length=160,
        description="The one-line notice the shopper reads before consenting (what leaves the screen, for how long); "
                    "`{hours}` is replaced by the hours the QR link works and `{minutes}` by the minutes the screen "
                    "keeps the photo at most. Absent: the screen writes it from what it does (upload, print).")

    @field_validator("notice")
    def _known_placeholders(cls, notice: str | None) -> str | None:
        if notice is not None:
            try:
                notice.format(hours=24, minutes=10)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"{notice!r}: only {{hours}} and {{minutes}} may be filled in ({exc})") from None
        return notice

    @field_validator("print_size_px")
    def _long_side_first(cls, size: tuple[int, int]) -> tuple[int, int]:
        long, short = size
        if not 300 <= short <= long <= 8000:
            raise ValueError(f"{list(size)}: give [long, short] in pixels, 300..8000, long side first")
        return size

    def photo_size(self) -> tuple[int, int]:
        """The print's (width, height) for the configured orientation."""
        long, short = self.print_size_px
        return (long, short) if self.orientation == "landscape" else (short, long)

    def screen_size(self) -> tuple[int, int]:
        """The screen version's (width, height): the print's aspect, ``screen_long_side_px`` on the long side."""
        width, height = self.photo_size()
        scale = self.screen_long_side_px / max(width, height)
        return round(width * scale), round(height * scale)
