"""Several faces in video and in stills: the detector when a face is missing, the mesh tracking every frame.

Video: each tracked face costs one mesh inference per frame, on the region its
last mesh gives (landmarks 33→263 level, the bounds scaled 1.5x); a face whose
flag falls below MIN_PRESENCE is dropped.  The detector (``[face] detector``,
full range by default: see face_detection.py) runs only while fewer than
``max_faces`` are tracked: every frame while none is, and every
``recheck_every`` frames while some are; it looks at the whole frame and at
the heads of the person mask's regions where no tracked face is (at most
LIVE_WINDOWS of them; face_search.py).  So the steady state with every face
tracked is one mesh inference per face per frame and no detector.
Stills: both detectors on the whole image and every person region's head,
every face either finds.

Invariants: a face the whole frame shows is meshed on the whole frame's
detection (the reference's region), the head close-ups only add faces it
misses; one face is reported once (a detection whose centre lies in a known
face's box is that face: no second mesh; two meshes overlapping by SAME_FACE
IoU are one face, the older track kept); a new face gets a new id, except one
found again soon where a track was just lost (a missed frame does
not renumber anyone); reported landmarks are One Euro filtered per track on the
frames' capture times, in face sizes per second, while the next region comes
from the raw mesh (smoothing never makes tracking lag), and ``raw_faces``
gives the last frame's raw meshes (for models that must see this frame's face,
such as age); faces are listed largest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from appliance.boxes import iou
from appliance.perception.face import Face
from appliance.perception.face_detection import DETECTORS, FaceDetection, FaceDetector
from appliance.perception.face_landmarks import MIN_PRESENCE, FaceLandmarker, MeshEstimate, region_from_detection
from appliance.perception.face_search import search_windows
from appliance.perception.oneeuro import OneEuroFilter
from appliance.perception.pose_search import Box, person_regions
from appliance.perception.pose_tracker import Smoothing
from appliance.perception.tensor import Region
from appliance.perception.track_ids import TrackIds, largest_first

#: Two meshes overlapping this much (IoU of their boxes) are one face.
SAME_FACE = 0.5
#: Two detections (from the two detectors of a still) overlapping this much are one face.
SAME_DETECTION = 0.3
#: Head windows the live search spends per detector run at most.
LIVE_WINDOWS = 2


@dataclass(frozen=True)
class FaceSettings:
    """What ``[face]`` configures: how many faces, which detector, how often it looks again, the smoothing
    (the pose tracker's One Euro filter, speed in face sizes per second)."""

    max_faces: int = 4
    detector: str = "full"
    recheck_every: int = 15     # frames between detector runs while some but fewer than max_faces are tracked
    smoothing: Smoothing = Smoothing()

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"face detector {self.detector!r}: one of {', '.join(DETECTORS)}")


@dataclass
class Track:
    face: Face                  # smoothed, what is reported
    region: Region              # where to look next frame
    raw: Face                   # this frame's mesh as the model gave it
    smoother: OneEuroFilter = field(repr=False)


def _detection_box(detection: FaceDetection) -> Box:
    x_min, y_min, x_max, y_max = (float(value) for value in detection.box)
    return x_min, y_min, x_max - x_min, y_max - y_min


def _explained(detection: FaceDetection, face: Face) -> bool:
    """Whether ``detection`` is ``face`` seen again: its centre lies within the face's mesh box."""
    cx, cy = (detection.box[:2] + detection.box[2:]) / 2
    x, y, w, h = face.box
    return bool(x <= cx <= x + w and y <= cy <= y + h)


def candidates(detections: list[FaceDetection], landmarker: FaceLandmarker, image: np.ndarray,
               known: list[Face]) -> list[MeshEstimate]:
    """The faces among ``detections`` (in their order of preference) that are not ``known``: one mesh each (none
    for a detection of a known face), scored by their detection."""
    found: list[MeshEstimate] = []
    for detection in detections:
        if any(_explained(detection, face) for face in known + [e.face for e in found]):
            continue
        estimate = landmarker.landmarks(image, region_from_detection(detection))
        if estimate.presence < MIN_PRESENCE:
            continue
        if any(iou(estimate.face.box, other.box) >= SAME_FACE for other in known + [e.face for e in found]):
            continue
        found.append(MeshEstimate(replace(estimate.face, score=detection.score), estimate.presence,
                                  estimate.next_region))
    return found


