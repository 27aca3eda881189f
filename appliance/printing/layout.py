"""The print layout: a photo placed on one page of the printer's media, written as the PDF CUPS prints.

Invariants: the page is exactly the media's size (its MediaBox in points is the media's millimetres
× 72 / 25.4), in the photo's orientation (a landscape photo on a landscape page; the driver turns the
page onto the paper); the page's raster is ``dpi`` pixels per inch (rounded to whole pixels) and is
the PDF's only image, drawn over the whole page; the photo covers the page plus ``bleed_mm`` beyond
every edge, centred, its aspect kept, so the outer ``bleed_mm`` of the photo (and any excess of a
different aspect) is cut off and no edge of the page is ever left blank.  Media names are the ones
CUPS takes: PWG self-describing names (``na_index-4x6_4x6in``, ``iso_a6_105x148mm``), ``Custom.WxH``
with ``in``/``mm``, Adobe ``wWhH`` (points) and the common legacy names in ``LEGACY_MEDIA``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

MM_PER_INCH = 25.4
POINTS_PER_INCH = 72.0

#: Legacy names CUPS understands, by their (short, long) edge in millimetres.
LEGACY_MEDIA = {
    "3.5x5": (88.9, 127.0), "4x6": (101.6, 152.4), "5x7": (127.0, 177.8), "6x8": (152.4, 203.2),
    "8x10": (203.2, 254.0), "a6": (105.0, 148.0), "a5": (148.0, 210.0), "a4": (210.0, 297.0),
    "letter": (215.9, 279.4),
}
_SIZE = re.compile(r"(?:^|_|\.)(\d+(?:\.\d+)?)x(\d+(?:\.\d+)?)(in|mm)$")
_ADOBE = re.compile(r"^w(\d+(?:\.\d+)?)h(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Media:
    """A media size: its CUPS name and its short and long edge in millimetres."""

    name: str
    short_mm: float
    long_mm: float


def parse_media(name: str) -> Media:
    """The size ``name`` stands for; ValueError naming it when it names none."""
    key = name.strip().lower()
    if key in LEGACY_MEDIA:
        edges = LEGACY_MEDIA[key]
    elif match := _SIZE.search(key):
        scale = MM_PER_INCH if match.group(3) == "in" else 1.0
        edges = (float(match.group(1)) * scale, float(match.group(2)) * scale)
    elif match := _ADOBE.match(key):
        edges = (float(match.group(1)) * MM_PER_INCH / POINTS_PER_INCH,
                 float(match.group(2)) * MM_PER_INCH / POINTS_PER_INCH)
    else:
        raise ValueError(f"media {name!r}: not a size CUPS names (e.g. 4x6, na_index-4x6_4x6in, "
                         f"iso_a6_105x148mm, Custom.100x150mm, w288h432, or one of {', '.join(LEGACY_MEDIA)})")
    if min(edges) <= 0:
        raise ValueError(f"media {name!r}: an edge of zero length")
    return Media(name, min(edges), max(edges))


@dataclass(frozen=True)
class PrintLayout:
    media: Media
    bleed_mm: float = 1.0
    dpi: int = 300

    def page_mm(self, photo_size: tuple[int, int]) -> tuple[float, float]:
        """(width, height) of the page in millimetres, in the photo's orientation."""
        landscape = photo_size[0] > photo_size[1]
        short, long = self.media.short_mm, self.media.long_mm
        return (long, short) if landscape else (short, long)

    def page_px(self, photo_size: tuple[int, int]) -> tuple[int, int]:
        width, height = self.page_mm(photo_size)
        return (round(width / MM_PER_INCH * self.dpi), round(height / MM_PER_INCH * self.dpi))

    def raster(self, photo: Image.Image) -> Image.Image:
        """The page's pixels: ``photo`` scaled to cover the page and its bleed, centred, the rest cut off."""
        photo = ImageOps.exif_transpose(photo).convert("RGB")
        width, height = self.page_px(photo.size)
        bleed = round(self.bleed_mm / MM_PER_INCH * self.dpi)
        covered = ImageOps.fit(photo, (width + 2 * bleed, height + 2 * bleed), Image.Resampling.LANCZOS)
        return covered.crop((bleed, bleed, bleed + width, bleed + height))

    def write_pdf(self, photo_path: Path, pdf_path: Path) -> Path:
        """``pdf_path``: one page of the media's exact size holding the page raster (JPEG, quality 95)."""
        with Image.open(photo_path) as photo:
            page = self.raster(photo)
        width_in = self.page_mm(page.size)[0] / MM_PER_INCH
        page.save(pdf_path, "PDF", resolution=page.size[0] / width_in, quality=95)
        return pdf_path
