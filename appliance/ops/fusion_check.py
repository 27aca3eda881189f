"""``python -m appliance.ops.fusion_check TEMPLATE [SHOPPER ...] [--out DIR]``: is a poster a fusion template, and
how long a fusion takes.

The template's face is found by the appliance's still face stage and checked as the ``fusion`` experience checks
it at its first use (``facefusion.fusion.template_face``): an operator learns before shipping a campaign that its
poster has no face, or one turned away.  Each SHOPPER photo's largest face is then fused into it, as the kiosk
fuses a still: one JSON line per shopper with its pose, the triangles that took the whole face's map and the
fusion's time (``fuse_ms``: the warp, colour and blend of the full-quality still; the face stages are not in it)
and whether the poster kept its own mouth opening (``kept_mouth``: the shopper's mouth shut, the poster's open);
with ``--out`` the fused poster is written beside.

Invariants: reads images through appliance.media within its limits; a shopper whose face is refused is a line
with its ``refused`` reason, not a failure; the template's problems are one ApplianceError line naming the file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2

from appliance.errors import ApplianceError, command_line
from appliance.experiences.facefusion.fusion import FaceRefused, TemplateFace, fuse, pose, template_face
from appliance.inference.backend import Inference
from appliance.media import read_image
from appliance.perception.stages import FaceStage


def load_template(path: Path, stage: FaceStage) -> TemplateFace:
    image = read_image(path)
    return template_face(image, stage.find(image, None), str(path))


def fuse_photo(template: TemplateFace, path: Path, stage: FaceStage, out_dir: Path | None) -> dict:
    """One shopper photo's line (see the module's docstring)."""
    image = read_image(path)
    faces = stage.find(image, None)
    if not faces:
        return {"path": str(path), "refused": "no face found"}
    turn = pose(faces[0].landmarks)
    line: dict = {"path": str(path), "yaw": round(turn.yaw, 1), "pitch": round(turn.pitch, 1),
                  "roll": round(turn.roll, 1)}
    started = time.perf_counter()
    try:
        fused = fuse(template, image, faces[0].landmarks)
    except FaceRefused as exc:
        return {**line, "refused": str(exc)}
    line.update(fuse_ms=round((time.perf_counter() - started) * 1000, 1), folded=fused.folded,
                kept_mouth=fused.kept_mouth)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{path.stem}-fused.jpg"
        if not cv2.imwrite(str(target), fused.image):
            raise ApplianceError(f"could not write {target}")
        line["out"] = str(target)
    return line


@command_line
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.ops.fusion_check",
                                     description="Check a fusion template; fuse shopper photos into it, timed.")
    parser.add_argument("template", type=Path, help="the star's poster (PNG or JPEG)")
    parser.add_argument("shoppers", type=Path, nargs="*", help="photos whose largest face is fused into it")
    parser.add_argument("--out", type=Path, help="write each fused poster here")
    parser.add_argument("--backend", default="litert", help="the inference backend (default litert)")
    args = parser.parse_args(argv)
    stage = FaceStage(Inference(args.backend), still=True)
    template = load_template(args.template, stage)
    sys.stderr.write(f"{args.template}: a face {template.width:.0f} px across, {len(template.triangles)} triangles\n")
    for path in args.shoppers:
        print(json.dumps(fuse_photo(template, path, stage, args.out)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
