"""A QR code as a picture for the screen: black modules on white, with the quiet zone.

Invariants: the image is square, ``size_px`` wide, BGR uint8, every module the same whole number of
pixels (no blurred edges to confuse a phone's decoder), centred in white with at least the 4-module
quiet zone the standard asks for; error correction is M (a glare or a smudge on the screen still
reads).  From ~1 m a phone needs modules of about 1.5 mm: a pre-signed link (~330 characters, a
version-14 code of 73 modules) at 500 px has 6 px modules, ~3 mm on a 1080p 43" screen; a short link
(version 3-4) has modules three times as large.
"""

from __future__ import annotations

import numpy as np

QUIET_MODULES = 4


def qr_image(url: str, size_px: int) -> np.ndarray:
    import segno  # here, not at import: 8 MB a kiosk that never shows a link does not pay

    code = segno.make_qr(url, error="m", boost_error=False)
    modules = np.array([[bool(bit) for bit in row] for row in code.matrix], dtype=bool)
    count = modules.shape[0]
    scale = size_px // (count + 2 * QUIET_MODULES)
    if scale < 2:
        raise ValueError(f"{size_px} px is too small for this link's QR code ({count} modules and the quiet "
                         f"zone need at least {2 * (count + 2 * QUIET_MODULES)} px)")
    image = np.full((size_px, size_px, 3), 255, dtype=np.uint8)
    drawn = np.kron(modules, np.ones((scale, scale), dtype=bool))
    offset = (size_px - drawn.shape[0]) // 2
    image[offset:offset + drawn.shape[0], offset:offset + drawn.shape[1]][drawn] = 0
    return image
