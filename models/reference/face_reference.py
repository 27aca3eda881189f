"""Faces found by the reference implementation's legacy face solutions (runs in .venv-ref).

MediaPipe 0.10.21's ``mp.solutions.face_detection.FaceDetection`` with
``model_selection`` 0 (short range) and 1 (full range), default confidence 0.5,
and ``mp.solutions.face_mesh.FaceMesh`` with ``static_image_mode=True``,
``refine_landmarks=False`` (the 468-point model the appliance runs) and
``max_num_faces`` faces (default 4).  Prints one JSON object:
``{"images": {PATH: {"size": [w, h], "short": [...], "full": [...], "mesh": [...]}}}``
where a detection is ``{"score", "box": [x, y, w, h], "keypoints": 6 × [x, y]}`` and
a mesh is ``{"landmarks": 468 × [x, y, z]}``, all in the input's pixels (z on x's
scale).  Development tooling only: the appliance never depends on mediapipe.
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import mediapipe as mp


def detections_of(result, width: int, height: int) -> list[dict]:
    found = []
    for detection in result.detections or []:
        data = detection.location_data
        box = data.relative_bounding_box
        found.append({"score": round(float(detection.score[0]), 4),
                      "box": [round(box.xmin * width, 2), round(box.ymin * height, 2),
                              round(box.width * width, 2), round(box.height * height, 2)],
                      "keypoints": [[round(point.x * width, 2), round(point.y * height, 2)]
                                    for point in data.relative_keypoints]})
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--max-faces", type=int, default=4)
    args = parser.parse_args()
    detectors = {name: mp.solutions.face_detection.FaceDetection(model_selection=selection)
                 for name, selection in (("short", 0), ("full", 1))}
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=args.max_faces,
                                           refine_landmarks=False)
    report = {}
    for path in args.paths:
        frame = cv2.imread(path, cv2.IMREAD_COLOR)
        if frame is None:
            report[path] = {"error": "cannot read the image"}
            continue
        height, width = frame.shape[:2]
        image = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        entry: dict = {"size": [width, height]}
        for name, detector in detectors.items():
            entry[name] = detections_of(detector.process(image), width, height)
        faces = mesh.process(image).multi_face_landmarks or []
        entry["mesh"] = [{"landmarks": [[round(point.x * width, 2), round(point.y * height, 2),
                                         round(point.z * width, 2)] for point in face.landmark]} for face in faces]
        report[path] = entry
    print(json.dumps({"images": report, "max_faces": args.max_faces}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
