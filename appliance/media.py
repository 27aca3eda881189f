"""Opening image and video files, with errors that name the file and say what is wrong.

OpenCV only answers ``None`` or ``isOpened() == False``; every reader of media
(sources, backgrounds, overlays, analyze) goes through here to get a reason.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import ApplianceError


class MediaLimits(BaseModel):
    """The largest media the appliance decodes (``[media]`` in the configuration): sized for a 4 GB board.

    Checked from the file's header before anything is decoded, so an oversized file
    costs a header read, not gigabytes and seconds of the render loop.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_megapixels: float = Field(40.0, gt=0, le=500, description="largest image, in millions of pixels")
    image_side_px: int = Field(8192, gt=0, le=65535, description="longest side of an image, in pixels")
    video_width: int = Field(3840, gt=0, le=16384, description="widest video frame, in pixels")
    video_height: int = Field(2160, gt=0, le=16384, description="tallest video frame, in pixels")
    video_minutes: float = Field(10.0, gt=0, le=600, description="longest video, in minutes")


DEFAULT_LIMITS = MediaLimits()


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    if not path.is_file():
        raise ApplianceError(f"image not found: {path}")
    image = cv2.imread(str(path), flags)
    if image is None or image.size == 0:
        raise ApplianceError(f"cannot decode image {path}: not an image or a corrupt file")
    return image


def open_video(path: Path) -> tuple[cv2.VideoCapture, np.ndarray]:
    """An opened capture and its first frame (so a file that opens but cannot decode fails here)."""
    if not path.is_file():
        raise ApplianceError(f"video not found: {path}")
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise ApplianceError(f"cannot decode video {path}: not a video, unsupported codec or corrupt")
    return capture, first


def verify_media(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> None:
    """Decode ``path`` completely, as the kiosk will, within ``limits``; ApplianceError naming the file otherwise.

    For the checks that must happen before a file is trusted (a campaign before activation):
    an image is decoded whole, a video frame by frame to its end.
    """
    if path.suffix.lower() in (".mp4",):
        capture, _ = open_video(path)
        try:
            declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            decoded = 1
            while capture.grab():
                decoded += 1
        finally:
            capture.release()
        if declared and decoded < declared:
            raise ApplianceError(f"video {path} ends after {decoded} of its {declared} frames (truncated or corrupt)")
        return
    read_image(path, cv2.IMREAD_UNCHANGED)
