"""Writing the bundled default content: ``python -m appliance.content generate [DIR] [--force]``.

``python -m appliance.content pose-table`` prints the default campaign's ``[[pose.poses]]``: each
pose's picture and its landmarks come from the same stance (artwork.STANCES), and
content/default/campaign.toml carries this text (a test holds them equal).
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from appliance.content.artwork import (
    STANCES,
    aurora_frames,
    draw_frame,
    draw_logo,
    draw_stage,
    draw_star,
    draw_star_pose,
    draw_street,
    pose_landmarks,
)
from appliance.content.bundle import CAMPAIGN_FILE, DEFAULT_BUNDLE_DIR
from appliance.content.poster import astronaut, draw_poster
from appliance.errors import ApplianceError, command_line
from appliance.perception.body import LANDMARK_NAMES


def _write_image(path: Path, image: np.ndarray) -> None:
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    if not cv2.imwrite(str(partial), image):
        raise ApplianceError(f"could not write {path}: the encoder refused it (is the directory writable?)")
    os.replace(partial, path)


def _write_video(path: Path, frames, fps: float, size: tuple[int, int]) -> None:
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise ApplianceError(
            f"could not write {path}: OpenCV has no mp4v encoder here or the directory is not writable"
        )
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    os.replace(partial, path)


MEDIA: dict[str, Callable[[Path], None]] = {
    "street.png": lambda path: _write_image(path, draw_street(np.random.default_rng(1))),
    "stage.png": lambda path: _write_image(path, draw_stage(np.random.default_rng(2))),
    "aurora.mp4": lambda path: _write_video(path, aurora_frames(np.random.default_rng(3)), 25.0, (1280, 720)),
    "logo.png": lambda path: _write_image(path, draw_logo()),
    "frame.png": lambda path: _write_image(path, draw_frame()),
    "star.png": lambda path: _write_image(path, draw_star("neutral")),
    "star_happy.png": lambda path: _write_image(path, draw_star("happy")),
    "star_sad.png": lambda path: _write_image(path, draw_star("sad")),
    "nova_star_jump.png": lambda path: _write_image(path, draw_star_pose(STANCES["star-jump"])),
    "nova_t.png": lambda path: _write_image(path, draw_star_pose(STANCES["t"])),
    "nova_wave.png": lambda path: _write_image(path, draw_star_pose(STANCES["wave"])),
    "nova_poster.png": lambda path: _write_image(path, draw_poster(astronaut())),
}
#: The default campaign's star poses, in its order: (picture, name on screen, stance).
STAR_POSES = (("nova_star_jump.png", "Star jump", "star-jump"), ("nova_t.png", "T", "t"), ("nova_wave.png", "Wave", "wave"))
#: The visibility given to every landmark of a drawn pose: all of them are in the picture.
DRAWN = 0.99


def pose_landmark_rows(stance: str) -> list[list[float]]:
    """A stance's 33 ``[x, y, visibility]`` rows, as the campaign's ``landmarks`` carry them."""
    return [[float(x), float(y), DRAWN] for x, y in pose_landmarks(STANCES[stance])]


def pose_table() -> str:
    """The default campaign's ``[[pose.poses]]`` entries as TOML, one commented landmark per line."""
    blocks = []
    for image, name, stance in STAR_POSES:
        rows = "\n".join(f"    [{x:.4f}, {y:.4f}, {v}],  # {index} {LANDMARK_NAMES[index]}"
                         for index, (x, y, v) in enumerate(pose_landmark_rows(stance)))
        blocks.append(f'[[pose.poses]]\nimage = "{image}"\nname = "{name}"\nlandmarks = [\n{rows}\n]\n')
    return "\n".join(blocks)


def generate_default(
    bundle_dir: Path = DEFAULT_BUNDLE_DIR, force: bool = False, progress: Callable[[str], None] = lambda line: None
) -> list[Path]:
    """Write the default bundle's media (and its campaign.toml when DIR is not the checkout's).

    Existing files are kept unless ``force``, so re-running is cheap; each file is written
    under a temporary name and renamed, so an interrupted run never leaves a half file that
    a later run would keep. Returns the files written.
    """
    bundle_dir = Path(bundle_dir)
    try:
        bundle_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ApplianceError(f"cannot create the bundle directory {bundle_dir}: {exc}") from exc
    written: list[Path] = []
    source_toml, target_toml = DEFAULT_BUNDLE_DIR / CAMPAIGN_FILE, bundle_dir / CAMPAIGN_FILE
    if target_toml.resolve() != source_toml.resolve() and (force or not target_toml.exists()):
        if not source_toml.is_file():
            raise ApplianceError(f"the default {CAMPAIGN_FILE} is missing at {source_toml}; restore it from git")
        shutil.copyfile(source_toml, target_toml)
        written.append(target_toml)
        progress(f"wrote {target_toml}")
    for name, write in MEDIA.items():
        path = bundle_dir / name
        if path.exists() and not force:
            progress(f"kept  {path} (exists; --force rewrites)")
            continue
        write(path)
        written.append(path)
        progress(f"wrote {path}")
    return written


@command_line
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.content", description="Content bundle tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="draw the default bundle's media")
    generate.add_argument("dir", nargs="?", type=Path, default=DEFAULT_BUNDLE_DIR, help="target directory")
    generate.add_argument("--force", action="store_true", help="rewrite files that already exist")
    commands.add_parser("pose-table", help="print the default campaign's [[pose.poses]] (what its campaign.toml carries)")
    args = parser.parse_args(argv)
    if args.command == "pose-table":
        print(pose_table(), end="")
    else:
        generate_default(args.dir, force=args.force, progress=print)
