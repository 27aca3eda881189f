"""The bundled demo shopper: scikit-image's public-domain ``astronaut``, cut out and stood in a grey studio.

Invariants: deterministic (the same frame every time, for a given size); the shopper is cut out
with the appliance's own still segmentation (the general selfie model), so no remnant of the
photo's background and no straight edge of the photo is left for the live matte to find; needs the
models (``make models``) and scikit-image.  Made here, above the sources, and handed to
``appliance.sources.open.open_source`` by whoever opens the demo source.
"""

from __future__ import annotations

import cv2
import numpy as np

from appliance.errors import ApplianceError
from appliance.inference.backend import Inference
from appliance.perception.matte import ramp_table
from appliance.perception.stages import SegmentationStage

#: The demo frame's studio wall: a soft light behind the shopper falling off to the corners (RGB 0..255).
STUDIO_LIGHT, STUDIO_SHADE = (206, 203, 200), (128, 128, 134)


def studio_wall(size: tuple[int, int]) -> np.ndarray:
    """A seamless grey studio wall, lit behind the shopper: smooth everywhere, no edge to find."""
    width, height = size
    y, x = np.ogrid[-1.0 : 1.0 : complex(height), -1.0 : 1.0 : complex(width)]
    light = np.exp(-((x * 0.8) ** 2 + (y * 1.1 + 0.2) ** 2))[..., None]
    rgb = np.asarray(STUDIO_SHADE, np.float64) + light * (np.asarray(STUDIO_LIGHT) - np.asarray(STUDIO_SHADE))
    return np.ascontiguousarray(np.round(rgb[..., ::-1]).astype(np.uint8))


def demo_image(size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    """The bundled demo: scikit-image's public-domain ``astronaut``, cut out, in a grey studio, 16:9.

    The photo has a flag, a model shuttle and the studio's own wall around her, and she
    reaches the photo's sides near its bottom: so she is cut out with the appliance's own
    still segmentation (the general selfie model, run once here), the photo is cropped just
    above the first row where she reaches a side (her sides are never cut straight), and she
    stands centred, cut by the frame's bottom as by a camera, on a smooth studio wall that the
    live segmentation removes without remnants. Needs the models (``make models``).
    """
    try:
        from skimage import data
    except ImportError as exc:
        raise ApplianceError("the demo source needs scikit-image (run `make setup`)") from exc

    portrait = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    side = portrait.shape[1]
    probabilities = SegmentationStage(Inference(), still=True).run(portrait).probabilities
    person = cv2.resize(probabilities, (side, portrait.shape[0]), interpolation=cv2.INTER_LINEAR) > 0.3
    margin = max(2, side // 50)
    at_side = np.nonzero(person[:, :margin].any(axis=1) | person[:, -margin:].any(axis=1))[0]
    rows = int(at_side[0]) if at_side.size else portrait.shape[0]
    width, height = size
    scale = height / rows
    shown = (round(side * scale), height)
    photo = cv2.resize(portrait[:rows], shown, interpolation=cv2.INTER_AREA)
    matte = cv2.resize(probabilities, (side, portrait.shape[0]), interpolation=cv2.INTER_CUBIC)[:rows]
    matte = cv2.resize(np.clip(matte, 0.0, 1.0), shown, interpolation=cv2.INTER_LINEAR)
    alpha = ramp_table(0.35, 0.8)[np.round(matte * 255.0).astype(np.uint8)]
    alpha = cv2.GaussianBlur(alpha, (0, 0), 1.2).astype(np.float32)[..., None] / 255.0
    stage = studio_wall((max(width, shown[0]), height))
    left = (stage.shape[1] - shown[0]) // 2
    window = stage[:, left : left + shown[0]].astype(np.float32)
    stage[:, left : left + shown[0]] = np.round(photo * alpha + window * (1.0 - alpha)).astype(np.uint8)
    crop = (stage.shape[1] - width) // 2
    return np.ascontiguousarray(stage[:, crop : crop + width])
