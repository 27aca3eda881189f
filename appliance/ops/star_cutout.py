"""``star-cutout PHOTO --out star.png``: the campaign star cut out of a photo by the appliance's own still matte.

Invariants: the matte is the photo booth's (``appliance.photo.matte``: the general segmentation model,
edge refinement) keeping only the largest person (the star; anyone else in the photo is dropped);
the PNG is the photo's own pixels with that matte as alpha, cropped to the pixels it makes visible
plus MARGIN_SHARE of the star's height on each side, written atomically; a photo with nobody in it
writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from appliance.atomicfile import write_atomically
from appliance.boxes import mask_box
from appliance.errors import ApplianceError
from appliance.inference.backend import Inference
from appliance.media import DEFAULT_LIMITS, MediaLimits, read_image
from appliance.photo.matte import StillMatte

MARGIN_SHARE = 0.02


def cut_out(image: np.ndarray, matte: StillMatte) -> np.ndarray | None:
    """BGR ``image``'s largest person as BGRA cropped around them, or None when nobody is in it."""
    alpha = matte.matte(image, largest_only=True)
    if mask_box(alpha >= 128) is None:
        return None
    x, y, w, h = mask_box(alpha > 0)
    margin = round(h * MARGIN_SHARE)
    height, width = alpha.shape
    y0, y1 = max(0, y - margin), min(height, y + h + margin)
    x0, x1 = max(0, x - margin), min(width, x + w + margin)
    return np.dstack([image[y0:y1, x0:x1], alpha[y0:y1, x0:x1]])


def star_cutout(photo: Path, out: Path, inference: Inference, limits: MediaLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """Write ``photo``'s star to ``out`` (a .png with alpha); returns the cut-out's size (w, h)."""
    if out.suffix.lower() != ".png":
        raise ApplianceError(f"--out {out}: a cut-out needs an alpha channel, so a .png")
    picture = cut_out(read_image(photo, limits=limits), StillMatte(inference))
    if picture is None:
        raise ApplianceError(f"{photo}: no person found (nothing written)")
    ok, encoded = cv2.imencode(".png", picture)
    if not ok:
        raise ApplianceError(f"{photo}: the cut-out could not be encoded as PNG")
    write_atomically(out, encoded.tobytes())
    return picture.shape[1], picture.shape[0]
