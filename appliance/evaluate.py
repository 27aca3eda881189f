"""`eval gestures DIR` and `eval pose DIR`: what perception finds on labelled images.

Gestures: DIR holds one subfolder per expected label (``rock/``, ``paper/``, …);
each image in it should show that gesture.  The hand that counts is the biggest
one found; an image with no hand found is a miss, predicted ``none``.

Pose: DIR holds images and ``labels.toml``, one ``[images."<file>"]`` table per
image with ``people`` (how many a viewer counts) and optionally ``boxes`` (one
``[x, y, w, h]`` per person, in pixels).  The appliance's poses are those of
``analyze`` (the CLI contract); a pose is a person found when its mid-shoulder
point falls inside a labelled box not yet claimed (the nearest box centre when
boxes overlap), else a false pose; without boxes, up to ``people`` poses count as
found and the rest are false.  With a reference python (the dev-only .venv-ref),
the reference's PoseLandmarker (models/reference/pose_reference.py, in the source
tree only) is scored the same way on the same files, side by side.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from appliance.analyze import StillPerception, analyze
from appliance.errors import ApplianceError
from appliance.inference.backend import Inference
from appliance.media import IMAGE_SUFFIXES, read_image
from appliance.perception.body import LEFT_SHOULDER, RIGHT_SHOULDER
from appliance.perception.gestures import classify, palm_scale
from appliance.perception.hand import GESTURES
from appliance.tomlfile import line_of, read_toml, validated

NO_HAND = "none"
POSE_LABELS = "labels.toml"
REFERENCE_SCRIPT = Path(__file__).resolve().parents[1] / "models" / "reference" / "pose_reference.py"
APPLIANCE, REFERENCE = "appliance", "reference"


def labelled_images(directory: Path) -> list[tuple[str, Path]]:
    if not directory.is_dir():
        raise ApplianceError(f"{directory} is not a directory of label-named subfolders")
    folders = sorted(path for path in directory.iterdir() if path.is_dir())
    unknown = [folder.name for folder in folders if folder.name not in GESTURES]
    if unknown:
        raise ApplianceError(f"unknown label folder(s) {', '.join(unknown)} in {directory} "
                             f"(labels are: {', '.join(GESTURES)})")
    images = [(folder.name, path) for folder in folders for path in sorted(folder.iterdir())
              if path.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise ApplianceError(f"no images in the label folders of {directory}")
    return images


def eval_gestures(directory: Path, inference: Inference) -> dict:
    perception = StillPerception(inference)
    confusion: dict[str, Counter[str]] = {}
    errors = []
    for label, path in labelled_images(directory):
        try:
            hands = perception.perceive(read_image(path)).hands
        except ApplianceError as exc:
            errors.append({"path": str(path), "error": str(exc)})
            continue
        biggest = max(hands, key=lambda hand: palm_scale(hand.landmarks), default=None)
        predicted = classify(biggest)[0] if biggest else NO_HAND
        confusion.setdefault(label, Counter())[predicted] += 1
    total = sum(sum(row.values()) for row in confusion.values())
    detected = sum(count for row in confusion.values() for guess, count in row.items() if guess != NO_HAND)
    correct = sum(row[label] for label, row in confusion.items())
    return {
        "images": total,
        "detected": detected,
        "detection_recall": round(detected / total, 4) if total else 0.0,
        "accuracy": round(correct / total, 4) if total else 0.0,
        "accuracy_detected": round(correct / detected, 4) if detected else 0.0,
        "per_label": {label: {"images": sum(row.values()), "detected": sum(row.values()) - row[NO_HAND],
                              "correct": row[label]} for label, row in confusion.items()},
        "confusion": {label: dict(row) for label, row in confusion.items()},
        "errors": errors,
    }


def format_report(report: dict) -> str:
    lines = [f"{report['images']} images: detection recall {report['detection_recall']:.3f}, "
             f"accuracy {report['accuracy']:.3f} ({report['accuracy_detected']:.3f} of detected hands)"]
    predicted = sorted({guess for row in report["confusion"].values() for guess in row})
    lines.append("expected \\ predicted".ljust(22) + "".join(f"{guess:>11}" for guess in predicted))
    for label, row in report["confusion"].items():
        lines.append(label.ljust(22) + "".join(f"{row.get(guess, 0):>11}" for guess in predicted))
    lines += [f"unreadable: {error['path']}: {error['error']}" for error in report["errors"]]
    return "\n".join(lines)


class LabelledPeople(BaseModel):
    model_config = ConfigDict(extra="forbid")

    people: int = Field(ge=0, le=100)
    boxes: list[tuple[float, float, float, float]] = []

    @model_validator(mode="after")
    def _one_box_per_person(self) -> LabelledPeople:
        if self.boxes and len(self.boxes) != self.people:
            raise ValueError(f"{len(self.boxes)} boxes for {self.people} people (one box per person, or none)")
        return self


class PoseLabels(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: dict[str, LabelledPeople] = Field(min_length=1)


def pose_labels(directory: Path) -> dict[Path, LabelledPeople]:
    """Image path → its label, every image checked to exist (a missing one named with its line)."""
    path = directory / POSE_LABELS
    if not directory.is_dir():
        raise ApplianceError(f"{directory} is not a directory of images with a {POSE_LABELS}")
    table = read_toml(path)
    labels = validated(PoseLabels, table, path)
    missing = [f"images.\"{name}\": no such image in {directory} (line {line_of(table.lines, ('images', name))})"
               for name in labels.images if not (directory / name).is_file()]
    if missing:
        raise ApplianceError(f"{path}: " + "; ".join(missing))
    return {directory / name: label for name, label in labels.images.items()}


def score_image(label: LabelledPeople, poses: list[np.ndarray]) -> tuple[int, int]:
    """(people found, false poses) for the landmarks (33×≥2, pixels) of the poses found in one image."""
    if not label.boxes:
        return min(len(poses), label.people), max(0, len(poses) - label.people)
    boxes = np.array(label.boxes)
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    free, false = list(range(len(boxes))), 0
    for landmarks in poses:
        point = (landmarks[LEFT_SHOULDER, :2] + landmarks[RIGHT_SHOULDER, :2]) / 2
        holding = [i for i in free if (boxes[i, :2] <= point).all() and (point <= boxes[i, :2] + boxes[i, 2:]).all()]
        if not holding:
            false += 1
            continue
        free.remove(min(holding, key=lambda i: np.linalg.norm(centres[i] - point)))
    return len(boxes) - len(free), false


def appliance_poses(paths: list[Path], inference: Inference) -> dict[Path, list[np.ndarray] | str]:
    """Each image's poses as ``analyze`` reports them, or the error it gave."""
    out = io.StringIO()
    analyze(paths, inference, None, out)
    found: dict[Path, list[np.ndarray] | str] = {}
    for path, line in zip(paths, out.getvalue().splitlines(), strict=True):
        record = json.loads(line)
        found[path] = record["error"] if "error" in record else [np.array(pose["landmarks"], float)
                                                                 for pose in record["poses"]]
    return found


