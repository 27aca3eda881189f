"""The experience API's photo table (since API 1.3): ``[photo]`` of a campaign — the star, where it stands, the frame,
the print format and the texts; the kiosk's photo desk composes by it, any photo experience reads it.

Invariants: validated like every campaign table (frozen, unknown keys refused); ``star``, ``frame``
and ``logo`` are bundle PNGs (``Asset``), so ``load_bundle`` checks they exist; ``print_size_px``
is given landscape (long side first) and ``orientation`` decides which side is the width.  ``styles``
(since API 1.4) are named uniquely (never "Original", the unstyled photo's name), each one of the 26
built-in styles by ``index`` or the campaign's own painting by ``image`` (a bundle PNG or JPEG, checked
like every asset), never both; ``style_default`` names one of them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from appliance.experience.api import Asset, AssetRef, ExperienceConfig

#: The unstyled photo's name in the booth's choice of styles.
ORIGINAL = "Original"
#: How many styles the multistyle network knows (``PhotoStyle.index``).
BUILT_IN_STYLES = 26
#: The stroke sizes a style is painted with, finest first.
STROKES = ("fine", "medium", "bold")
Stroke = Literal["fine", "medium", "bold"]


class PhotoStyle(ExperienceConfig):
    """One painted style the booth offers (``[[photo.styles]]``)."""

    name: str = Field(min_length=1, max_length=20, description="The style's name, shown to the shopper.")
    index: int | None = Field(None, ge=0, lt=BUILT_IN_STYLES,
                              description="One of the 26 built-in styles (multistyle26), 0..25.")
    image: Annotated[str, AssetRef((".png", ".jpg", ".jpeg"))] | None = Field(
        None, description="A painting (PNG or JPEG in the bundle) whose style is copied (arbitrary style transfer).")
    stroke: Stroke = Field("medium", description="The size of the brush strokes on the print: fine, medium or bold.")
    strength: float = Field(0.9, ge=0.3, le=1.0, description="How much of the painting is kept over the photo "
                                                             "(1: the painting only).")

    @model_validator(mode="after")
    def _one_source(self) -> PhotoStyle:
        if (self.index is None) == (self.image is None):
            raise ValueError(f"style {self.name!r}: give either index (0..{BUILT_IN_STYLES - 1}) or image, not both")
        if self.name.casefold() == ORIGINAL.casefold():
            raise ValueError(f"style name {self.name!r} is the unstyled photo's")
        return self


def check_notice(notice: str | None) -> str | None:
    """A campaign's consent notice, when it fills in only ``{hours}`` and ``{minutes}`` (else ValueError)."""
    if notice is not None:
        try:
            notice.format(hours=24, minutes=10)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{notice!r}: only {{hours}} and {{minutes}} may be filled in ({exc})") from None
    return notice


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
    styles: list[PhotoStyle] = Field(
        [], max_length=8, description="The painted styles the shopper may choose in the preview (swipe), after "
                                      "the unstyled photo, \"Original\" (since API 1.4).")
    style_default: str | None = Field(None, description="The style chosen when the preview opens (one of "
                                                        "`styles`' names); absent: the original photo.")
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
        return check_notice(notice)

    @model_validator(mode="after")
    def _styles_named_once(self) -> PhotoConfig:
        names = [style.name for style in self.styles]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"styles: {', '.join(twice)} named more than once")
        if self.style_default is not None and self.style_default not in names:
            raise ValueError(f"style_default {self.style_default!r} is not one of styles ({', '.join(names) or 'none'})")
        return self

    def style(self, name: str) -> PhotoStyle:
        """The style named ``name``; a KeyError listing the campaign's styles otherwise."""
        for style in self.styles:
            if style.name == name:
                return style
        raise KeyError(f"no style {name!r} in this campaign's [photo] styles "
                       f"({', '.join(style.name for style in self.styles) or 'none'})")

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
