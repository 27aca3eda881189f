"""The NPU models judged at their task: the appliance's own pre- and post-processing around any Runner.

The float models (LiteRT, the appliance's CPU backend) go over each frame the
way the appliance does and fix what every model is asked there (``Scene``):
the segmentation masks; the palm detector's windows (the hand search plan,
person box from the live segmentation mask); the landmark model's regions (from
the float palms, the close-range probe on the whole frame, and each float
hand's next-frame tracking region).  A converted model is then run by the same
appliance classes on exactly those inputs, so only the model differs, never
the input it got:

- segmentation: mask IoU against the float mask at the frame's size, threshold 0.5;
- palm detection: recall of the float detections (IoU >= 0.5 in the same window),
  detections the float model does not make (extra), and the matched boxes'
  corner error in box sizes;
- hand landmarks: mean landmark distance in hand sizes (the float hand's longer
  box side) where the float model sees a hand, and agreement on hand presence;
- pose detection: as palm detection, on the pose search's windows (the whole
  frame, the live mask's person regions' close-ups, the frame's squares);
- pose landmarks: mean distance of the 33 body landmarks in torso lengths (mid-shoulder
  to mid-hip of the float pose) on the regions from the float detections and the
  float poses' next-frame regions, and agreement on presence;
- the lite hand models: as their full siblings, on the same windows and regions
  (the full pipeline's), against the float lite model's answers there;
- face detection (short range, full range): as palm detection, on the still face
  search's windows (face_tracker.faces_in_still: the whole frame and the heads of
  the live mask's person regions, face_search.search_windows);
- face mesh: mean distance of the 468 landmarks in inter-ocular distances of the
  float mesh (``Face.interocular``, the appliance's mesh parity unit) on the regions
  from every float detection of both detectors in every window (a superset of the
  ones faces_in_still meshes: it skips a detection another already explains) and
  the float meshes' next-frame regions, and agreement on presence;
- age and gender: the appliance's estimator (age.AgeGenderEstimator) on the chips
  cut from every float mesh that sees a face: mean age error in years against the
  float age model, gender agreement with the float gender model (the sibling
  network runs float).

Targets (issue 15): within 1 % of the float model (IoU, recall, presence, gender;
extra detections at most 1 % of the float ones), errors at most 2 % of the
object's size (box, hand, torso, inter-ocular distance), age within 1 year.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from appliance.inference.backend import Runner
from appliance.inference.manifest import Manifest, ModelSpec
from appliance.inference.plugins.litert import LiteRTRunner
from appliance.inference.plugins.onnx import OnnxRunner
from appliance.perception.age import AGE_MODEL, GENDER_MODEL, AgeGenderEstimator, AgeGuess
from appliance.perception.face_detection import FULL_RANGE, SHORT_RANGE, FaceDetector, FaceModel
from appliance.perception.face_landmarks import MIN_PRESENCE as FACE_MIN_PRESENCE
from appliance.perception.face_landmarks import MODEL as FACE_MODEL
from appliance.perception.face_landmarks import FaceLandmarker, MeshEstimate
from appliance.perception.face_landmarks import region_from_detection as face_region
from appliance.perception.face_search import search_windows as face_windows
from appliance.perception.hand import Hand
from appliance.perception.hand_search import person_box, search_plan
from appliance.perception.hands import LITE_LANDMARK_MODEL
from appliance.perception.landmarks import MIN_PRESENCE, HandLandmarker, region_from_landmarks, region_from_palm
from appliance.perception.palm import PalmDetector
from appliance.perception.pose_detection import PoseDetector
from appliance.perception.pose_landmarks import MIN_PRESENCE as POSE_MIN_PRESENCE
from appliance.perception.pose_landmarks import BodyEstimate, PoseLandmarker, region_from_detection
from appliance.perception.pose_search import frame_squares, person_regions, search_windows
from appliance.perception.pose_tracker import torso_length
from appliance.perception.segmentation import LIVE_MODEL, PersonSegmenter, mask_at
from appliance.perception.ssd import Detection, SsdDetector, box_iou
from appliance.perception.tensor import Region

SEGMENTERS = ("selfie_landscape", "selfie_general")
PALM_MODEL = "palm_detection_full"
HAND_MODEL = "hand_landmark_full"
PALM_LITE = "palm_detection_lite"
HAND_LITE = LITE_LANDMARK_MODEL
FACE_DETECTORS = {model.name: model for model in (SHORT_RANGE, FULL_RANGE)}
POSE_DETECTOR = "pose_detection"
POSE_MODEL = "pose_landmark_full"
#: Within target: IoU and recall at most 1 % below the float model, errors at most 2 % of the object's size.
MAX_IOU_LOSS = 0.01
MAX_RECALL_LOSS = 0.01
MAX_SIZE_ERROR = 0.02
MAX_AGE_ERROR = 1.0     # years, mean
MATCH_IOU = 0.5


@dataclass
class Scene:
    """One frame and what the float models found in it (the reference every precision is judged against)."""

    label: str
    image: np.ndarray
    masks: dict[str, np.ndarray] = field(default_factory=dict)   # model -> bool mask at the frame's size
    windows: list[Region] = field(default_factory=list)           # palm detector windows
    palms: list[list[Detection]] = field(default_factory=list)    # float palms, per window
    hand_regions: list[Region] = field(default_factory=list)      # landmark model regions
    hands: list[Hand] = field(default_factory=list)               # float hand, per region
    pose_windows: list[Region] = field(default_factory=list)      # pose detector windows
    poses: list[list[Detection]] = field(default_factory=list)    # float pose detections, per window
    body_regions: list[Region] = field(default_factory=list)      # pose landmark model regions
    bodies: list[BodyEstimate] = field(default_factory=list)      # float estimate, per region
    lite_palms: list[list[Detection]] = field(default_factory=list)   # float lite palms, per window
    lite_hands: list[Hand] = field(default_factory=list)          # float lite hand, per hand region
    face_windows: list[Region] = field(default_factory=list)      # face detector windows
    faces: dict[str, list[list[Detection]]] = field(default_factory=dict)  # detector -> float faces, per window
    face_regions: list[Region] = field(default_factory=list)      # face mesh model regions
    meshes: list[MeshEstimate] = field(default_factory=list)      # float mesh, per region
    age_meshes: list[np.ndarray] = field(default_factory=list)    # float meshes with a face: age/gender chips
    ages: list[AgeGuess] = field(default_factory=list)            # float age and gender, per chip mesh


def person_mask(probabilities: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Person pixels at the image's size: the appliance's mask (``mask_at``) above one half."""
    return mask_at(probabilities, (image.shape[1], image.shape[0])) >= 128


