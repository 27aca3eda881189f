"""``star-pose PHOTO``: the campaign star's pose, read from a photo by the appliance's own still pose.

The result is one ``[[pose.poses]]`` entry of a campaign (the pose game's table): the star's
cut-out (``image``, bundle-relative) and its 33 landmarks as ``[x, y, visibility]``, x and y
as fractions of the photo's width and height, one landmark a line with its name.

Invariants: the photo's transparent pixels (a cut-out) are shown to the model over white;
the largest person found is the star (the others are named on stderr); the entry written is
parsed back and compared, and a file it is appended to must still be valid TOML, else
nothing is written.  A pose the game could not play (``posegame.scoring.scorable``, with the
``legs`` of the file's ``[pose]`` table) is refused, nothing written, unless forced.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from appliance.analyze import StillPerception
from appliance.atomicfile import write_atomically
from appliance.errors import ApplianceError
from appliance.experiences.posegame.scoring import scorable
from appliance.inference.backend import Inference
from appliance.media import DEFAULT_LIMITS, MediaLimits, read_bgra
from appliance.perception.body import LANDMARK_NAMES, Pose

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - boards with Python 3.10
    import tomli as tomllib



def over_white(picture: np.ndarray) -> np.ndarray:
    """A BGRA picture as BGR over white (a cut-out's transparent background becomes plain)."""
    alpha = picture[:, :, 3:4].astype(np.float32) / 255.0
    return (picture[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)


def find_star(photo: Path, inference: Inference, limits: MediaLimits = DEFAULT_LIMITS,
              progress: Callable[[str], None] = lambda line: None) -> tuple[Pose, tuple[int, int]]:
    """The largest person's pose in ``photo`` and the photo's size (w, h)."""
    picture = over_white(read_bgra(photo, limits))
    poses = StillPerception(inference).perceive(picture).poses
    if not poses:
        raise ApplianceError(f"{photo}: no person found (the whole body, facing the camera, works best)")
    if len(poses) > 1:
        progress(f"{photo}: {len(poses)} people found; the largest is taken as the star")
    return poses[0], (picture.shape[1], picture.shape[0])


def entry(pose: Pose, size: tuple[int, int], image: str, name: str = "") -> str:
    """The ``[[pose.poses]]`` entry for ``pose`` found in a picture of ``size`` (w, h)."""
    rows = [[round(float(x) / size[0], 4), round(float(y) / size[1], 4), round(float(v), 3)]
            for x, y, _, v in pose.landmarks]
    lines = ["[[pose.poses]]", f"image = {json.dumps(image, ensure_ascii=False)}"]
    if name:
        lines.append(f"name = {json.dumps(name, ensure_ascii=False)}")
    lines.append("landmarks = [  # x, y (fractions of the picture), visibility")
    lines += [f"  [{x}, {y}, {v}],  # {index} {LANDMARK_NAMES[index]}" for index, (x, y, v) in enumerate(rows)]
    lines.append("]")
    text = "\n".join(lines) + "\n"
    expected = {"image": image, "landmarks": rows, **({"name": name} if name else {})}
    if tomllib.loads(text) != {"pose": {"poses": [expected]}}:
        raise ApplianceError(f"the pose of {image} cannot be written as TOML without changing it")
    return text


def playable(pose: Pose, legs: bool = True) -> str | None:
    """Why the pose game cannot play ``pose`` (with or without ``legs``), or None: the game's own check."""
    problem = scorable(pose.landmarks[:, [0, 1, 3]], legs)
    if problem is not None and legs and scorable(pose.landmarks[:, [0, 1, 3]], False) is None:
        return f"{problem}: only a [pose] table with legs = false can play this pose"
    return problem


def append(path: Path, text: str) -> None:
    """Append ``text`` to ``path`` (made when absent) if the result is still valid TOML."""
    try:
        before = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ApplianceError(f"cannot read {path}: {exc}") from exc
    after = before + ("\n" if before and not before.endswith("\n\n") else "") + text
    try:
        tomllib.loads(after)
    except tomllib.TOMLDecodeError as exc:
        raise ApplianceError(f"{path}: the pose cannot be appended, the result would not be valid TOML ({exc}); "
                             "is `poses` given inline in its [pose] table?") from exc
    try:
        write_atomically(path, after.encode("utf-8"))
    except OSError as exc:
        raise ApplianceError(f"cannot write {path}: {exc}") from exc


def legs_of(out: Path | None) -> bool:
    """The ``legs`` of the ``[pose]`` table in ``out`` (True, the game's default, without one)."""
    if out is None or not out.is_file():
        return True
    try:
        table = tomllib.loads(out.read_text(encoding="utf-8")).get("pose", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ApplianceError(f"cannot read {out}: {exc}") from exc
    return bool(table.get("legs", True)) if isinstance(table, dict) else True


def image_path(photo: Path, out: Path | None) -> str:
    """The cut-out's bundle-relative path: the photo's, relative to the output file's folder when it is
    inside it, else its file name."""
    if out is not None and photo.resolve().is_relative_to(out.resolve().parent):
        return photo.resolve().relative_to(out.resolve().parent).as_posix()
    return photo.name
