"""Several people's poses in video and in stills: detection when someone is missing, landmark tracking every frame.

Video: each tracked person costs one landmark inference per frame, on the
region their last landmarks' auxiliary points give; a person whose pose flag
falls below MIN_PRESENCE is dropped.  The detector runs only while fewer than
``max_people`` are tracked, and then only when it may find someone: every frame
while nobody is tracked and the mask shows a person, on the mask's regions that
no tracked person covers (at most every ``uncovered_every`` frames), and on the
whole frame every ``recheck_every`` frames (people the mask misses).  So the
steady state with everyone tracked is one landmark inference per person.
Stills: the whole frame, every close-up of the mask's regions and, for a
frame much wider than tall, its squares, all at once.

Invariants: one person is reported once (duplicates from overlapping windows
or two tracks converging on one body are merged, the older track kept; a new
person is tracked only upright; two poses with nearly the same box are one; a pose
that is a part of another's body — a much smaller box within its outline — is no
person and is dropped, whichever is older); a new
person gets a new id, except one found again soon where a track
was just lost (``track_ids``); the reported landmarks
are One Euro filtered per track on the frames' capture times, while the next
region comes from the raw landmarks (smoothing never makes tracking lag);
poses are listed largest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from appliance.boxes import iou
from appliance.perception.body import LEFT_HIP, LEFT_SHOULDER, RIGHT_HIP, RIGHT_SHOULDER, Pose
from appliance.perception.oneeuro import OneEuroFilter
from appliance.perception.pose_detection import HIP_KEYPOINT, SCALE_KEYPOINT, PoseDetection, PoseDetector
from appliance.perception.pose_landmarks import MIN_PRESENCE, BodyEstimate, PoseLandmarker, region_from_detection
from appliance.perception.pose_search import Box, frame_squares, person_regions, search_windows
from appliance.perception.tensor import Region
from appliance.perception.track_ids import TrackIds, largest_first

#: The models, as named in models/manifest.toml.
DETECTOR_MODEL = "pose_detection"
LANDMARK_MODEL = "pose_landmark_full"
TORSO = [LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP]
#: Two poses whose torso points are this close (mean, in torso lengths of the larger) are one person.
SAME_PERSON = 0.35
#: Two detections whose mid-hips are this close (in body sizes of the larger) are one person.
SAME_DETECTION = 0.1
#: A detection whose mid-hip is this close to a known pose's (in its torso lengths) is that person: no landmarks.
KNOWN_HIP = 0.4
#: A tracked person's landmark box grows by this share before it hides the mask under it from the search.
COVER_MARGIN = 0.15
#: A pose whose box is this much smaller than another's and lies (NESTED_INSIDE of it) within that one's
#: outline is a part of it (a face and neck, or an arm and the chest, taken for a whole body): no second person.
NESTED = 0.5
NESTED_INSIDE = 0.9
#: Two poses whose boxes overlap this much (IoU) are one person estimated twice (torsos of different
#: lengths from two windows), however their torsos differ.
SAME_BOX = 0.6
#: A new person is tracked only when their torso leans less than this (degrees) from upright: shoppers
#: stand or sit; a body found lying across another is that one's arm and chest (a tracked person may bend).
UPRIGHT_DEG = 60.0
#: Close-up windows the live search spends per frame at most.
LIVE_WINDOWS = 3


@dataclass(frozen=True)
class Smoothing:
    """The One Euro filter on landmark positions; speed in body sizes per second.

    MediaPipe smooths pose with min_cutoff 0.05 and beta 80; beta 20 keeps a quarter of
    the jitter that leaves (2 px on a 400 px body at rest: 0.11 against 0.25 of the raw
    frame-to-frame movement) and still follows a quarter-body step within two frames.
    """

    min_cutoff: float = 0.05
    beta: float = 20.0
    derivative_cutoff: float = 1.0

    def filter(self) -> OneEuroFilter:
        return OneEuroFilter(self.min_cutoff, self.beta, self.derivative_cutoff)


@dataclass(frozen=True)
class PoseSettings:
    """What ``[pose]`` configures: how many people, how often the detector looks again, the smoothing."""

    max_people: int = 4
    recheck_every: int = 15       # frames between whole-frame searches while fewer than max_people are tracked
    uncovered_every: int = 3      # frames between searches of mask regions nobody tracked covers
    smoothing: Smoothing = Smoothing()


@dataclass
class Track:
    pose: Pose                 # smoothed, what is reported
    region: Region             # where to look next frame
    raw: Pose                  # this frame's landmarks as the model gave them
    smoother: OneEuroFilter = field(repr=False)


def torso_length(pose: Pose) -> float:
    points = pose.landmarks[TORSO, :2]
    return float(np.linalg.norm((points[0] + points[1]) / 2 - (points[2] + points[3]) / 2))


def same_person(a: Pose, b: Pose) -> bool:
    """Whether two poses are one body: their shoulders and hips nearly coincide."""
    distance = np.linalg.norm(a.landmarks[TORSO, :2] - b.landmarks[TORSO, :2], axis=1).mean()
    return bool(distance < SAME_PERSON * max(torso_length(a), torso_length(b), 1.0))


def nested(part: Pose, body: Pose) -> bool:
    """Whether ``part`` is a piece of ``body`` taken for a person: a much smaller box, nearly all inside
    ``body``'s outline."""
    if part.area >= NESTED * body.area or part.area <= 0:
        return False
    px, py, pw, ph = part.box
    x, y, w, h = _cover(body)
    inside = max(0.0, min(px + pw, x + w) - max(px, x)) * max(0.0, min(py + ph, y + h) - max(py, y))
    return inside >= NESTED_INSIDE * part.area


