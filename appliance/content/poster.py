"""The default campaign's fusion template: a star's poster made from a public-domain portrait.

The portrait is scikit-image's ``astronaut`` (NASA's portrait of Eileen Collins, public domain), framed in the
campaign's gold on night blue with the star's name and the campaign's line.  The face stays at the photo's size
times ``PHOTO_SCALE`` (cheek to cheek about 145 px), large enough to fuse a shopper's face into.

Invariants: BGR uint8, ``SIZE`` (w, h), portrait; the same picture on every run (no randomness); scikit-image
is needed (the ``demo`` extra), refused with one line naming it otherwise.
"""

from __future__ import annotations

import cv2
import numpy as np

from appliance.errors import ApplianceError

SIZE = (900, 1200)
PHOTO_SCALE = 1.5625          # 512 px → 800 px
NIGHT, GOLD, PALE = (48, 22, 12), (90, 190, 240), (235, 240, 250)   # BGR


def astronaut() -> np.ndarray:
    """scikit-image's public-domain astronaut portrait, BGR 512×512."""
    try:
        from skimage import data
    except ImportError as exc:
        raise ApplianceError("the fusion poster is drawn from scikit-image's astronaut: install the demo extra "
                             "(pip install '.[demo]')") from exc
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _centred(canvas: np.ndarray, line: str, y: int, height_px: int, colour: tuple[int, int, int], bold: int) -> None:
    font = cv2.FONT_HERSHEY_DUPLEX
    (w, h), _ = cv2.getTextSize(line, font, 1.0, bold)
    scale = min(height_px / h, (canvas.shape[1] - 80) / w)
    (w, h), _ = cv2.getTextSize(line, font, scale, bold)
    cv2.putText(canvas, line, ((canvas.shape[1] - w) // 2, y + h // 2), font, scale, colour, bold, cv2.LINE_AA)


def draw_poster(portrait: np.ndarray, title: str = "NOVA", line: str = "OIVIS winter demo") -> np.ndarray:
    """``portrait`` framed as the star's poster: night blue, a gold frame round the photo, the title above it."""
    width, height = SIZE
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = NIGHT
    side = round(portrait.shape[1] * PHOTO_SCALE)
    photo = cv2.resize(portrait, (side, round(portrait.shape[0] * PHOTO_SCALE)), interpolation=cv2.INTER_CUBIC)
    left, top = (width - side) // 2, 230
    cv2.rectangle(canvas, (left - 14, top - 14), (left + side + 13, top + photo.shape[0] + 13), GOLD, -1)
    canvas[top:top + photo.shape[0], left:left + side] = photo
    _centred(canvas, title, 120, 110, GOLD, 6)
    _centred(canvas, line, top + photo.shape[0] + 80, 44, PALE, 2)
    return canvas
