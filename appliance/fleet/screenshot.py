"""What the screen shows, as a downscaled PNG: inline in the reply, or uploaded where the operator says.

An MQTT reply is not the place for megabytes (it sits in the broker's queues and
in the device's recent-replies file), so inline images are capped: the picture
is shrunk until its PNG fits and the reply says the size it got.  An operator
who wants full detail gives an ``upload_url`` (a pre-signed object-store URL,
or any HTTP endpoint accepting PUT/POST), and only the URL and size travel.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.errors import ApplianceError

DEFAULT_WIDTH = 640
MAX_WIDTH = 3840
#: Inline PNGs stay below this (base64 adds a third on the wire).
INLINE_LIMIT = 256 * 1024
#: Each retry to fit the inline limit shrinks the picture by this factor.
SHRINK = 0.75
MIN_WIDTH = 16
UPLOAD_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Png:
    data: bytes
    width: int
    height: int


def encode(frame: np.ndarray, width: int) -> Png:
    """``frame`` (BGR or BGRA uint8, or grey) at ``width`` pixels wide (never enlarged), as PNG."""
    if frame.ndim not in (2, 3) or frame.dtype != np.uint8 or frame.size == 0:
        raise ApplianceError(f"the screen provider gave a {frame.dtype} array of shape {frame.shape}, "
                             "not an 8-bit image")
    height, original = frame.shape[:2]
    width = max(1, min(width, original))
    target = (width, max(1, round(height * width / original)))
    scaled = frame if width == original else cv2.resize(frame, target, interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".png", scaled)
    if not ok:
        raise ApplianceError(f"PNG encoding of a {scaled.shape} screen image failed")
    return Png(buffer.tobytes(), target[0], target[1])


def encode_within(frame: np.ndarray, width: int, limit: int = INLINE_LIMIT) -> Png:
    """The widest PNG up to ``width`` whose size stays under ``limit`` bytes."""
    png = encode(frame, width)
    while len(png.data) >= limit:
        if png.width <= MIN_WIDTH:
            raise ApplianceError(f"the screenshot does not fit in {limit} bytes even at {png.width} px; "
                                 "give an upload_url")
        png = encode(frame, max(MIN_WIDTH, int(png.width * SHRINK)))
    return png


def upload(url: str, png: Png, method: str = "PUT", timeout: float = UPLOAD_TIMEOUT_S) -> int:
    """Send the PNG to ``url``; returns the HTTP status.  Only http(s) URLs are followed."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ApplianceError(f"upload_url {shown(url)!r} is not an http(s) URL")
    if method not in ("PUT", "POST"):
        raise ApplianceError(f"upload_method {method!r}: PUT or POST")
    request = urllib.request.Request(url, data=png.data, method=method,
                                     headers={"Content-Type": "image/png", "Content-Length": str(len(png.data))})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        raise ApplianceError(f"upload to {shown(url)} refused: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ApplianceError(f"upload to {shown(url)} failed: {getattr(exc, 'reason', exc)}") from exc


def shown(url: str) -> str:
    """``url`` without its query: pre-signed URLs carry their credentials there."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
