"""The photo desk: everything a campaign's photo needs, decoded and prepared once, before any shopper poses.

Invariants: built from a validated bundle and its ``[photo]`` table; every file is decoded here
within the media limits (a bad one fails now, naming the file, never while a shopper waits);
the world is the scene ``scene_id``, else the table's ``world``, else the campaign's first; a
video world gives its first frame; the world's background is held at the photo's size, the
star's cut-out trimmed to its visible pixels; the layers (the world's snow and overlays when
``world_overlays``, then the frame, then the logo) are prepared for the photo's size; one-time
library set-up (OpenCV's Lab tables) is done here too, so no photo pays for it.  The models are
held only while a photo needs them: the still matte's for each still (``StillMatte``), the still
pose stage (wanted only when the shopper is cut by the frame's bottom and no live pose came with
the frame) for that photo, released after it and its memory handed back (its two models are
70 MB, and perception already holds their live twins).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from appliance.boxes import mask_box
from appliance.colour import bgr, lab
from appliance.content import Bundle, OverlaySpec
from appliance.errors import ApplianceError
from appliance.experience.photo import PhotoConfig
from appliance.inference.backend import Inference
from appliance.media import DEFAULT_LIMITS, MediaLimits, read_bgra
from appliance.memory import hand_back
from appliance.perception.body import Pose
from appliance.perception.pose_tracker import PoseSettings
from appliance.perception.stages import PoseStage
from appliance.photo.matte import StillMatte
from appliance.render.background import open_background
from appliance.render.compositor import Layer
from appliance.render.overlay import Overlay
from appliance.render.snow import Snow

PHOTO = "photo"
LOGO_MARGIN = 0.03


def photo_config(bundle: Bundle) -> PhotoConfig:
    """The bundle's validated ``[photo]`` table; an ApplianceError naming the campaign when it has none."""
    config = bundle.configs.get(PHOTO)
    if not isinstance(config, PhotoConfig):
        raise ApplianceError(f"{bundle.directory / 'campaign.toml'}: campaign {bundle.name!r} has no [photo] table "
                             "(it names the star to put in the photo)")
    return config


def trimmed(picture: np.ndarray, path: Path) -> np.ndarray:
    """A BGRA cut-out cropped to its visible pixels; an ApplianceError naming ``path`` when none is visible."""
    box = mask_box(picture[:, :, 3])
    if box is None:
        raise ApplianceError(f"{path}: the cut-out is fully transparent (no star to place)")
    x, y, w, h = box
    return np.ascontiguousarray(picture[y:y + h, x:x + w])


class PhotoDesk:
    """One campaign's photo, ready to compose: the still matte's model checked, media decoded, layers sized."""

    def __init__(self, bundle: Bundle, inference: Inference, scene_id: str | None = None,
                 limits: MediaLimits = DEFAULT_LIMITS, find_pose: bool = True,
                 pose: PoseSettings = PoseSettings()) -> None:
        self.config = config = photo_config(bundle)
        self.size = config.photo_size()
        self.scene = bundle.scene(scene_id or config.world or bundle.scenes[0].id)
        directory = Path(bundle.directory)
        self.background = np.array(open_background(directory / self.scene.background, limits).frame(self.size, 0.0))
        star_path = directory / config.star
        self.star = trimmed(read_bgra(star_path, limits), star_path)
        self.layers: list[Layer] = []
        if config.world_overlays:
            self.layers += [Snow(self.scene.snow, self.size)] if self.scene.snow else []
            self.layers += [Overlay(spec, directory / spec.image, self.size, limits) for spec in self.scene.overlays]
        if config.frame:
            self.layers.append(Overlay(OverlaySpec(image=config.frame, anchor="fill"), directory / config.frame,
                                       self.size, limits))
        if config.logo:
            spec = OverlaySpec(image=config.logo, anchor=config.logo_anchor, margin=LOGO_MARGIN,
                               scale=config.logo_scale)
            self.layers.append(Overlay(spec, directory / config.logo, self.size, limits))
        bgr(lab(self.background[:1, :1]))   # OpenCV builds its Lab tables on first use: now, not as a shopper waits
        self.matte = StillMatte(inference)
        self.finds_pose = find_pose
        self._inference, self._pose_settings = inference, pose
        hand_back()   # the decoded media's full-size originals, freed once resized

    def poses(self, image: np.ndarray) -> list[Pose]:
        """``image``'s people (BGR), largest first, by a still pose stage loaded for this call and released
        after it (one call at a time, as for the desk's photos)."""
        stage = PoseStage(self._inference, still=True, settings=self._pose_settings)
        try:
            return stage.find(image, None)
        finally:
            del stage
            hand_back()
