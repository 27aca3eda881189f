"""Bodies found by the reference implementation's multi-person PoseLandmarker (runs in .venv-ref).

MediaPipe 0.10.21's Tasks ``PoseLandmarker`` with ``num_poses`` people (default 2).
The wheel ships no ``.task`` bundle, so one is built once from the wheel's own
models (``pose_detection.tflite``, ``pose_landmark_full.tflite``) with the Tasks
metadata writer — image input normalised (x-127.5)/127.5 for the detector and
x/255 for the landmarks, as the models were trained — and cached beside the
appliance's models (``models/cache/reference/``, never committed).

``images PATH...`` runs IMAGE mode on each still; ``video PATH`` runs VIDEO mode
(tracking regions between frames, the detector only while fewer than
``num_poses`` people are tracked) on a video, or with ``--still N`` on N noisy
copies of a photo (still_video.py); ``--each-alone`` runs each frame of it in
IMAGE mode instead (no tracking or smoothing: landmarks without lag).  Prints one JSON object whose poses carry 33
landmarks ``[x, y, z, visibility]`` in the input's pixels (z on x's scale) and
whose ``ms`` is the per-image or per-frame time, colour conversion included.
Development tooling only: the appliance never depends on mediapipe.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions
from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, model_asset_bundle_utils
from mediapipe.tasks.python.vision import PoseLandmarker, PoseLandmarkerOptions, RunningMode
from still_video import still_frames

CACHE = Path(__file__).resolve().parents[1] / "cache" / "reference"
MODULES = Path(mp.__file__).parent / "modules"
#: Bundle member → (the wheel's model, input mean, input std).
MEMBERS = {
    "pose_detector.tflite": (MODULES / "pose_detection" / "pose_detection.tflite", 127.5, 127.5),
    "pose_landmarks_detector.tflite": (MODULES / "pose_landmark" / "pose_landmark_full.tflite", 0.0, 255.0),
}
FRAME_MS = 40  # the devset videos' 25 fps


def bundle() -> Path:
    """The .task file built from the wheel's models (built on first use, then reused)."""
    path = CACHE / f"pose_landmarker_full-mediapipe{mp.__version__}.task"
    if not path.is_file():
        members = {}
        for name, (model, mean, std) in MEMBERS.items():
            writer = metadata_writer.MetadataWriter.create(bytearray(model.read_bytes()))
            members[name] = bytes(writer.add_general_info(name.removesuffix(".tflite"))
                                  .add_image_input([mean], [std]).populate()[0])
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        model_asset_bundle_utils.create_model_asset_bundle(members, str(partial))
        partial.replace(path)
    return path


def landmarker(mode: RunningMode, num_poses: int) -> PoseLandmarker:
    options = PoseLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(bundle())),
                                    running_mode=mode, num_poses=num_poses)
    return PoseLandmarker.create_from_options(options)


def poses_of(result, width: int, height: int) -> list[dict]:
    return [{"landmarks": [[round(point.x * width, 2), round(point.y * height, 2), round(point.z * width, 2),
                            round(point.visibility, 4)] for point in landmarks]}
            for landmarks in result.pose_landmarks]


def run_images(paths: list[str], num_poses: int) -> dict:
    report = {}
    with landmarker(RunningMode.IMAGE, num_poses) as model:
        for path in paths:
            frame = cv2.imread(path, cv2.IMREAD_COLOR)
            if frame is None:
                report[path] = {"error": "cannot read the image"}
                continue
            started = time.perf_counter()
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            result = model.detect(image)
            elapsed = (time.perf_counter() - started) * 1000
            height, width = frame.shape[:2]
            report[path] = {"size": [width, height], "poses": poses_of(result, width, height), "ms": round(elapsed, 3)}
    return {"images": report}


def video_frames(path: str, still: int):
    if still:
        yield from still_frames(path, still)
        return
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise SystemExit(f"error: cannot open {path}")
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield frame
    capture.release()


def run_video(path: str, num_poses: int, still: int, limit: int, each_alone: bool) -> dict:
    frames, timings, size = [], [], [0, 0]
    with landmarker(RunningMode.IMAGE if each_alone else RunningMode.VIDEO, num_poses) as model:
        for index, frame in enumerate(video_frames(path, still)):
            if limit and index >= limit:
                break
            height, width = frame.shape[:2]
            size = [width, height]
            started = time.perf_counter()
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            result = model.detect(image) if each_alone else model.detect_for_video(image, index * FRAME_MS)
            timings.append(round((time.perf_counter() - started) * 1000, 3))
            frames.append(poses_of(result, width, height))
    return {"size": size, "frames": frames, "ms": timings}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["images", "video"])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--num-poses", type=int, default=2)
    parser.add_argument("--still", type=int, default=0, help="video mode: N noisy copies of the photo PATH")
    parser.add_argument("--frames", type=int, default=0, help="video mode: stop after N frames (0: all)")
    parser.add_argument("--each-alone", action="store_true",
                        help="video mode: every frame in IMAGE mode (no tracking, no smoothing: no lag)")
    args = parser.parse_args()
    if args.mode == "images":
        report = run_images(args.paths, args.num_poses)
    else:
        report = run_video(args.paths[0], args.num_poses, args.still, args.frames, args.each_alone)
    report["num_poses"] = args.num_poses
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
