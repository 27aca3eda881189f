"""Multi-person pose of the appliance and the reference, side by side: speed, agreement, jitter.

The reference is MediaPipe's Tasks PoseLandmarker (pose_reference.py, in .venv-ref)
in VIDEO mode with ``num_poses=2``; the appliance is its own pipeline in the project
venv.  Both see the same pixels.  Printed as markdown tables (README-ready):

- **speed** on the devset kiosk video (one person) and on the same video with the
  person twice, mirrored, side by side (two people): the reference's per-frame time
  (colour conversion included) against the ``pose`` stage of ``python -m appliance
  bench --models segmentation,hands,pose --json``, in alternating rounds (the machine
  is shared and noisy: the ratio is what counts), with the appliance's frame sum of
  segmentation, hands, pose, composite and present;
- **agreement** where both find the same person (mid-shoulders within half a torso):
  per person, the median distance of the landmarks the reference sees (visibility
  ≥ 0.5) in torso lengths (mid-shoulder to mid-hip, the reference's), on the devset
  stills (IMAGE mode against ``analyze``) and on every frame of the kiosk video;
- **jitter**: frame-to-frame movement of the visible landmarks of the largest person,
  in torso lengths, on a still photo as a noisy video (still_video.py: all of it is
  the estimator's) and on the head and shoulders of the kiosk video's person (who
  stands still while her hand moves);
- **lag**: how many frames each one's wrists follow those of the reference run on
  every frame alone (IMAGE mode: no tracking, no smoothing), on the kiosk video —
  smoothing that buys its low jitter with lag shows here.

Run with ``make bench-compare-pose``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
from still_video import still_frames

from appliance.analyze import analyze
from appliance.inference.backend import Inference
from appliance.perception.body import LEFT_HIP, LEFT_SHOULDER, LEFT_WRIST, RIGHT_HIP, RIGHT_SHOULDER, RIGHT_WRIST
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.pipeline import Perceiver
from appliance.sources.base import Frame

HERE = Path(__file__).resolve().parent
STILLS = ("pose_sitting.jpg", "portrait_white_bg.png", "face_group.jpg")
JITTER_STILL = "pose_sitting.jpg"
HEAD_AND_SHOULDERS = slice(0, 13)
VISIBLE = 0.5
SAME_PERSON = 0.5  # mid-shoulders closer than this many torso lengths: the same person
FRAME_SUM = ("segmentation", "hands", "pose", "composite", "present")
WARM_UP = 10
WRISTS = [LEFT_WRIST, RIGHT_WRIST]
MAX_LAG = 6  # frames


def torso(landmarks: np.ndarray) -> float:
    shoulders = (landmarks[LEFT_SHOULDER, :2] + landmarks[RIGHT_SHOULDER, :2]) / 2
    hips = (landmarks[LEFT_HIP, :2] + landmarks[RIGHT_HIP, :2]) / 2
    return float(np.linalg.norm(shoulders - hips))


def mid_shoulder(landmarks: np.ndarray) -> np.ndarray:
    return (landmarks[LEFT_SHOULDER, :2] + landmarks[RIGHT_SHOULDER, :2]) / 2


def agreement(ours: list[np.ndarray], theirs: list[np.ndarray]) -> list[float]:
    """Per person both found, the median landmark error in the reference's torso lengths."""
    errors, free = [], list(range(len(ours)))
    for reference in theirs:
        length = torso(reference)
        near = [i for i in free if np.linalg.norm(mid_shoulder(ours[i]) - mid_shoulder(reference)) < SAME_PERSON * length]
        if not near or length <= 0:
            continue
        match = min(near, key=lambda i: np.linalg.norm(mid_shoulder(ours[i]) - mid_shoulder(reference)))
        free.remove(match)
        seen = reference[:, 3] >= VISIBLE
        distances = np.linalg.norm(ours[match][seen, :2] - reference[seen, :2], axis=1)
        errors.append(float(np.median(distances)) / length)
    return errors


def jitter(track: list[np.ndarray | None], points: slice = slice(None)) -> list[float]:
    """Per pair of consecutive frames with the person in both: the mean visible landmark movement in torso lengths."""
    moves = []
    for before, after in pairwise(track):
        if before is None or after is None:
            continue
        seen = (before[points, 3] >= VISIBLE) & (after[points, 3] >= VISIBLE)
        if seen.any():
            step = np.linalg.norm(after[points][seen, :2] - before[points][seen, :2], axis=1)
            moves.append(float(step.mean()) / torso(before))
    return moves


