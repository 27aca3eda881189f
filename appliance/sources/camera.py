"""A V4L2 camera through OpenCV: MJPEG 1280x720@30 by default."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2

from appliance.errors import ApplianceError
from appliance.sources.base import Frame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CameraMode:
    width: int = 1280
    height: int = 720
    fps: int = 30
    fourcc: str = "MJPG"


def camera_present(index: int) -> bool:
    return Path(f"/dev/video{index}").exists()


class CameraSource:
    """``/dev/videoN``, opened on first read; a failed read raises, and the capture thread
    calls ``reopen`` until the camera is back (so a kiosk started without its camera
    comes up on the attract scene and picks the camera up when it is plugged in)."""

    def __init__(self, index: int, mode: CameraMode = CameraMode()) -> None:
        self.index = index
        self.mode = mode
        self.description = f"camera:{index}"
        self._capture: cv2.VideoCapture | None = None
        self._frames = 0

    def reopen(self) -> None:
        self.close()
        if not camera_present(self.index):
            raise ApplianceError(f"no camera at /dev/video{self.index} (unplugged or not detected)")
        capture = cv2.VideoCapture(self.index, cv2.CAP_V4L2)
        if not capture.isOpened():
            raise ApplianceError(f"camera /dev/video{self.index} exists but cannot be opened (busy or no permission: is the user in group 'video'?)")
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.mode.fourcc))
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.mode.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.mode.height)
        capture.set(cv2.CAP_PROP_FPS, self.mode.fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        got = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if got != (self.mode.width, self.mode.height):
            log.warning("camera %d gives %dx%d, not the configured %dx%d", self.index, *got,
                        self.mode.width, self.mode.height)
        self._capture = capture

    def read(self) -> Frame:
        if self._capture is None:
            self.reopen()
        ok, image = self._capture.read()
        if not ok or image is None:
            raise ApplianceError(f"camera /dev/video{self.index} stopped delivering frames")
        frame = Frame(image, self._frames)
        self._frames += 1
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
