"""Turning a source URI (``camera:0``, ``video:PATH``, ``image:PATH``, ``demo``, ``auto``) into a source."""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.errors import ApplianceError
from appliance.media import read_image
from appliance.sources.base import FrameSource
from appliance.sources.camera import CameraMode, CameraSource, camera_present
from appliance.sources.files import StillSource, VideoFileSource, demo_image

log = logging.getLogger(__name__)

URI_HELP = "camera:N, video:PATH, image:PATH, demo or auto"


def open_source(uri: str, paced: bool = True, camera_mode: CameraMode = CameraMode()) -> FrameSource:
    """The source named by ``uri``; ``auto`` is camera 0 when present, else the bundled demo.

    ``paced=False`` releases file frames as fast as they decode (benchmarks).
    """
    kind, _, rest = uri.partition(":")
    if kind == "auto":
        if camera_present(0):
            return CameraSource(0, camera_mode)
        log.warning("no camera at /dev/video0: showing the bundled demo source")
        kind = "demo"
    if kind == "camera":
        try:
            index = int(rest or 0)
        except ValueError:
            raise ApplianceError(f"bad camera index in source {uri!r} (use camera:0)") from None
        return CameraSource(index, camera_mode)
    if kind == "video" and rest:
        return VideoFileSource(Path(rest), paced=paced)
    if kind == "image" and rest:
        path = Path(rest)
        return StillSource(read_image(path), f"image:{path}", fps=30.0 if paced else 0)
    if kind == "demo":
        return StillSource(demo_image(), "demo:astronaut", fps=30.0 if paced else 0)
    raise ApplianceError(f"unknown source {uri!r} (use {URI_HELP})")
