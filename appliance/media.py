"""Opening image and video files within size limits, with errors that name the file and say what is wrong.

Every reader of media (sources, backgrounds, overlays, the kiosk's images, analyze, the
campaign checks) goes through here, so they all accept and refuse the same files.

Invariants:
- Nothing is decoded before its size is known to be within ``MediaLimits``: a still's
  width and height come from its PNG or JPEG header, read here without a decoder;
  a video's frame size, frame count and rate from its container, before any frame.
  Formats that cannot be sized this way are refused, named.
- A still is decoded only when complete: a PNG whose every chunk has the right CRC up
  to IEND, a JPEG whose markers are whole and whose scan ends in EOI. A truncated or
  corrupt file is an ApplianceError, never a grey picture.
- A video that stops before the frame count its container declares is an error at the
  point it stops (``check_video_end``).
"""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import ApplianceError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
VIDEO_SUFFIXES = frozenset({".mp4"})


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

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
#: Start-of-frame markers (the ones carrying the image size): C0-CF but DHT, JPG and DAC.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_EOI, _JPEG_SOS = 0xD9, 0xDA
#: In entropy-coded data a marker is 0xFF (any fill 0xFF before it) followed by neither
#: 0x00 (a stuffed byte) nor a restart marker D0-D7.
_MARKER_AFTER_SCAN = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")


def _corrupt(path: Path, reason: str) -> ApplianceError:
    return ApplianceError(f"cannot decode image {path}: {reason}")


def _png_size(data: bytes, path: Path) -> tuple[int, int]:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _corrupt(path, "truncated or corrupt PNG header (no IHDR)")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _check_png_complete(data: bytes, path: Path) -> None:
    """Every chunk whole with its CRC right, up to IEND."""
    view, position = memoryview(data), len(_PNG_SIGNATURE)
    while position + 12 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        end = position + 12 + length
        if end > len(data):
            break
        kind = data[position + 4:position + 8]
        if zlib.crc32(view[position + 4:end - 4]) != int.from_bytes(data[end - 4:end], "big"):
            raise _corrupt(path, f"corrupt PNG (bad CRC in its {kind.decode('latin-1')!r} chunk at byte {position})")
        if kind == b"IEND":
            return
        position = end
    raise _corrupt(path, "truncated PNG (the file ends before its IEND chunk)")


def _jpeg_segments(data: bytes, path: Path):
    """(marker, payload offset, payload length) of each marker segment, up to and including EOI."""
    position = len(_JPEG_SOI)
    while True:
        if position + 2 > len(data):
            raise _corrupt(path, "truncated JPEG (the file ends before its end-of-image marker)")
        if data[position] != 0xFF:
            # Stray bytes between segments: skipped, as libjpeg does (with a warning).
            position = data.find(b"\xff", position)
            if position < 0:
                position = len(data)
            continue
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker == _JPEG_EOI:
            yield marker, position + 2, 0
            return
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            position += 2
            continue
        length = int.from_bytes(data[position + 2:position + 4], "big")
        end = position + 2 + length
        if length < 2:
            raise _corrupt(path, f"corrupt JPEG (a marker segment of length {length} at byte {position})")
        if end > len(data):
            raise _corrupt(path, "truncated JPEG (the file ends inside a marker segment)")
        yield marker, position + 4, length - 2
        position = end
        if marker == _JPEG_SOS:
            found = _MARKER_AFTER_SCAN.search(data, position)
            if found is None:
                raise _corrupt(path, "truncated JPEG (the file ends inside the image data, with no end-of-image marker)")
            position = found.end() - 2


def _jpeg_size(data: bytes, path: Path) -> tuple[int, int]:
    for marker, offset, length in _jpeg_segments(data, path):
        if marker in _JPEG_SOF:
            if length < 5:
                raise _corrupt(path, "corrupt JPEG (a frame header too short)")
            return int.from_bytes(data[offset + 3:offset + 5], "big"), int.from_bytes(data[offset + 1:offset + 3], "big")
        if marker in (_JPEG_SOS, _JPEG_EOI):
            break
    raise _corrupt(path, "corrupt JPEG (no frame header before the image data)")


def _check_jpeg_complete(data: bytes, path: Path) -> None:
    scans = sum(1 for marker, _, _ in _jpeg_segments(data, path) if marker == _JPEG_SOS)
    if not scans:
        raise _corrupt(path, "corrupt JPEG (no image data)")


