"""Frame lists: which devset frames calibrate and evaluate the NPU models (calibration.txt, evaluation.txt).

A list names frames of the development media, never the media itself (the
devset is read from a configured directory, ``make ... MEDIA=dir``, and is
never committed).  One frame per line, ``#`` starts a comment::

    <media file>  [frame=N]  [scale=S]  [gain=G]

- ``frame`` is the video frame index (0-based; required for videos, refused for stills);
- ``scale`` < 1 shrinks the frame onto a dark canvas of its own size, standing at the
  bottom centre (models/reference/distance.py: the shopper a few metres back);
- ``gain`` multiplies the pixels (0.5 a dim shop, 1.4 a bright window), clipped to 0..255.

Invariants: a line yields exactly one BGR uint8 frame (the appliance's image
format) or an error naming the line; the order of the list is the order of
the frames; reading never writes anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.reference.distance import at_distance

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi")


class FrameListError(RuntimeError):
    """A frame list names something that cannot be read."""


@dataclass(frozen=True)
class FrameRef:
    """One frame of the devset and how it is changed before use."""

    media: str
    frame: int | None = None
    scale: float = 1.0
    gain: float = 1.0

    @property
    def label(self) -> str:
        """A short unique name: ``kiosk_fist_thumbup_720p#40@0.5`` (frame, scale and gain when not 1)."""
        label = Path(self.media).stem + (f"#{self.frame}" if self.frame is not None else "")
        if self.scale != 1.0:
            label += f"@{self.scale:g}"
        if self.gain != 1.0:
            label += f"x{self.gain:g}"
        return label


def parse_line(line: str, where: str) -> FrameRef | None:
    """A FrameRef from one line of a list, None for blank and comment lines."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    media, *options = text.split()
    values: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in ("frame", "scale", "gain") or key in values:
            raise FrameListError(f"{where}: bad option {option!r} (expected frame=N, scale=S, gain=G once each)")
        values[key] = value
    try:
        ref = FrameRef(media, int(values["frame"]) if "frame" in values else None,
                       float(values.get("scale", 1.0)), float(values.get("gain", 1.0)))
    except ValueError as exc:
        raise FrameListError(f"{where}: {exc}") from exc
    is_video = Path(media).suffix.lower() in VIDEO_SUFFIXES
    if is_video != (ref.frame is not None):
        raise FrameListError(f"{where}: {media} is a {'video: give frame=N' if is_video else 'still: no frame='}")
    if not (0 < ref.scale <= 1.0) or not (0 < ref.gain <= 4.0):
        raise FrameListError(f"{where}: scale must be in (0, 1] and gain in (0, 4]")
    return ref


def read_list(path: Path) -> list[FrameRef]:
    """Every frame a list names, in order."""
    if not path.is_file():
        raise FrameListError(f"frame list not found: {path}")
    refs = [parse_line(line, f"{path}:{number}") for number, line in enumerate(path.read_text().splitlines(), 1)]
    return [ref for ref in refs if ref is not None]


def _raw_frame(media_dir: Path, ref: FrameRef) -> np.ndarray:
    path = media_dir / ref.media
    if not path.is_file():
        raise FrameListError(f"{ref.media} is not in the media directory {media_dir} "
                             "(set MEDIA=path/to/devset, or OIVIS_TEST_MEDIA)")
    if ref.frame is None:
        from appliance.media import read_image

        return read_image(path)
    capture = cv2.VideoCapture(str(path))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, ref.frame)
        ok, image = capture.read()
    finally:
        capture.release()
    if not ok:
        raise FrameListError(f"{ref.media}: cannot read frame {ref.frame}")
    return image


def load_frame(media_dir: Path, ref: FrameRef) -> np.ndarray:
    """The frame ``ref`` names, scaled and lit as it says (BGR uint8)."""
    image = at_distance(_raw_frame(media_dir, ref), ref.scale)
    if ref.gain != 1.0:
        image = cv2.convertScaleAbs(image, alpha=ref.gain)
    return image


def load_frames(media_dir: Path, refs: list[FrameRef]) -> Iterator[tuple[FrameRef, np.ndarray]]:
    for ref in refs:
        yield ref, load_frame(media_dir, ref)
