"""`eval gestures DIR`: detection recall, gesture accuracy and the confusion matrix on labelled images.

DIR holds one subfolder per expected label (``rock/``, ``paper/``, …); each image
in it should show that gesture.  The hand that counts is the biggest one found;
an image with no hand found is a miss, predicted ``none``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from appliance.analyze import StillPerception
from appliance.errors import ApplianceError
from appliance.inference.backend import Inference
from appliance.media import IMAGE_SUFFIXES, read_image
from appliance.perception.gestures import classify, palm_scale
from appliance.perception.hand import GESTURES

NO_HAND = "none"


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