def _preferred(per_window: list[list[FaceDetection]]) -> list[FaceDetection]:
    """The whole frame's detections (the first window's) before the close-ups', each most confident first: a face
    the whole frame finds gets the reference's region, a close-up adds the faces too small for it."""
    return [detection for found in per_window for detection in sorted(found, key=lambda d: -d.score)]


def _regions(image: np.ndarray, probabilities: np.ndarray | None) -> list[Box]:
    return person_regions(probabilities, (image.shape[1], image.shape[0])) if probabilities is not None else []


def faces_in_still(detectors: list[FaceDetector], landmarker: FaceLandmarker, image: np.ndarray,
                   probabilities: np.ndarray | None = None, max_faces: int = 4) -> list[Face]:
    """Every face in a still: each detector on the whole image and on the heads of the person mask's regions
    (``probabilities``; None: the whole image only), one mesh per face, largest first, numbered 1…"""
    windows = search_windows((image.shape[1], image.shape[0]), _regions(image, probabilities))
    detections: list[FaceDetection] = []
    for detection in _preferred([[d for detector in detectors for d in detector.detect(image, window)]
                                 for window in windows]):
        if all(iou(_detection_box(detection), _detection_box(kept)) < SAME_DETECTION for kept in detections):
            detections.append(detection)
    faces = largest_first([estimate.face for estimate in candidates(detections, landmarker, image, [])])
    return [replace(face, track_id=number) for number, face in enumerate(faces[:max_faces], start=1)]


class FaceTracker:
    """Tracks up to ``max_faces`` faces from frame to frame; call ``update`` once per frame, in order."""

    def __init__(self, detector: FaceDetector, landmarker: FaceLandmarker, settings: FaceSettings = FaceSettings()
                 ) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self.settings = settings
        self._tracks: list[Track] = []
        self._ids = TrackIds()
        self._since_detection = settings.recheck_every

    def reset(self) -> None:
        self._tracks = []
        self._ids.reset()
        self._since_detection = self.settings.recheck_every

    @property
    def raw_faces(self) -> tuple[Face, ...]:
        """The last update's faces as the mesh model gave them (not smoothed), largest first, with their ids."""
        return tuple(largest_first([track.raw for track in self._tracks]))

    def update(self, image: np.ndarray, probabilities: np.ndarray | None, captured_at: float) -> list[Face]:
        """The faces in this frame, largest first; ``probabilities`` is the person mask (None: unknown)."""
        tracks: list[Track] = []
        for track in self._tracks:
            estimate = self.landmarker.landmarks(image, track.region)
            if estimate.presence < MIN_PRESENCE:
                self._ids.lost(track.face.track_id, track.raw.box, captured_at)
            elif not any(iou(estimate.face.box, other.raw.box) >= SAME_FACE for other in tracks):
                tracks.append(self._follow(track, estimate, captured_at))
        self._ids.forget(captured_at)
        self._since_detection += 1
        if len(tracks) < self.settings.max_faces and (not tracks or
                                                      self._since_detection >= self.settings.recheck_every):
            self._since_detection = 0
            windows = search_windows((image.shape[1], image.shape[0]), _regions(image, probabilities),
                                     [t.raw.box for t in tracks], LIVE_WINDOWS)
            detections = _preferred([self.detector.detect(image, window) for window in windows])
            for estimate in candidates(detections, self.landmarker, image, [t.raw for t in tracks]):
                if len(tracks) >= self.settings.max_faces:
                    break
                tracks.append(self._start(estimate, captured_at))
        self._tracks = tracks
        return largest_first([track.face for track in tracks])

    def _follow(self, track: Track, estimate: MeshEstimate, at: float) -> Track:
        face = replace(estimate.face, track_id=track.face.track_id)
        return Track(self._smoothed(face, track.smoother, at), estimate.next_region, face, track.smoother)

    def _start(self, estimate: MeshEstimate, at: float) -> Track:
        face = replace(estimate.face, track_id=self._ids.assign(estimate.face.box))
        smoother = self.settings.smoothing.filter()
        return Track(self._smoothed(face, smoother, at), estimate.next_region, face, smoother)

    @staticmethod
    def _smoothed(face: Face, smoother: OneEuroFilter, at: float) -> Face:
        _, _, w, h = face.box
        positions = smoother(face.landmarks, at, 1.0 / max((w + h) / 2, 1.0))
        return replace(face, landmarks=positions.astype(np.float32))

