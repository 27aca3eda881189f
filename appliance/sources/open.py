"""The one source syntax (``--source`` of run, bench's SOURCE, ``[source] uri``) and opening what it names.

A source is ``camera:N``, ``video:PATH``, ``image:PATH``, ``demo``, ``auto``, or a bare
path: a PNG or JPEG by its suffix is an image, any other file a video. ``parse_source``
only reads the text (for validating a configuration); ``open_source`` opens it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.errors import ApplianceError
from appliance.media import DEFAULT_LIMITS, IMAGE_SUFFIXES, MediaLimits, read_image
from appliance.sources.base import FrameSource
from appliance.sources.camera import CameraMode, CameraSource, camera_present
from appliance.sources.files import StillSource, VideoFileSource

log = logging.getLogger(__name__)

URI_HELP = "camera:N, video:PATH, image:PATH, demo, auto, or the path of a video or image"
KINDS = ("camera", "video", "image", "demo", "auto")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source: its ``kind`` (one of KINDS) and what follows the colon (a path, a camera index)."""

    kind: str
    value: str = ""

    @property
    def uri(self) -> str:
        return f"{self.kind}:{self.value}" if self.value else self.kind


def parse_source(text: str) -> SourceSpec:
    """``text`` as a SourceSpec; ApplianceError naming it when it is neither a known URI nor a path."""
    kind, _, rest = text.partition(":")
    if kind in ("demo", "auto") and not rest:
        return SourceSpec(kind)
    if kind == "camera":
        rest = rest or "0"
        if not rest.isdigit():
            raise ApplianceError(f"bad camera index in source {text!r} (use camera:0)")
        return SourceSpec(kind, str(int(rest)))
    if kind in ("video", "image") and rest:
        return SourceSpec(kind, rest)
    if not text or kind in KINDS or (_SCHEME.match(text) and not Path(text).is_file()):
        raise ApplianceError(f"unknown source {text!r} (use {URI_HELP})")
    return SourceSpec("image" if Path(text).suffix.lower() in IMAGE_SUFFIXES else "video", text)


def open_source(uri: str, paced: bool = True, camera_mode: CameraMode = CameraMode(),
                limits: MediaLimits = DEFAULT_LIMITS, demo: Callable[[], np.ndarray] | None = None) -> FrameSource:
    """The source named by ``uri`` (any form ``parse_source`` takes); ``auto`` is camera 0 when present,
    else the bundled demo. Files are opened within ``limits``.

    ``paced=False`` releases file frames as fast as they decode (benchmarks).  An image larger than
    ``camera_mode``'s live size is served at that size and photographed at its own.  ``demo`` makes the demo
    frame (``appliance.perception.demo.demo_image``: the sources know no models, their caller does).
    """
    spec = parse_source(uri)
    if spec.kind == "auto":
        if camera_present(0):
            return CameraSource(0, camera_mode)
        log.warning("no camera at /dev/video0: showing the bundled demo source")
        spec = SourceSpec("demo")
    if spec.kind == "camera":
        return CameraSource(int(spec.value), camera_mode)
    if spec.kind == "video":
        return VideoFileSource(Path(spec.value), paced=paced, limits=limits)
    if spec.kind == "image":
        path = Path(spec.value)
        return StillSource(read_image(path, limits=limits), f"image:{path}", fps=30.0 if paced else 0,
                           live_size=(camera_mode.width, camera_mode.height))
    if demo is None:
        raise ApplianceError(f"source {uri!r}: this command shows no demo (give a camera, a video or an image)")
    return StillSource(demo(), "demo:astronaut", fps=30.0 if paced else 0)
