"""`analyze`: what the perception finds in still images, as JSON Lines (the CLI contract)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import cv2

from appliance.errors import ApplianceError
from appliance.inference.backend import Inference
from appliance.media import read_image
from appliance.perception.segmentation import STILL_MODEL, PersonSegmenter


def analyze(paths: Iterable[Path], inference: Inference, mask_dir: Path | None, out: IO[str]) -> int:
    """Write one JSON object per input to ``out``; returns how many inputs failed."""
    segmenter = PersonSegmenter(inference.load(STILL_MODEL), inference.manifest.spec(STILL_MODEL))
    if mask_dir:
        mask_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in paths:
        try:
            record = _analyze_one(path, segmenter, mask_dir)
        except ApplianceError as exc:
            record = {"path": str(path), "error": str(exc)}
            failures += 1
        out.write(json.dumps(record) + "\n")
        out.flush()
    return failures


def _analyze_one(path: Path, segmenter: PersonSegmenter, mask_dir: Path | None) -> dict:
    image = read_image(path)
    height, width = image.shape[:2]
    mask = segmenter.mask(image)
    person: dict = {"coverage": round(float((mask >= 128).mean()), 4)}
    if mask_dir:
        target = mask_dir / f"{path.stem}.png"
        if not cv2.imwrite(str(target), mask):
            raise ApplianceError(f"cannot write mask {target} (disk full or no permission?)")
        person["mask"] = str(target)
    return {"path": str(path), "size": [width, height], "person": person}