def upright(pose: Pose) -> bool:
    """Whether the torso (mid-hip to mid-shoulder) leans less than UPRIGHT_DEG from straight up."""
    points = pose.landmarks[TORSO, :2]
    dx, dy = (points[0] + points[1]) / 2 - (points[2] + points[3]) / 2
    return bool(-dy > 0 and np.degrees(np.arctan2(abs(dx), -dy)) < UPRIGHT_DEG)


def one_body(a: Pose, b: Pose) -> bool:
    """Whether two poses are one person: the same torso, nearly the same box, or one a part of the other."""
    return same_person(a, b) or iou(a.box, b.box) >= SAME_BOX or nested(a, b) or nested(b, a)


def _same_detection(a: PoseDetection, b: PoseDetection) -> bool:
    size = max(np.linalg.norm(d.keypoints[SCALE_KEYPOINT] - d.keypoints[HIP_KEYPOINT]) for d in (a, b))
    return bool(np.linalg.norm(a.keypoints[HIP_KEYPOINT] - b.keypoints[HIP_KEYPOINT]) < SAME_DETECTION * 2 * size)


def _explained(detection: PoseDetection, pose: Pose) -> bool:
    """Whether ``detection`` is ``pose``'s person seen again (their mid-hips coincide)."""
    hip = pose.landmarks[[LEFT_HIP, RIGHT_HIP], :2].mean(axis=0)
    return bool(np.linalg.norm(detection.keypoints[HIP_KEYPOINT] - hip) < KNOWN_HIP * max(torso_length(pose), 1.0))


def _cover(pose: Pose) -> Box:
    """All the landmarks' box, widened: the mask under it is this person's."""
    low, high = pose.landmarks[:, :2].min(axis=0), pose.landmarks[:, :2].max(axis=0)
    margin = (high - low) * COVER_MARGIN
    return (float(low[0] - margin[0]), float(low[1] - margin[1]), float(high[0] - low[0] + 2 * margin[0]),
            float(high[1] - low[1] + 2 * margin[1]))


def candidates(detector: PoseDetector, landmarker: PoseLandmarker, image: np.ndarray,
               windows: list[Region], known: list[Pose]) -> list[BodyEstimate]:
    """The people the detector finds in ``windows`` that are not ``known``: one landmark inference each
    (none for a detection of someone known)."""
    detections: list[PoseDetection] = []
    for window in windows:
        for detection in detector.detect(image, window):
            if not any(_same_detection(detection, other) for other in detections) and \
                    not any(_explained(detection, pose) for pose in known):
                detections.append(detection)
    found: list[BodyEstimate] = []
    for detection in sorted(detections, key=lambda d: -d.score):
        estimate = landmarker.landmarks(image, region_from_detection(detection))
        if estimate.presence < MIN_PRESENCE:
            continue
        if any(one_body(estimate.pose, other) for other in known + [e.pose for e in found]):
            continue
        found.append(BodyEstimate(replace(estimate.pose, score=detection.score), estimate.presence,
                                  estimate.next_region))
    return found