def float_runner(spec: ModelSpec, manifest: Manifest, threads: int = 2) -> Runner:
    """The appliance's CPU runner for a model: ONNX Runtime for .onnx files (age, gender), LiteRT otherwise."""
    runner = OnnxRunner if spec.filename.endswith(".onnx") else LiteRTRunner
    return runner(spec, manifest, threads)


class Models:
    """The ``Inference.load`` the age estimator asks its networks of, answered from given runners."""

    def __init__(self, runners: dict[str, Runner]) -> None:
        self._runners = runners

    def load(self, model: str) -> Runner:
        return self._runners[model]


class FloatPipeline:
    """The appliance's float models (LiteRT, ONNX Runtime); ``wrap`` may wrap each runner (e.g. to record its
    inputs)."""

    def __init__(self, manifest: Manifest, wrap: Callable[[str, Runner], Runner] = lambda model, runner: runner,
                 threads: int = 2) -> None:
        self.manifest = manifest
        models = (*SEGMENTERS, PALM_MODEL, HAND_MODEL, PALM_LITE, HAND_LITE, POSE_DETECTOR, POSE_MODEL,
                  *FACE_DETECTORS, FACE_MODEL, AGE_MODEL, GENDER_MODEL)
        self.runners = {m: wrap(m, float_runner(manifest.spec(m), manifest, threads)) for m in models}
        self.segmenters = {m: PersonSegmenter(self.runners[m], manifest.spec(m)) for m in SEGMENTERS}
        self.detector = PalmDetector(self.runners[PALM_MODEL])
        self.landmarker = HandLandmarker(self.runners[HAND_MODEL])
        self.lite_detector = PalmDetector(self.runners[PALM_LITE])
        self.lite_landmarker = HandLandmarker(self.runners[HAND_LITE])
        self.pose_detector = PoseDetector(self.runners[POSE_DETECTOR])
        self.pose_landmarker = PoseLandmarker(self.runners[POSE_MODEL])
        self.face_detectors = {m: FaceDetector(self.runners[m], model) for m, model in FACE_DETECTORS.items()}
        self.face_landmarker = FaceLandmarker(self.runners[FACE_MODEL])
        self.estimator = AgeGenderEstimator(Models(self.runners), gender=True)

    def scene(self, label: str, image: np.ndarray) -> Scene:
        scene = Scene(label, image)
        height, width = image.shape[:2]
        probabilities = {model: segmenter.probabilities(image) for model, segmenter in self.segmenters.items()}
        scene.masks = {model: person_mask(p, image) for model, p in probabilities.items()}
        person = person_box(probabilities[LIVE_MODEL], (width, height))
        plan = search_plan((width, height), person)
        scene.windows = [step.region for step in plan if not step.probe]
        scene.palms = [self.detector.detect(image, window) for window in scene.windows]
        regions = [region_from_palm(palm) for palms in scene.palms for palm in palms]
        regions += [step.region for step in plan if step.probe]
        hands = [self.landmarker.landmarks(image, region) for region in regions]
        tracked = [region_from_landmarks(hand.landmarks) for hand in hands if hand.presence >= MIN_PRESENCE]
        scene.hand_regions = regions + tracked
        scene.hands = hands + [self.landmarker.landmarks(image, region) for region in tracked]
        scene.lite_palms = [self.lite_detector.detect(image, window) for window in scene.windows]
        scene.lite_hands = [self.lite_landmarker.landmarks(image, region) for region in scene.hand_regions]
        self._poses(scene, probabilities[LIVE_MODEL])
        self._faces(scene, probabilities[LIVE_MODEL])
        return scene

    def _faces(self, scene: Scene, probabilities: np.ndarray) -> None:
        """The still face search's windows (face_tracker.faces_in_still), both detectors' faces in each, the mesh
        model's regions and the chips the age and gender networks are given."""
        size = (scene.image.shape[1], scene.image.shape[0])
        scene.face_windows = face_windows(size, person_regions(probabilities, size))
        scene.faces = {m: [detector.detect(scene.image, window) for window in scene.face_windows]
                       for m, detector in self.face_detectors.items()}
        regions = [face_region(found) for per_window in scene.faces.values() for faces in per_window
                   for found in faces]
        meshes = [self.face_landmarker.landmarks(scene.image, region) for region in regions]
        tracked = [mesh.next_region for mesh in meshes if mesh.presence >= FACE_MIN_PRESENCE]
        scene.face_regions = regions + tracked
        scene.meshes = meshes + [self.face_landmarker.landmarks(scene.image, region) for region in tracked]
        scene.age_meshes = [mesh.face.landmarks for mesh in scene.meshes if mesh.presence >= FACE_MIN_PRESENCE]
        scene.ages = [self.estimator.estimate(scene.image, landmarks) for landmarks in scene.age_meshes]

    def _poses(self, scene: Scene, probabilities: np.ndarray) -> None:
        """The still pose search's windows (pose_tracker.poses_in_still) and the landmark model's regions."""
        size = (scene.image.shape[1], scene.image.shape[0])
        scene.pose_windows = search_windows(size, person_regions(probabilities, size)) + frame_squares(size)
        scene.poses = [self.pose_detector.detect(scene.image, window) for window in scene.pose_windows]
        regions = [region_from_detection(found) for poses in scene.poses for found in poses]
        bodies = [self.pose_landmarker.landmarks(scene.image, region) for region in regions]
        tracked = [body.next_region for body in bodies if body.presence >= POSE_MIN_PRESENCE]
        scene.body_regions = regions + tracked
        scene.bodies = bodies + [self.pose_landmarker.landmarks(scene.image, region) for region in tracked]