def reference_poses(paths: list[Path], python: str, num_poses: int) -> dict[Path, list[np.ndarray] | str]:
    """Each image's poses found by the reference's PoseLandmarker (IMAGE mode), run by ``python``."""
    if not REFERENCE_SCRIPT.is_file():
        raise ApplianceError(f"the reference script {REFERENCE_SCRIPT} is not here (it lives in the source tree)")
    command = [python, str(REFERENCE_SCRIPT), "images", *map(str, paths), "--num-poses", str(num_poses)]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except OSError as exc:
        raise ApplianceError(f"--reference-python {python}: cannot run it ({exc})") from exc
    if result.returncode != 0:
        raise ApplianceError(f"the reference failed: {(result.stderr.strip().splitlines() or ['no message'])[-1]}")
    images = json.loads(result.stdout.strip().splitlines()[-1])["images"]
    return {path: images[str(path)].get("error") or [np.array(pose["landmarks"], float)
                                                      for pose in images[str(path)]["poses"]] for path in paths}


def eval_pose(directory: Path, inference: Inference, reference_python: str | None = None,
              reference_poses_max: int = 4) -> dict:
    labels = pose_labels(directory)
    paths = list(labels)
    theirs = reference_poses(paths, reference_python, reference_poses_max) if reference_python else None
    found = {APPLIANCE: appliance_poses(paths, inference), **({REFERENCE: theirs} if theirs is not None else {})}
    people = sum(label.people for label in labels.values())
    per_image: dict[str, dict] = {}
    totals = {name: {"found": 0, "false": 0} for name in found}
    errors = []
    for path, label in labels.items():
        row: dict = {"people": label.people}
        for name, poses in found.items():
            if isinstance(poses[path], str):
                errors.append({"path": str(path), "implementation": name, "error": poses[path]})
                row[name] = None
                continue
            hits, false = score_image(label, poses[path])
            row[name] = {"found": hits, "false": false}
            totals[name]["found"] += hits
            totals[name]["false"] += false
        per_image[path.name] = row
    for total in totals.values():
        total["recall"] = round(total["found"] / people, 4) if people else 0.0
    return {"images": len(labels), "people": people, "totals": totals, "per_image": per_image, "errors": errors}


def _found_false(cell: dict | None) -> str:
    if cell is None:
        return "error"
    recall = f" ({cell['recall']:.0%})" if "recall" in cell else ""
    return f"{cell['found']} / {cell['false']}{recall}"


def format_pose_report(report: dict) -> str:
    names = list(report["totals"])
    lines = ["image".ljust(26) + "people" + "".join(f"{name + ' found / false':>28}" for name in names)]
    for image, row in report["per_image"].items():
        lines.append(image.ljust(26) + f"{row['people']:>6}" + "".join(f"{_found_false(row[name]):>28}"
                                                                       for name in names))
    lines.append("total".ljust(26) + f"{report['people']:>6}" + "".join(
        f"{_found_false(total):>28}" for total in report["totals"].values()))
    lines += [f"unreadable by {error['implementation']}: {error['path']}: {error['error']}" for error in report["errors"]]
    return "\n".join(lines)
