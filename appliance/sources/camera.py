"""A V4L2 camera through OpenCV: MJPEG 1280x720@30 by default, and optionally a larger still mode for photos.

Invariants: the live mode is what ``read`` delivers; ``still`` switches to the still mode, drops the
frames the sensor needs to settle, reads the photos and switches back before it returns (or raises),
so the capture thread's next ``read`` is live again.  ``grab`` then ``retrieve`` is ``read`` in two
steps (a ``GrabbingSource``): a frame grabbed and not retrieved is never decoded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    still_width: int = 0        # the still mode for photos (0: photos are live frames)
    still_height: int = 0

    @property
    def still_size(self) -> tuple[int, int] | None:
        """The still mode's (width, height) when it is larger than the live mode, else None."""
        size = (self.still_width, self.still_height)
        return size if self.still_width * self.still_height > self.width * self.height else None


#: Frames dropped after a mode switch while exposure and white balance settle.
SETTLE_FRAMES = 3


def camera_present(index: int) -> bool:
    return Path(f"/dev/video{index}").exists()


class CameraSource:
    """``/dev/videoN``, opened on first read; a failed read raises, and the capture thread
    calls ``reopen`` until the camera is back (so a kiosk started without its camera
    comes up on the attract scene and picks the camera up when it is plugged in)."""

    def __init__(self, index: int, mode: CameraMode = CameraMode(),
                 open_capture: Callable[[int], Any] = lambda index: cv2.VideoCapture(index, cv2.CAP_V4L2)) -> None:
        self.index = index
        self.mode = mode
        self.still_size = mode.still_size
        self.description = f"camera:{index}"
        self._open_capture = open_capture
        self._capture: cv2.VideoCapture | None = None
        self._frames = 0
        self._grabbed_at = 0.0

    def reopen(self) -> None:
        self.close()
        if not camera_present(self.index):
            raise ApplianceError(f"no camera at /dev/video{self.index} (unplugged or not detected)")
        capture = self._open_capture(self.index)
        if not capture.isOpened():
            raise ApplianceError(f"camera /dev/video{self.index} exists but cannot be opened (busy or no permission: is the user in group 'video'?)")
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.mode.fourcc))
        capture.set(cv2.CAP_PROP_FPS, self.mode.fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture = capture
        self._switch((self.mode.width, self.mode.height), "live")

    def _switch(self, size: tuple[int, int], what: str) -> None:
        """The camera set to ``size`` (a V4L2 driver restarts its stream), said once when it gives another."""
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        got = (int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if got != size:
            log.warning("camera %d gives %dx%d, not the configured %s size %dx%d", self.index, *got, what, *size)

    def read(self) -> Frame:
        if self._capture is None:
            self.reopen()
        ok, image = self._capture.read()
        if not ok or image is None:
            raise self._stopped()
        frame = Frame(image, self._frames)
        self._frames += 1
        return frame

    def grab(self) -> float:
        """Take the next frame off the device without decoding it; its capture time.  Its index is used up
        whether or not it is retrieved."""
        if self._capture is None:
            self.reopen()
        if not self._capture.grab():
            raise self._stopped()
        self._grabbed_at = time.monotonic()
        self._frames += 1
        return self._grabbed_at

    def retrieve(self) -> Frame:
        """The frame grabbed last, decoded (an MJPEG camera's decode is the costly part of a frame)."""
        ok, image = self._capture.retrieve()
        if not ok or image is None:
            raise self._stopped()
        return Frame(image, self._frames - 1, self._grabbed_at)

    def _stopped(self) -> ApplianceError:
        return ApplianceError(f"camera /dev/video{self.index} stopped delivering frames")

    def still(self, count: int) -> list[Frame]:
        """``count`` frames in the still mode (live frames without one), then back to the live mode."""
        if self.still_size is None:
            return [self.read() for _ in range(count)]
        if self._capture is None:
            self.reopen()
        self._switch(self.still_size, "still")
        try:
            for _ in range(SETTLE_FRAMES):
                self._capture.read()
            return [self.read() for _ in range(count)]
        finally:
            self._switch((self.mode.width, self.mode.height), "live")

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
