"""Sources read from files: a looping video and a still image (also the demo, built on a still: its
person cut out with the appliance's own still segmentation, so this module loads that one model)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from appliance.errors import ApplianceError
from appliance.media import DEFAULT_LIMITS, MediaLimits, check_video_end, declared_frames, open_video
from appliance.sources.base import Frame, Pacer


class VideoFileSource:
    """A video file played in a loop, paced at its own fps (or as fast as possible for benchmarks).

    Opened within ``limits``; a pass that stops before the frame count the container
    declares (a truncated file) raises where it stops, and ``reopen`` starts it over.  Its photos are
    its frames (``still_size`` None).
    """

    still_size = None

    def __init__(self, path: Path, paced: bool = True, limits: MediaLimits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.description = f"video:{path}"
        self._limits = limits
        self._capture, self._first = open_video(path, limits)
        self._declared = declared_frames(self._capture)
        self.fps = self._capture.get(cv2.CAP_PROP_FPS)
        self._pacer = Pacer(self.fps if paced else 0)
        self._index = 0
        self._position = 0

    def read(self) -> Frame:
        self._pacer.wait()
        image = self._next_image()
        frame = Frame(image, self._index)
        self._index += 1
        self._position += 1
        return frame

    def still(self, count: int) -> list[Frame]:
        return [self.read() for _ in range(count)]

    def _next_image(self) -> np.ndarray:
        if self._first is not None:
            image, self._first = self._first, None
            return image
        ok, image = self._capture.read()
        if ok:
            return image
        check_video_end(self.path, self._position, self._declared)
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._position = 0
        ok, image = self._capture.read()
        if not ok:
            raise ApplianceError(f"video {self.path} stopped decoding")
        return image

    def reopen(self) -> None:
        self._capture.release()
        self._capture, self._first = open_video(self.path, self._limits)
        self._declared = declared_frames(self._capture)
        self._position = 0

    def close(self) -> None:
        self._capture.release()


class StillSource:
    """One image served as a stream of frames (at ``fps``, or unpaced).

    An image larger than ``live_size`` (width, height) is served scaled to fit it, as a camera in its
    video mode, and photographed at its own size (``still_size``), as a camera in its still mode.
    """

    def __init__(self, image: np.ndarray, description: str, fps: float = 30.0,
                 live_size: tuple[int, int] | None = None) -> None:
        self._full = image
        height, width = image.shape[:2]
        scale = min(1.0, live_size[0] / width, live_size[1] / height) if live_size else 1.0
        self.still_size = (width, height) if scale < 1.0 else None
        self._image = image if scale == 1.0 else cv2.resize(
            image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        self.description = description
        self._pacer = Pacer(fps)
        self._index = 0

    def read(self) -> Frame:
        self._pacer.wait()
        return self._frame(self._image)

    def still(self, count: int) -> list[Frame]:
        return [self._frame(self._full) for _ in range(count)]

    def _frame(self, image: np.ndarray) -> Frame:
        frame = Frame(image, self._index)
        self._index += 1
        return frame

    def reopen(self) -> None:
        """Nothing to reopen: the image is in memory."""

    def close(self) -> None:
        """Nothing to release."""