@dataclass(frozen=True)
class Score:
    """One model at one precision on the evaluation scenes."""

    value: float        # the headline metric (see Task.metric)
    detail: str         # the supporting figures
    within: bool        # within the target


class Task(Protocol):
    model: str
    metric: str         # what ``Score.value`` is, for the table's header
    target: str         # the target in words

    def score(self, scenes: Sequence[Scene], runner: Runner) -> Score: ...


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b)) / union if union else 1.0


@dataclass(frozen=True)
class MaskTask:
    model: str
    manifest: Manifest
    metric: str = "mask IoU (mean)"
    target: str = f"IoU >= {1 - MAX_IOU_LOSS:.2f}"

    def score(self, scenes: Sequence[Scene], runner: Runner) -> Score:
        segmenter = PersonSegmenter(runner, self.manifest.spec(self.model))
        ious = [mask_iou(person_mask(segmenter.probabilities(scene.image), scene.image), scene.masks[self.model])
                for scene in scenes]
        mean = float(np.mean(ious))
        worst = int(np.argmin(ious))
        return Score(mean, f"min {ious[worst]:.4f} ({scenes[worst].label}), {len(ious)} frames",
                     mean >= 1 - MAX_IOU_LOSS)


@dataclass(frozen=True)
class DetectorTask:
    """An SSD detector on the float pipeline's windows; ``windows``/``found`` pick them from a Scene."""

    model: str
    detector: Callable[[Runner], SsdDetector]
    windows: Callable[[Scene], list[Region]]
    found: Callable[[Scene], list[list[Detection]]]
    metric: str = "recall"
    target: str = (f"recall >= {1 - MAX_RECALL_LOSS:.2f}, extra <= {MAX_RECALL_LOSS:.0%} of found, "
                   f"box error <= {MAX_SIZE_ERROR:.0%} of box")

    def score(self, scenes: Sequence[Scene], runner: Runner) -> Score:
        detector = self.detector(runner)
        expected = matched = extra = 0
        errors = []
        for scene in scenes:
            for window, float_found in zip(self.windows(scene), self.found(scene), strict=True):
                ours = detector.detect(scene.image, window)
                boxes = np.array([d.box for d in ours]).reshape(-1, 4)
                used: set[int] = set()
                for reference in float_found:
                    expected += 1
                    overlaps = box_iou(reference.box, boxes) if len(boxes) else np.zeros(0)
                    best = int(np.argmax(overlaps)) if len(overlaps) else -1
                    if best < 0 or overlaps[best] < MATCH_IOU or best in used:
                        continue
                    used.add(best)
                    matched += 1
                    side = max(reference.box[2] - reference.box[0], reference.box[3] - reference.box[1])
                    errors.append(float(np.abs(boxes[best] - reference.box).max()) / side)
                extra += len(ours) - len(used)
        recall = matched / expected if expected else 1.0
        error = float(np.mean(errors)) if errors else 0.0
        return Score(recall, f"{matched}/{expected} found, {extra} extra, box error {error:.2%} of box",
                     recall >= 1 - MAX_RECALL_LOSS and extra <= MAX_RECALL_LOSS * expected and error <= MAX_SIZE_ERROR)


