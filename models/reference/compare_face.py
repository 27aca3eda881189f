"""Faces of the appliance and the reference, side by side: faces found, box IoU, mesh landmark error.

The reference is MediaPipe 0.10.21's legacy ``face_detection`` (model_selection 0,
short range, and 1, full range) and ``face_mesh`` (static images, 468 points), run
by face_reference.py in .venv-ref; the appliance is its own code in the project
venv.  Both see the same stills: the devset's (``$OIVIS_TEST_MEDIA`` or
``--media``) and scikit-image's astronaut.  Per image and per detector: faces each
finds and the mean IoU of the boxes of the faces both find; per image: the meshes
each finds against the reference's FaceMesh and, per face both find, the mean
landmark distance (x, y) in units of the reference's inter-ocular distance
(between the eye centres): once through the reference's own pipeline (the mesh
on the short-range detection's region: the implementation's parity) and once
through the appliance's still path (``analyze``'s: both detectors on the
whole image and the heads of the person mask's regions, the more confident
detection's region: where a face is found by both, the meshes differ by as
much as the two detectors' boxes do).  Printed as a
markdown table (README-ready); ``--record`` writes the reference's answers
(detections and meshes, by image name) to the JSON tests/test_face_parity.py
compares against when .venv-ref is absent.

Run with ``make eval-face``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from appliance.inference.backend import Inference
from appliance.perception.face import Face
from appliance.perception.face_detection import FULL_RANGE, SHORT_RANGE, FaceDetector
from appliance.perception.face_tracker import faces_in_still, iou
from appliance.perception.palm import full_frame_window
from appliance.perception.stages import FaceStage, SegmentationStage

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "face_reference.json"
DEVSET_STILLS = ("face_group.jpg", "portrait_white_bg.png", "pose_sitting.jpg", "thumb_up.jpg",
                 "victory_closeup.jpg")
ASTRONAUT = "astronaut.png"
DETECTORS = {"short": SHORT_RANGE, "full": FULL_RANGE}
#: Two boxes overlapping this much (IoU) are the same face.
SAME_FACE = 0.3


def image_paths(media: Path) -> dict[str, Path]:
    """The stills by name: the devset's and scikit-image's astronaut (its file in the installed package)."""
    paths = {name: media / name for name in DEVSET_STILLS}
    paths[ASTRONAUT] = Path(data.__file__).parent / ASTRONAUT
    return paths


def reference(paths: dict[str, Path], python: Path) -> dict:
    """The reference's answers by image name, from face_reference.py run by ``python``."""
    result = subprocess.run([str(python), str(HERE / "face_reference.py"), *map(str, paths.values())],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"error: the reference failed: {result.stderr.strip().splitlines()[-1:]}")
    by_path = json.loads(result.stdout)["images"]
    return {name: by_path[str(path)] for name, path in paths.items()}


def ours(paths: dict[str, Path], inference: Inference) -> dict:
    """The appliance's answers in the reference's layout: each detector alone on the whole image, and the still
    path's meshes."""
    detectors = {name: FaceDetector(inference.load(model.name), model) for name, model in DETECTORS.items()}
    stage = FaceStage(inference, still=True)
    segmentation = SegmentationStage(inference, still=True)
    answers = {}
    for name, path in paths.items():
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        height, width = image.shape[:2]
        entry: dict = {"size": [width, height]}
        for label, detector in detectors.items():
            entry[label] = [{"score": d.score, "box": [float(d.box[0]), float(d.box[1]), float(d.box[2] - d.box[0]),
                                                       float(d.box[3] - d.box[1])],
                             "keypoints": d.keypoints.tolist()}
                            for d in detector.detect(image, full_frame_window(width, height))]
        entry["mesh"] = [{"landmarks": face.landmarks.tolist()} for face in stage.find(image, segmentation.run(image))]
        entry["mesh_short"] = [{"landmarks": face.landmarks.tolist()}
                               for face in faces_in_still([detectors["short"]], stage.landmarker, image)]
        answers[name] = entry
    return answers


