"""Scene backgrounds: a still image or a looping video, delivered at the size asked for.

``frame`` cover-fits the background to a size and caches it, so the per-frame cost of a
still is nothing and that of a video is one decode (plus a resize only if its size
differs from the one asked for).  ``current`` is the background as decoded, with a
version that changes exactly when the picture does: the GPU path uploads it once per
change and lets the GPU do the fitting.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from appliance.errors import ApplianceError
from appliance.media import DEFAULT_LIMITS, VIDEO_SUFFIXES, MediaLimits, open_video, read_image
from appliance.render.fit import cover_fit

log = logging.getLogger(__name__)

FALLBACK_BGR = (28, 18, 12)
#: What a video that stopped decoding shows: plain dark (cover-fitting a plain image gives the same at any size).
FALLBACK = np.full((9, 16, 3), FALLBACK_BGR, np.uint8)
DEFAULT_FPS = 25.0


class Background(Protocol):
    def frame(self, size: tuple[int, int], now: float) -> np.ndarray:
        """The background at ``now`` as BGR uint8 of ``size`` (w, h); read-only, may be cached."""

    def current(self, now: float) -> tuple[int, np.ndarray]:
        """(version, image): the background at ``now`` as decoded, BGR uint8, read-only; the version
        changes whenever the image does."""

    def poster(self) -> np.ndarray:
        """The image last decoded (a video's first frame before it plays), without moving playback."""


class _Fitted:
    """The last (version, size) asked for and its cover-fitted image."""

    def __init__(self) -> None:
        self._key: tuple[int, tuple[int, int]] | None = None
        self._image: np.ndarray | None = None

    def of(self, version: int, image: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
        if self._key != (version, tuple(size)):
            self._image = np.ascontiguousarray(cover_fit(image, size, interpolation))
            self._key = (version, tuple(size))
        return self._image


def open_background(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> Background:
    """A background for ``path``, decoded now (within ``limits``) so a bad file fails when the scene is built."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoBackground(path, limits)
    return ImageBackground(path, limits)


class ImageBackground:
    """A still image, cover-fitted once per requested size."""

    def __init__(self, path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> None:
        self._image = read_image(path, limits=limits)
        self._fitted = _Fitted()

    def frame(self, size: tuple[int, int], now: float) -> np.ndarray:
        return self._fitted.of(0, self._image, size, cv2.INTER_AREA)

    def current(self, now: float) -> tuple[int, np.ndarray]:
        return 0, self._image

    def poster(self) -> np.ndarray:
        return self._image


class VideoBackground:
    """A video that loops forever, its frame chosen by wall-clock time at the video's own fps.

    Playback starts at the first ``frame()`` call. A decoder that stops delivering frames
    is rewound; if it still fails the kiosk must keep running, so the background turns
    plain dark for the rest of the scene and a warning is logged once.
    """

    def __init__(self, path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> None:
        self._path = path
        self._limits = limits
        self._capture, first = open_video(path, limits)
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self._fps = fps if math.isfinite(fps) and 1.0 <= fps <= 240.0 else DEFAULT_FPS
        self._current: np.ndarray = first
        self._position = 0
        self._loop_start = 0
        self._loop_length: int | None = None
        self._start: float | None = None
        self._failed = False
        self._fitted = _Fitted()

    def frame(self, size: tuple[int, int], now: float) -> np.ndarray:
        version, image = self.current(now)
        return self._fitted.of(version, image, size, cv2.INTER_LINEAR)

    def current(self, now: float) -> tuple[int, np.ndarray]:
        if self._start is None:
            self._start = now
        target = int((now - self._start) * self._fps)
        if not self._failed and target > self._position:
            self._advance(target)
        return (-1, FALLBACK) if self._failed else (self._position, self._current)

    def poster(self) -> np.ndarray:
        return FALLBACK if self._failed else self._current

    def _advance(self, target: int) -> None:
        while self._position < target:
            behind = target - self._position
            if self._loop_length and behind > self._loop_length:
                whole_loops = behind // self._loop_length * self._loop_length
                self._position += whole_loops
                self._loop_start += whole_loops
                continue
            if not self._capture.grab() and not self._rewind():
                self._fail()
                return
            self._position += 1
        ok, image = self._capture.retrieve()
        if not ok:
            self._fail()
            return
        self._current = image

    def _rewind(self) -> bool:
        """Back to the first frame, grabbed; the loop length is learned on the first wrap."""
        next_position = self._position + 1
        if self._loop_length is None:
            self._loop_length = next_position - self._loop_start
        self._loop_start = next_position
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        if self._capture.grab():
            return True
        self._capture.release()
        try:
            self._capture, _ = open_video(self._path, self._limits)
        except ApplianceError:
            return False
        return True

    def _fail(self) -> None:
        self._failed = True
        self._capture.release()
        log.warning("background video %s stopped decoding; showing a plain dark background", self._path)