@dataclass(frozen=True)
class HandLandmarkTask:
    """A hand landmark model on the float pipeline's hand regions; ``hands`` picks the float answers."""

    model: str = HAND_MODEL
    hands: Callable[[Scene], list[Hand]] = lambda scene: scene.hands
    metric: str = "error (hand sizes)"
    target: str = f"error <= {MAX_SIZE_ERROR:.0%} of hand, presence agrees >= {1 - MAX_RECALL_LOSS:.0%}"

    def score(self, scenes: Sequence[Scene], runner: Runner) -> Score:
        landmarker = HandLandmarker(runner)
        pairs = ((landmarker.landmarks(scene.image, region), reference) for scene in scenes
                 for region, reference in zip(scene.hand_regions, self.hands(scene), strict=True))
        return _landmark_score(pairs, MIN_PRESENCE, lambda hand: hand.landmarks,
                               lambda hand: max(hand.box[2], hand.box[3]), "hands")


def _landmark_score(pairs: Iterable[tuple[Any, Any]], bar: float, points: Callable[[Any], np.ndarray],
                    unit: Callable[[Any], float], what: str) -> Score:
    """A landmark model's score over (its estimate, the float one) ``pairs``: presence (above ``bar``) agreeing
    on all but MAX_RECALL_LOSS of them, and where the float model sees one, the mean distance of the ``points``
    (x, y) in ``unit``s of the float answer's size, within MAX_SIZE_ERROR on average."""
    errors, agree, total = [], 0, 0
    for ours, theirs in pairs:
        total += 1
        agree += (ours.presence >= bar) == (theirs.presence >= bar)
        if theirs.presence >= bar:
            distance = np.linalg.norm(points(ours)[:, :2] - points(theirs)[:, :2], axis=1)
            errors.append(float(distance.mean()) / unit(theirs))
    error = float(np.mean(errors)) if errors else 0.0
    agreement = agree / total if total else 1.0
    return Score(error, f"{len(errors)} {what}, worst {max(errors, default=0.0):.2%}, presence agrees {agree}/{total}",
                 error <= MAX_SIZE_ERROR and agreement >= 1 - MAX_RECALL_LOSS)