def lag(track: list[np.ndarray | None], truth: list[np.ndarray | None]) -> int:
    """How many frames ``track`` follows the lag-free ``truth`` late: the shift that lines their wrists up best."""
    costs = []
    for shift in range(MAX_LAG + 1):
        distances = [np.linalg.norm(late[WRISTS, :2] - early[WRISTS, :2], axis=1)[early[WRISTS, 3] >= VISIBLE]
                     for late, early in zip(track[shift:], truth[:len(truth) - shift], strict=True)
                     if late is not None and early is not None]
        costs.append(float(np.concatenate(distances).mean()))
    return int(np.argmin(costs))


def largest(poses: list[np.ndarray]) -> np.ndarray | None:
    return max(poses, key=torso, default=None)


# --- the two implementations -------------------------------------------------------------------------
def reference_json(python: str, *arguments: str) -> dict:
    result = subprocess.run([python, str(HERE / "pose_reference.py"), *arguments], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: the reference failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def reference_poses(frame: list[dict]) -> list[np.ndarray]:
    return [np.array(pose["landmarks"], float) for pose in frame]


def our_bench(video: Path, frames: int) -> dict:
    """The bench's JSON: per-stage timings and the people it tracked per frame."""
    command = [sys.executable, "-m", "appliance", "bench", str(video), "--frames", str(frames),
               "--models", "segmentation,hands,pose", "--json"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def our_video(images) -> list[list[np.ndarray]]:
    """Per frame, every pose the live pipeline finds (pose wanted every frame)."""
    perceiver = Perceiver(Inference())
    needs = Needs(pose=EVERY_FRAME)
    try:
        return [[pose.landmarks.astype(float) for pose in perceiver.process(Frame(image, index, index / 25.0),
                                                                             needs).poses]
                for index, image in enumerate(images)]
    finally:
        perceiver.close()


def our_stills(paths: list[Path]) -> dict[str, list[np.ndarray]]:
    out = io.StringIO()
    analyze(paths, Inference(), None, out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    return {Path(record["path"]).name: [np.array(pose["landmarks"], float) for pose in record.get("poses", [])]
            for record in records}


def video_frames(path: Path):
    capture = cv2.VideoCapture(str(path))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield frame
    capture.release()


def two_people_video(video: Path, out: Path) -> Path:
    """The video with its person twice (the frame and its mirror image side by side), at the video's size."""
    capture = cv2.VideoCapture(str(video))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    capture.release()
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in video_frames(video):
        pair = cv2.resize(np.hstack([frame, frame[:, ::-1]]), (width, height // 2), interpolation=cv2.INTER_AREA)
        canvas = np.full_like(frame, 20)
        canvas[height - pair.shape[0]:] = pair
        writer.write(canvas)
    writer.release()
    return out


# --- the measurements --------------------------------------------------------------------------------
def speed(videos: dict[str, Path], python: str, rounds: int, frames: int) -> list[str]:
    lines = ["| video | round | reference ms/frame p50 | appliance pose p50 | ratio | appliance frame sum p50 | "
             "people/frame p50 (ref / ours) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, video in videos.items():
        ratios = []
        for round_number in range(1, rounds + 1):
            reference = reference_json(python, "video", str(video), "--num-poses", "2", "--frames", str(frames))
            theirs = float(np.median(reference["ms"][WARM_UP:]))
            bench = our_bench(video, frames)
            ours = bench["stages"]["pose"]["p50"]
            ratios.append(ours / theirs)
            frame_sum = sum(bench["stages"][stage]["p50"] for stage in FRAME_SUM)
            people = float(np.median([len(frame) for frame in reference["frames"]]))
            lines.append(f"| {label} | {round_number} | {theirs:.1f} | {ours:.1f} | {ours / theirs:.2f} | "
                         f"{frame_sum:.1f} | {people:g} / {bench['people']['p50']:g} |")
        lines.append(f"| {label} | median ratio | | | **{statistics.median(ratios):.2f}** | | |")
    return lines


def quality(media: Path, video: Path, python: str, still_count: int) -> list[str]:
    stills = [media / name for name in STILLS]
    their_stills = reference_json(python, "images", *map(str, stills), "--num-poses", "2")["images"]
    our_still_poses = our_stills(stills)
    their_video = [reference_poses(frame) for frame in
                   reference_json(python, "video", str(video), "--num-poses", "2")["frames"]]
    our_video_poses = our_video(video_frames(video))
    if not any(our_video_poses) and not any(our_still_poses.values()):
        raise SystemExit("error: the appliance found no pose at all (has the pose stage landed?)")
    lines = ["| input | people: reference / appliance | both found | median landmark error (torso lengths) |",
             "| --- | --- | --- | --- |"]
    for path in stills:
        theirs = reference_poses(their_stills[str(path)]["poses"])
        errors = agreement(our_still_poses[path.name], theirs)
        lines.append(f"| {path.name} | {len(theirs)} / {len(our_still_poses[path.name])} | {len(errors)} | "
                     f"{statistics.median(errors):.3f} |" if errors else
                     f"| {path.name} | {len(theirs)} / {len(our_still_poses[path.name])} | 0 | — |")
    video_errors = [error for ours, theirs in zip(our_video_poses, their_video, strict=True) for error in agreement(ours, theirs)]
    lines.append(f"| {video.name} ({len(their_video)} frames) | {sum(map(len, their_video))} / "
                 f"{sum(map(len, our_video_poses))} | {len(video_errors)} | "
                 f"{statistics.median(video_errors) if video_errors else float('nan'):.3f} |")
    still_path = media / JITTER_STILL
    their_still = [largest(reference_poses(frame)) for frame in
                   reference_json(python, "video", str(still_path), "--still", str(still_count),
                                  "--num-poses", "2")["frames"]]
    our_still = [largest(poses) for poses in our_video(still_frames(str(still_path), still_count))]
    lines += ["", "| jitter (torso lengths per frame) | reference median | appliance median | reference p95 | "
              "appliance p95 |", "| --- | --- | --- | --- | --- |"]
    for label, theirs, ours in (
            (f"{JITTER_STILL} still, {still_count} noisy frames", jitter(their_still), jitter(our_still)),
            (f"{video.name}, head and shoulders", jitter([largest(f) for f in their_video], HEAD_AND_SHOULDERS),
             jitter([largest(f) for f in our_video_poses], HEAD_AND_SHOULDERS))):
        if not theirs or not ours:
            lines.append(f"| {label} | {len(theirs)} pairs | {len(ours)} pairs | — | — |")
            continue
        lines.append(f"| {label} | {np.median(theirs):.4f} | {np.median(ours):.4f} | "
                     f"{np.percentile(theirs, 95):.4f} | {np.percentile(ours, 95):.4f} |")
    truth = [largest(reference_poses(frame)) for frame in
             reference_json(python, "video", str(video), "--each-alone", "--num-poses", "2")["frames"]]
    lines += ["", "| lag behind the reference's per-frame IMAGE-mode wrists (frames at 25 fps) | reference | appliance |",
              "| --- | --- | --- |",
              f"| {video.name} | {lag([largest(f) for f in their_video], truth)} | "
              f"{lag([largest(f) for f in our_video_poses], truth)} |"]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path, help="the devset kiosk video")
    parser.add_argument("--reference-python", required=True, help="python of the venv with mediapipe")
    parser.add_argument("--media", type=Path, help="the devset (default: the video's folder)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=195)
    parser.add_argument("--still-frames", type=int, default=60)
    parser.add_argument("--skip", choices=["speed", "quality"], help="leave one part out")
    args = parser.parse_args()
    media = args.media or args.video.parent
    print(f"compare_pose.py, {time.strftime('%Y-%m-%d')}, reference: PoseLandmarker VIDEO mode num_poses=2\n")
    if args.skip != "quality":
        print("\n".join(quality(media, args.video, args.reference_python, args.still_frames)) + "\n", flush=True)
    if args.skip != "speed":
        with tempfile.TemporaryDirectory() as scratch:
            pair = two_people_video(args.video, Path(scratch) / "two_people.mp4")
            print("\n".join(speed({args.video.name: args.video, "the same, two people": pair},
                                  args.reference_python, args.rounds, args.frames)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
