"""What every frame source shares: the Frame record and the read() contract."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One captured image (BGR uint8), numbered and stamped when it was captured."""

    image: np.ndarray
    index: int
    captured_at: float = field(default_factory=time.monotonic)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.image.shape[1], self.image.shape[0]


class FrameSource(Protocol):
    """A blocking producer of frames, read by one capture thread (or directly by a benchmark).

    ``read`` returns the next frame, or raises ApplianceError when the device or
    file failed; ``reopen`` tries to get it back (an unplugged camera).  ``still_size`` is the
    (width, height) of the source's photos when they are larger than its live frames (a camera's
    still mode, an image bigger than the live size), else None; ``still`` gives ``count`` frames
    at that size (back to live frames afterwards), or live frames when it is None.
    """

    description: str
    still_size: tuple[int, int] | None

    def read(self) -> Frame: ...

    def still(self, count: int) -> list[Frame]: ...

    def reopen(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class GrabbingSource(FrameSource, Protocol):
    """A source that reads a frame in two steps: ``grab`` waits for the next frame and takes it off the
    device (returning its capture time, on the monotonic clock), ``retrieve`` converts the frame grabbed
    last into a Frame; a frame grabbed and not retrieved costs no conversion (a camera's MJPEG decode)."""

    def grab(self) -> float: ...

    def retrieve(self) -> Frame: ...


class Pacer:
    """Releases frames at a fixed rate (a file played at its own fps), or at once when rate is 0."""

    def __init__(self, fps: float) -> None:
        self._period = 1.0 / fps if fps > 0 else 0.0
        self._next = time.monotonic()

    def wait(self) -> None:
        if not self._period:
            return
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(self._next + self._period, now - self._period)