def _mesh_face(mesh: dict) -> Face:
    return Face(1.0, np.asarray(mesh["landmarks"], dtype=np.float32))


def _pairs(ours_boxes: list, theirs_boxes: list) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching by IoU (at least SAME_FACE): (our index, their index, IoU)."""
    candidates = sorted(((iou(a, b), i, j) for i, a in enumerate(ours_boxes) for j, b in enumerate(theirs_boxes)),
                        reverse=True)
    used_ours, used_theirs, pairs = set(), set(), []
    for overlap, i, j in candidates:
        if overlap >= SAME_FACE and i not in used_ours and j not in used_theirs:
            used_ours.add(i)
            used_theirs.add(j)
            pairs.append((i, j, overlap))
    return pairs


def compare(mine: dict, theirs: dict) -> dict:
    """Per image: per detector ``{"ours", "reference", "iou"}`` (mean IoU of matched boxes, None when none),
    and ``mesh`` (the still path's) and ``mesh_short`` (the reference's pipeline): ``{"ours", "reference",
    "errors"}`` (per matched face, mean landmark error in reference inter-ocular distances)."""
    report = {}
    for name, reference_entry in theirs.items():
        entry = mine[name]
        row: dict = {}
        for label in DETECTORS:
            pairs = _pairs([d["box"] for d in entry[label]], [d["box"] for d in reference_entry[label]])
            row[label] = {"ours": len(entry[label]), "reference": len(reference_entry[label]),
                          "iou": float(np.mean([overlap for _, _, overlap in pairs])) if pairs else None}
        their_faces = [_mesh_face(mesh) for mesh in reference_entry["mesh"]]
        for label in ("mesh", "mesh_short"):
            our_faces = [_mesh_face(mesh) for mesh in entry[label]]
            errors = []
            for i, j, _ in _pairs([f.box for f in our_faces], [f.box for f in their_faces]):
                distance = np.linalg.norm(our_faces[i].landmarks[:, :2] - their_faces[j].landmarks[:, :2], axis=1)
                errors.append(float(distance.mean() / their_faces[j].interocular()))
            row[label] = {"ours": len(our_faces), "reference": len(their_faces), "errors": errors}
        report[name] = row
    return report


def markdown(report: dict) -> str:
    def found(cell: dict) -> str:
        return f"{cell['ours']} / {cell['reference']}"

    def overlap(cell: dict) -> str:
        return "–" if cell["iou"] is None else f"{cell['iou']:.3f}"

    def mesh(cell: dict) -> str:
        return f"{found(cell)}, " + (", ".join(f"{error:.4f}" for error in cell["errors"]) or "–")

    lines = ["| image | short range: faces (ours / ref), box IoU | full range: faces, box IoU | mesh on the "
             "short-range region: faces, landmark error (inter-ocular) | mesh, still path: faces, error |",
             "| --- | --- | --- | --- | --- |"]
    for name, row in report.items():
        lines.append(f"| {name} | {found(row['short'])}, {overlap(row['short'])} | {found(row['full'])}, "
                     f"{overlap(row['full'])} | {mesh(row['mesh_short'])} | {mesh(row['mesh'])} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", type=Path, default=Path(".venv-ref/bin/python"))
    parser.add_argument("--media", type=Path, default=Path(os.environ.get("OIVIS_TEST_MEDIA", "../shared/devset")))
    parser.add_argument("--record", action="store_true", help=f"write the reference's answers to {RECORDED}")
    args = parser.parse_args()
    paths = image_paths(args.media)
    theirs = reference(paths, args.reference_python)
    if args.record:
        RECORDED.write_text(json.dumps({"mediapipe": "0.10.21", "images": theirs}) + "\n")
    print(markdown(compare(ours(paths, Inference("litert")), theirs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
