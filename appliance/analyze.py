"""`analyze`: what the perception finds in still images, as JSON Lines (the CLI contract).

Each input is read through appliance.media within the configured limits: a missing,
truncated, corrupt or oversized file is an ``{"path", "error"}`` line, never a result.
A face's ``age``, ``gender`` and ``gender_score`` are there only when the estimator is enabled
(``[face] age_gender``): off, its networks are not even loaded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np

from appliance.errors import ApplianceError
from appliance.inference.backend import Inference
from appliance.media import DEFAULT_LIMITS, MediaLimits, read_image
from appliance.perception.body import Pose
from appliance.perception.face import Face
from appliance.perception.face_tracker import FaceSettings
from appliance.perception.gestures import classify
from appliance.perception.hand import Hand
from appliance.perception.pose_tracker import PoseSettings
from appliance.perception.stages import AgeStage, FaceStage, HandStage, PoseStage, SegmentationStage


@dataclass(frozen=True)
class StillResult:
    mask: np.ndarray        # uint8 person probability at the image's size
    hands: list[Hand]
    poses: list[Pose]       # every person, largest first
    faces: list[Face]       # every face, largest first


class StillPerception:
    """The live path's stages in still mode: the square segmentation model, every hand-search step, the pose
    detector on the whole image and the mask's person regions, both face detectors on the whole image and the
    regions' heads, with ``age_gender`` each face's age and gender; no state."""

    def __init__(self, inference: Inference, pose: PoseSettings = PoseSettings(),
                 face: FaceSettings = FaceSettings(), age_gender: bool = False) -> None:
        self.segmentation = SegmentationStage(inference, still=True)
        self.hands = HandStage(inference, still=True)
        self.pose = PoseStage(inference, still=True, settings=pose)
        self.face = FaceStage(inference, still=True, settings=face)
        self.age = AgeStage(inference, still=True) if age_gender else None

    def perceive(self, image: np.ndarray) -> StillResult:
        segmented = self.segmentation.run(image)
        faces = self.face.find(image, segmented)
        if self.age is not None:
            faces = self.age.find(image, faces, gender=True)
        return StillResult(segmented.alpha, self.hands.find(image, segmented.person),
                           self.pose.find(image, segmented), faces)


def hand_record(hand: Hand) -> dict:
    gesture, confidence = classify(hand)
    return {
        "handedness": hand.handedness,
        "score": round(hand.score, 4),
        "gesture": gesture,
        "gesture_score": round(confidence, 4),
        "box": [round(value, 2) for value in hand.box],
        "landmarks": np.round(hand.landmarks.astype(float), 2).tolist(),
    }


def pose_record(pose: Pose) -> dict:
    """One person as the contract's ``poses`` entry: score, box and 33 × [x, y, z, visibility] in input pixels."""
    return {
        "score": round(pose.score, 4),
        "box": [round(value, 2) for value in pose.box],
        "landmarks": [[round(float(x), 2), round(float(y), 2), round(float(z), 2), round(float(v), 4)]
                      for x, y, z, v in pose.landmarks],
    }


def face_record(face: Face) -> dict:
    """One face as the contract's ``faces`` entry: score, box and 468 × [x, y, z] in input pixels, and its age,
    gender and gender_score when the estimator ran."""
    record = {
        "score": round(face.score, 4),
        "box": [round(value, 2) for value in face.box],
        "landmarks": np.round(face.landmarks.astype(float), 2).tolist(),
    }
    if face.age is not None:
        record["age"] = round(face.age.age, 1)
        if face.age.gender is not None and face.age.gender_score is not None:
            record["gender"], record["gender_score"] = face.age.gender, round(face.age.gender_score, 4)
    return record


def analyze(paths: Iterable[Path], inference: Inference, mask_dir: Path | None, out: IO[str],
            limits: MediaLimits = DEFAULT_LIMITS, pose: PoseSettings = PoseSettings(),
            face: FaceSettings = FaceSettings(), age_gender: bool = False) -> int:
    """Write one JSON object per input to ``out``; returns how many inputs failed."""
    perception = StillPerception(inference, pose, face, age_gender)
    if mask_dir:
        mask_dir.mkdir(parents=True, exist_ok=True)
    def mask(stem: str) -> Path | None:
        return mask_dir / f"{stem}.png" if mask_dir else None

    return json_lines(paths, lambda path, stem: _analyze_one(path, perception, mask(stem), limits), out,
                      lambda stem: [mask(stem)] if mask_dir else [])


def json_lines(paths: Iterable[Path], one: Callable[[Path, str], dict], out: IO[str],
               outputs: Callable[[str], list[Path]] = lambda stem: []) -> int:
    """``one(path, stem)`` of each input as a JSON line on ``out`` (``{"path", "error"}`` for an ApplianceError).

    ``outputs(stem)`` names the files an input given ``stem`` writes; ``stem`` is the input's, or ``stem-2``…
    when those files would be another input's of this run (a/x.jpg and b/x.png; x.jpg and x-screen.jpg) or
    an input itself (``--out-dir`` the inputs' own directory): files written never overwrite an input or
    another input's files.  Returns how many inputs failed."""
    paths = list(paths)
    taken = {path.resolve() for path in paths}
    failures = 0
    for path in paths:
        stem, number = path.stem, 1
        while any(name.resolve() in taken for name in outputs(stem)):
            number += 1
            stem = f"{path.stem}-{number}"
        taken.update(name.resolve() for name in outputs(stem))
        try:
            record = one(path, stem)
        except ApplianceError as exc:
            record = {"path": str(path), "error": str(exc)}
            failures += 1
        out.write(json.dumps(record) + "\n")
        out.flush()
    return failures


def _analyze_one(path: Path, perception: StillPerception, mask_path: Path | None, limits: MediaLimits) -> dict:
    image = read_image(path, limits=limits)
    height, width = image.shape[:2]
    result = perception.perceive(image)
    person: dict = {"coverage": round(float((result.mask >= 128).mean()), 4)}
    if mask_path:
        if not cv2.imwrite(str(mask_path), result.mask):
            raise ApplianceError(f"cannot write mask {mask_path} (disk full or no permission?)")
        person["mask"] = str(mask_path)
    poses = [pose_record(pose) for pose in result.poses]
    return {"path": str(path), "size": [width, height], "person": person,
            "hands": [hand_record(hand) for hand in result.hands],
            "pose": poses[0] if poses else None, "poses": poses,
            "faces": [face_record(face) for face in result.faces]}