@dataclass(frozen=True)
class PoseLandmarkTask:
    model: str = POSE_MODEL
    metric: str = "error (torso lengths)"
    target: str = f"error <= {MAX_SIZE_ERROR:.0%} of torso, presence agrees >= {1 - MAX_RECALL_LOSS:.0%}"

    def score(self, scenes: Sequence[Scene], runner: Runner) -> Score:
        landmarker = PoseLandmarker(runner)
        pairs = ((landmarker.landmarks(scene.image, region), reference) for scene in scenes
                 for region, reference in zip(scene.body_regions, scene.bodies, strict=True))
        return _landmark_score(pairs, POSE_MIN_PRESENCE, lambda body: body.pose.landmarks,
                               lambda body: max(torso_length(body.pose), 1.0), "bodies")


@dataclass(frozen=True)
class FaceMeshTask:
    model: str = FACE_MODEL
    metric: str = "error (inter-ocular)"
    target: str = (f"error <= {MAX_SIZE_ERROR:.0%} of the inter-ocular distance, "
                   f"presence agrees >= {1 - MAX_RECALL_LOSS:.0%}")

    def score(self, scenes: Sequence[Scene], runner: Runner) -> Score:
        landmarker = FaceLandmarker(runner)
        pairs = ((landmarker.landmarks(scene.image, region), reference) for scene in scenes
                 for region, reference in zip(scene.face_regions, scene.meshes, strict=True))
        return _landmark_score(pairs, FACE_MIN_PRESENCE, lambda mesh: mesh.face.landmarks,
                               lambda mesh: max(mesh.face.interocular(), 1.0), "faces")


@dataclass(frozen=True)
class AgeGenderTask:
    """The age or the gender network (``model``) in the appliance's estimator, the other one float, on the chips
    of the float meshes."""

    model: str
    manifest: Manifest

    @property
    def metric(self) -> str:
        return "age error (years)" if self.model == AGE_MODEL else "gender agreement"

    @property
    def target(self) -> str:
        if self.model == AGE_MODEL:
            return f"mean age error <= {MAX_AGE_ERROR:g} year"
        return f"gender agrees >= {1 - MAX_RECALL_LOSS:.0%}"

    def score(self, scenes: Sequence[Scene], runner: Runner) -> Score:
        other = GENDER_MODEL if self.model == AGE_MODEL else AGE_MODEL
        runners = {self.model: runner, other: float_runner(self.manifest.spec(other), self.manifest)}
        estimator = AgeGenderEstimator(Models(runners), gender=True)
        gender = self.model == GENDER_MODEL
        errors, agree = [], 0
        for scene in scenes:
            for landmarks, reference in zip(scene.age_meshes, scene.ages, strict=True):
                guess = estimator.estimate(scene.image, landmarks, gender=gender)
                errors.append(abs(guess.age - reference.age))
                agree += gender and guess.gender == reference.gender
        count = len(errors)
        if not gender:
            error = float(np.mean(errors)) if errors else 0.0
            return Score(error, f"{count} faces, worst {max(errors, default=0.0):.2f} years", error <= MAX_AGE_ERROR)
        agreement = agree / count if count else 1.0
        return Score(agreement, f"{agree}/{count} faces agree", agreement >= 1 - MAX_RECALL_LOSS)


def face_detector(model: FaceModel) -> Callable[[Runner], SsdDetector]:
    return lambda runner: FaceDetector(runner, model)


def tasks(manifest: Manifest) -> dict[str, Task]:
    """Every model the evaluator can judge, by manifest name."""
    found: dict[str, Task] = {m: MaskTask(m, manifest) for m in SEGMENTERS}
    found[PALM_MODEL] = DetectorTask(PALM_MODEL, PalmDetector, lambda s: s.windows, lambda s: s.palms)
    found[HAND_MODEL] = HandLandmarkTask()
    found[PALM_LITE] = DetectorTask(PALM_LITE, PalmDetector, lambda s: s.windows, lambda s: s.lite_palms)
    found[HAND_LITE] = HandLandmarkTask(HAND_LITE, lambda s: s.lite_hands)
    found[POSE_DETECTOR] = DetectorTask(POSE_DETECTOR, PoseDetector, lambda s: s.pose_windows, lambda s: s.poses)
    found[POSE_MODEL] = PoseLandmarkTask()
    for name, model in FACE_DETECTORS.items():
        found[name] = DetectorTask(name, face_detector(model), lambda s: s.face_windows,
                                   lambda s, name=name: s.faces[name])
    found[FACE_MODEL] = FaceMeshTask()
    found[AGE_MODEL] = AgeGenderTask(AGE_MODEL, manifest)
    found[GENDER_MODEL] = AgeGenderTask(GENDER_MODEL, manifest)
    return found