def _check_image_size(path: Path, size: tuple[int, int], limits: MediaLimits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise _corrupt(path, f"its header gives a size of {width}x{height}")
    if max(width, height) > limits.image_side_px or width * height > limits.image_megapixels * 1e6:
        raise ApplianceError(
            f"image {path} is {width}x{height} ({width * height / 1e6:.1f} megapixels): over the limit of "
            f"{limits.image_megapixels:g} megapixels and {limits.image_side_px} px a side ([media] in the configuration)")


def _read_file(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise ApplianceError(f"{what} not found: {path}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ApplianceError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def read_image(path: Path, flags: int = cv2.IMREAD_COLOR, limits: MediaLimits = DEFAULT_LIMITS) -> np.ndarray:
    """A PNG or JPEG decoded with OpenCV ``flags``, once its header is within ``limits`` and the file is whole."""
    data = _read_file(path, "image")
    if data.startswith(_PNG_SIGNATURE):
        _check_image_size(path, _png_size(data, path), limits)
        _check_png_complete(data, path)
    elif data.startswith(_JPEG_SOI):
        _check_image_size(path, _jpeg_size(data, path), limits)
        _check_jpeg_complete(data, path)
    else:
        raise _corrupt(path, "not a PNG or JPEG file")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None or image.size == 0:
        raise _corrupt(path, "not an image or a corrupt file")
    return image


def read_bgra(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> np.ndarray:
    """A PNG or JPEG as 8-bit BGRA (grey, BGR and 16-bit converted; no alpha means opaque)."""
    image = read_image(path, cv2.IMREAD_UNCHANGED, limits)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGRA)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    if image.shape[2] != 4:
        raise _corrupt(path, f"{image.shape[2]} channels; expected grey, RGB or RGBA")
    return image


def declared_frames(capture: cv2.VideoCapture) -> int:
    """The number of frames the video's container declares (0 when it does not say)."""
    frames = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return int(frames) if math.isfinite(frames) and frames > 0 else 0


def _check_video_size(capture: cv2.VideoCapture, path: Path, limits: MediaLimits) -> None:
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width <= 0 or height <= 0:
        raise ApplianceError(f"cannot decode video {path}: its container gives no frame size")
    if width > limits.video_width or height > limits.video_height:
        raise ApplianceError(f"video {path} is {width}x{height}: over the limit of {limits.video_width}x"
                             f"{limits.video_height} ([media] in the configuration)")
    frames, fps = declared_frames(capture), capture.get(cv2.CAP_PROP_FPS)
    if not frames or not math.isfinite(fps) or fps <= 0:
        raise ApplianceError(f"cannot decode video {path}: its container does not say how long it is")
    seconds = frames / fps
    if seconds > limits.video_minutes * 60:
        raise ApplianceError(f"video {path} lasts {seconds:.1f} s ({frames} frames at {fps:g} fps): over the "
                             f"limit of {limits.video_minutes:g} minutes ([media] in the configuration)")


def open_video(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> tuple[cv2.VideoCapture, np.ndarray]:
    """An opened capture and its first frame, once the container's size and length are within ``limits``
    (so a file that opens but cannot decode fails here)."""
    if not path.is_file():
        raise ApplianceError(f"video not found: {path}")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise ApplianceError(f"cannot decode video {path}: not a video, unsupported codec or corrupt")
        _check_video_size(capture, path, limits)
        ok, first = capture.read()
        if not ok:
            raise ApplianceError(f"cannot decode video {path}: not a video, unsupported codec or corrupt")
    except ApplianceError:
        capture.release()
        raise
    return capture, first


def check_video_end(path: Path, decoded: int, declared: int) -> None:
    """Raise if a video stopped decoding after ``decoded`` frames where its container declares ``declared``."""
    if decoded < declared:
        raise ApplianceError(f"video {path} ends after {decoded} of its {declared} frames (truncated or corrupt)")


def verify_media(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> None:
    """Decode ``path`` completely, as the kiosk will, within ``limits``; ApplianceError naming the file otherwise.

    For the checks that must happen before a file is trusted (a campaign before activation):
    an image is decoded whole, a video frame by frame to its declared end.
    """
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        read_image(path, cv2.IMREAD_UNCHANGED, limits)
        return
    capture, _ = open_video(path, limits)
    try:
        declared, decoded = declared_frames(capture), 1
        while capture.grab():
            decoded += 1
    finally:
        capture.release()
    check_video_end(path, decoded, declared)
