"""``photo``: the photo booth's still path as a command (the CLI contract), the same code the kiosk runs.

JSON Lines on ``out``, one object per input: ``{"path", "photo", "screen", "size", "person": {"box"},
"star": {"box"}, "timings_ms"}`` (``screen`` and ``timings_ms`` extend the contract: the screen
version's file, and each step's milliseconds, ``total`` being capture to finished photo; ``read``
and ``write`` are the command's own file work, outside ``total``).  With ``style`` (one of the campaign's
``[photo] styles``, at its stroke or ``stroke``) each photo is painted in it, as the booth paints it, and its
timings gain ``style``.

Invariants: the campaign is loaded and its desk prepared before any input (a campaign problem
stops the command, naming the file and key; so does a style the campaign does not have); each input is read within the media limits, and one
that cannot be read, has nobody in it or cannot be written is an ``{"path", "error"}`` line, never
a result; files are ``DIR/<stem>.jpg`` and ``DIR/<stem>-screen.jpg``, the stem numbered
(``x-2``) when those names are an input's or another input's files (``analyze.json_lines``); each
file is written atomically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import cv2

from appliance.analyze import json_lines
from appliance.atomicfile import write_atomically
from appliance.content import load_bundle
from appliance.errors import ApplianceError
from appliance.experience.registry import Registry
from appliance.inference.backend import Inference
from appliance.media import DEFAULT_LIMITS, MediaLimits, read_image
from appliance.perception.pose_tracker import PoseSettings
from appliance.perception.still_faces import StillFaces
from appliance.photo.compose import compose_photo
from appliance.photo.desk import PhotoDesk
from appliance.photo.style import Styler, styled_photo

log = logging.getLogger(__name__)


def photo(paths: Iterable[Path], campaign: Path, out_dir: Path, inference: Inference, out: IO[str],
          limits: MediaLimits = DEFAULT_LIMITS, scene_id: str | None = None, registry: Registry | None = None,
          pose: PoseSettings = PoseSettings(), style: str | None = None, stroke: str | None = None) -> int:
    """Write one JSON object per input to ``out``; returns how many inputs failed."""
    started = time.perf_counter()
    bundle = load_bundle(campaign, registry)
    desk = PhotoDesk(bundle, inference, scene_id, limits, pose=pose)
    styler = None
    if style is not None:
        try:
            chosen = desk.config.style(style)
        except KeyError as exc:
            raise ApplianceError(f"{campaign / 'campaign.toml'}: {exc.args[0]}") from None
        styler = Styler([chosen], Path(bundle.directory), inference, limits, StillFaces(inference))
    log.info("photo desk for %s ready in %.0f ms (the kiosk makes it at a campaign world's first photo)",
             campaign, (time.perf_counter() - started) * 1000)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ApplianceError(f"cannot create --out-dir {out_dir}: {exc.strerror or exc}") from exc
    painting = (styler, style, stroke) if styler is not None else None
    return json_lines(paths, lambda path, stem: _one(path, desk, out_dir, stem, limits, painting), out,
                      lambda stem: list(_files(out_dir, stem)))


def _files(out_dir: Path, stem: str) -> tuple[Path, Path]:
    """The print-size photo and the screen version of the input given ``stem``."""
    return out_dir / f"{stem}.jpg", out_dir / f"{stem}-screen.jpg"


def _one(path: Path, desk: PhotoDesk, out_dir: Path, stem: str, limits: MediaLimits,
         painting: tuple[Styler, str, str | None] | None) -> dict:
    start = time.perf_counter()
    frame = read_image(path, limits=limits)
    read_ms = (time.perf_counter() - start) * 1000.0
    result = compose_photo(frame, desk)
    if painting is not None:
        styler, style, stroke = painting
        result = styled_photo(result, styler, style, desk.config.jpeg_quality, desk.config.screen_size(), stroke)
    start = time.perf_counter()
    photo_path, screen_path = _files(out_dir, stem)
    ok, screen = cv2.imencode(".jpg", result.screen, [cv2.IMWRITE_JPEG_QUALITY, desk.config.jpeg_quality])
    if not ok:
        raise ApplianceError(f"{path}: the screen version could not be encoded as JPEG")
    write_atomically(photo_path, result.jpeg)
    write_atomically(screen_path, screen.tobytes())
    write_ms = (time.perf_counter() - start) * 1000.0
    width, height = desk.size
    return {"path": str(path), "photo": str(photo_path), "screen": str(screen_path), "size": [width, height],
            "person": {"box": list(result.person_box)}, "star": {"box": list(result.star_box)},
            "timings_ms": {**result.timings_ms, "read": round(read_ms, 1), "write": round(write_ms, 1)}}