def poses_in_still(detector: PoseDetector, landmarker: PoseLandmarker, image: np.ndarray,
                   probabilities: np.ndarray | None, max_people: int = 4) -> list[Pose]:
    """Every person in a still: the whole frame and each mask region's close-ups, largest first, numbered 1…"""
    size = (image.shape[1], image.shape[0])
    regions = person_regions(probabilities, size) if probabilities is not None else []
    found = candidates(detector, landmarker, image, search_windows(size, regions) + frame_squares(size), [])
    poses = largest_first([estimate.pose for estimate in found])[:max_people]
    return [replace(pose, track_id=number) for number, pose in enumerate(poses, start=1)]


class PoseTracker:
    """Tracks up to ``max_people`` people from frame to frame; call ``update`` once per frame, in order."""

    def __init__(self, detector: PoseDetector, landmarker: PoseLandmarker, settings: PoseSettings = PoseSettings()
                 ) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self.max_people = settings.max_people
        self.recheck_every = settings.recheck_every
        self.uncovered_every = settings.uncovered_every
        self.smoothing = settings.smoothing
        self._tracks: list[Track] = []
        self._ids = TrackIds()
        self._since_whole = self._since_uncovered = self.recheck_every

    def reset(self) -> None:
        self._tracks = []
        self._ids.reset()
        self._since_whole = self._since_uncovered = self.recheck_every

    def update(self, image: np.ndarray, probabilities: np.ndarray | None, captured_at: float) -> list[Pose]:
        """The people in this frame, largest first; ``probabilities`` is the person mask (None: unknown)."""
        followed: list[Track] = []
        for track in self._tracks:
            estimate = self.landmarker.landmarks(image, track.region)
            if estimate.presence < MIN_PRESENCE:
                self._ids.lost(track.pose.track_id, _cover(track.raw), captured_at)
            elif not any(same_person(estimate.pose, t.raw) for t in followed):   # else merged: no one was lost
                followed.append(self._follow(track, estimate, captured_at))
        # a track that shrank onto a part of another person's body is dropped, whichever is older
        tracks = [track for track in followed if not any(nested(track.raw, other.raw) for other in followed
                                                         if other is not track)]
        self._ids.forget(captured_at)
        self._since_whole += 1
        self._since_uncovered += 1
        windows, whole = self._windows(image, probabilities, tracks)
        if windows:
            self._since_uncovered = 0
            if whole:
                self._since_whole = 0
            for estimate in candidates(self.detector, self.landmarker, image, windows, [t.raw for t in tracks]):
                if len(tracks) >= self.max_people:
                    break
                if upright(estimate.pose):
                    tracks.append(self._start(estimate, captured_at))
        self._tracks = tracks
        return largest_first([track.pose for track in tracks])

    def _windows(self, image: np.ndarray, probabilities: np.ndarray | None,
                 tracks: list[Track]) -> tuple[list[Region], bool]:
        """Where to run the detector this frame (none when everyone is tracked or nothing new can be there), and
        whether the whole frame is among them.  The whole-frame recheck and the close-ups of uncovered regions
        keep their own counts, so close-ups every few frames never hold the recheck back."""
        if len(tracks) >= self.max_people:
            return [], False
        size = (image.shape[1], image.shape[0])
        periodic = self._since_whole >= self.recheck_every
        if probabilities is None:
            return (search_windows(size, []), True) if periodic or not tracks else ([], False)
        regions = person_regions(probabilities, size, [_cover(t.raw) for t in tracks])
        if periodic or (regions and (not tracks or self._since_uncovered >= self.uncovered_every)):
            whole = periodic or not tracks
            return search_windows(size, regions, whole_frame=whole, limit=LIVE_WINDOWS), whole
        return [], False

    def _follow(self, track: Track, estimate: BodyEstimate, at: float) -> Track:
        pose = replace(estimate.pose, track_id=track.pose.track_id)
        return Track(self._smoothed(pose, track.smoother, at), estimate.next_region, pose, track.smoother)

    def _start(self, estimate: BodyEstimate, at: float) -> Track:
        pose = replace(estimate.pose, track_id=self._ids.assign(_cover(estimate.pose)))
        smoother = self.smoothing.filter()
        return Track(self._smoothed(pose, smoother, at), estimate.next_region, pose, smoother)

    @staticmethod
    def _smoothed(pose: Pose, smoother: OneEuroFilter, at: float) -> Pose:
        _, _, w, h = _cover(pose)
        scale = (w + h) / 2 / (1 + 2 * COVER_MARGIN)
        positions = smoother(pose.landmarks[:, :3], at, 1.0 / max(scale, 1.0))
        landmarks = np.column_stack([positions, pose.landmarks[:, 3]]).astype(np.float32)
        return replace(pose, landmarks=landmarks)
