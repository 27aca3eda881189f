"""Per-frame perception for live video, and the worker thread that runs it beside the render loop.

Invariants:

- Only what the current experience needs runs (``Needs``, handed over through a
  latest-value slot and read once per frame): segmentation always (at its
  asked rate, at least PRESENCE_RATE for presence), hands (landmarks and
  gestures), pose (every person's body, tracked) and face (every face's
  mesh, tracked) only while wanted, at their rates; the pose and face models
  load the first time they are wanted.
- Every result names its frame (``index``) and the models that ran on it
  (``ran``); a model that did not run leaves its last answer in place (the
  matte, the gestures, the poses, the faces), except hands, pose or face
  switched off, which leave no gestures (no poses, no faces) and a reset
  tracker, so a half-made swipe never fires later and nobody's old pose or
  face reappears.
- Sequential (default): hands, pose and face search where this frame's
  segmentation puts people.  Parallel (``[inference] parallel``): each stage
  runs in its own lane thread and hands, pose and face use the previous
  frame's mask, so none waits for another.
- Age (``Needs.age``, with face) runs after face, at its rate, only on frames where face
  ran, on that frame's meshes as the model gave them (the tracker's raw faces: never an
  earlier frame's, never the smoothed ones the result shows), off the render loop like
  every stage; each face of every result carries its
  track's smoothed guess (``Face.age``) from the last age run.  Gender runs only while
  ``Needs.gender`` asks (its model loads the first time it does).  Age switched off
  forgets every track's guesses.
- The board's ``profile`` caps every need before anything is scheduled (perception/profile.py:
  an RK3399 runs hands, pose, face and age at lower rates).
- With ``audience`` (the device's opt-in ``[audience] counts``), every frame's faces that
  carry an age go to the anonymous, k-anonymous hourly counts (``appliance.perception.audience``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from appliance.errors import ApplianceError
from appliance.inference.backend import Inference
from appliance.perception.audience import AudienceCounts
from appliance.perception.body import Pose
from appliance.perception.face import Face
from appliance.perception.face_tracker import FaceSettings
from appliance.perception.hand import GestureState
from appliance.perception.lanes import Lane
from appliance.perception.matte import MatteSettings
from appliance.perception.needs import MODELS, Needs
from appliance.perception.pose_tracker import PoseSettings
from appliance.perception.profile import FULL, Profile
from appliance.perception.schedule import WATCH_COVERAGE, RateGate, frame_wanted, segmentation_rate, watching
from appliance.perception.stages import AgeStage, FaceStage, HandStage, PoseStage, SegmentationStage, Segmented
from appliance.slot import LatestSlot
from appliance.sources.base import Frame
from appliance.worker import Worker

log = logging.getLogger(__name__)

#: What runs when nobody asked otherwise: the default experience's needs (segmentation and hands, every frame).
DEFAULT_NEEDS = Needs()
NO_GESTURES = GestureState()


@dataclass(frozen=True)
class Perception:
    """Everything known about one frame: the frame itself travels with it, so mask and image match."""

    frame: Frame
    alpha: np.ndarray          # uint8 person matte at the frame's size
    coverage: float            # share of the frame that is person, 0..1
    timings_ms: dict[str, float] = field(default_factory=dict)   # per model that ran on this frame
    gestures: GestureState = NO_GESTURES
    ran: tuple[str, ...] = ()  # the models that ran on this frame (the others' answers are older)
    poses: tuple[Pose, ...] = ()  # every person's body, largest first (when pose is wanted)
    faces: tuple[Face, ...] = ()  # every face's mesh, largest first (when face is wanted; Face.age: when age is)
    cpu_ms: dict[str, float] = field(default_factory=dict)   # the CPU time of its thread, per model that ran

    @property
    def index(self) -> int:
        """The capture's frame counter of the frame this result came from."""
        return self.frame.index


class Perceiver:
    """The stages a live frame goes through; one instance per stream (the stages keep temporal state)."""

    def __init__(self, inference: Inference, matte: MatteSettings = MatteSettings(), parallel: bool = False,
                 pose: PoseSettings = PoseSettings(), face: FaceSettings = FaceSettings(),
                 audience: AudienceCounts | None = None, profile: Profile = FULL) -> None:
        self.profile = profile
        log.info("perception profile %s", profile.describe())
        self.segmentation = SegmentationStage(inference, matte=matte)
        self.hands = HandStage(inference, landmark_model=profile.hand_landmark, search_windows=profile.search_windows,
                               search_rate=profile.search_rate)
        self._inference = inference
        self._pose_settings = pose
        self.pose: PoseStage | None = None   # loaded the first time an experience asks for pose
        self._face_settings = face
        self.face: FaceStage | None = None   # loaded the first time an experience asks for face
        self.age: AgeStage | None = None     # loaded the first time an experience asks for age
        self._lanes = {name: Lane(name).start() for name in ("segmentation", "hands")} \
            if parallel or profile.lanes else {}
        self._gates = {name: RateGate() for name in MODELS}
        self._segmented: Segmented | None = None
        self._gestures = NO_GESTURES
        self._hands_on = False
        self._poses: tuple[Pose, ...] = ()
        self._pose_on = False
        self._faces: tuple[Face, ...] = ()
        self._face_on = False
        self._age_on = False
        self.audience = audience

    def process(self, frame: Frame, needs: Needs = DEFAULT_NEEDS) -> Perception:
        now = frame.captured_at
        needs = self.profile.cap(needs)
        self._switch_hands(needs.wants("hands"))
        self._switch_pose(needs.wants("pose"))
        self._switch_face(needs.wants("face"))
        self._switch_age(needs.wants("age"))
        last = self._segmented
        jobs: dict[str, Callable[[], Any]] = {}
        if (last is None or last.alpha.shape[:2] != frame.image.shape[:2]
                or self._gates["segmentation"].due(segmentation_rate(needs), now)):
            jobs["segmentation"] = lambda: self.segmentation.run(frame.image)
        hands_due = self._gates["hands"].due(needs.hands, now)
        if hands_due and self._lanes:
            person = last.person if last else None
            jobs["hands"] = lambda: self.hands.run(frame.image, person, now)
        pose = self.pose
        pose_due = pose is not None and self._gates["pose"].due(needs.pose, now)
        if pose_due and self._lanes:
            jobs["pose"] = lambda: pose.run(frame.image, last, now)
        face = self.face
        face_due = face is not None and self._gates["face"].due(needs.face, now)
        if face_due and self._lanes:
            jobs["face"] = lambda: face.run(frame.image, last, now)
        done = self._run(jobs)
        self._segmented = done["segmentation"].value if "segmentation" in done else last
        later: dict[str, Callable[[], Any]] = {}
        if hands_due and not self._lanes:
            person = self._segmented.person if self._segmented else None
            later["hands"] = lambda: self.hands.run(frame.image, person, now)
        if pose_due and not self._lanes:
            segmented = self._segmented
            later["pose"] = lambda: pose.run(frame.image, segmented, now)
        if face_due and not self._lanes:
            later["face"] = lambda: face.run(frame.image, self._segmented, now)
        done.update(self._run(later))
        if "hands" in done:
            self._gestures = done["hands"].value
        if "pose" in done:
            self._poses = done["pose"].value
        if "face" in done:
            self._faces = done["face"].value
        age, faces = self.age, self._faces
        if age is not None and self._age_on:
            if "face" in done and faces and self._gates["age"].due(needs.age, now):
                raw = face.tracker.raw_faces
                done.update(self._run({"age": lambda: age.run(frame.image, raw, needs.gender)}))
            faces = age.attach(faces)
        if self.audience is not None:
            self.audience.see(faces if self._age_on else (), time.time())
        for name in done:
            self._gates[name].ran(now)
        ran = tuple(name for name in MODELS if name in done)
        return Perception(frame, self._segmented.alpha, self._segmented.coverage,
                          {name: job.ms for name, job in done.items()}, self._gestures, ran, self._poses, faces,
                          {name: job.cpu_ms for name, job in done.items()})

    def close(self) -> None:
        """Stop the lane threads (parallel mode); the audience's hour so far is published."""
        for lane in self._lanes.values():
            lane.stop()
        if self.audience is not None:
            self.audience.close()

    def _run(self, jobs: dict[str, Callable[[], Any]]) -> dict[str, Ran]:
        """Each job's result, its ms and its thread's CPU ms: one after another here, or all at once in their
        lanes."""
        timed = {name: _timed(job) for name, job in jobs.items()}
        if not self._lanes:
            outcomes = {name: job() for name, job in timed.items()}
        else:
            numbers = {name: self._lanes[name].submit(job) for name, job in timed.items()}
            outcomes, errors = {}, []
            for name, number in numbers.items():
                try:
                    outcomes[name] = self._lanes[name].collect(number)
                except Exception as exc:  # noqa: BLE001 - every lane's job is collected before the first error is raised
                    errors.append(exc)
            if errors:
                raise errors[0]
        return outcomes

    def _reset(self, name: str, stage: Any) -> None:
        """``stage`` forgets every track, in its own lane when lanes run (never beside a run of it); its rate
        gate starts afresh."""
        if self._lanes:
            self._lanes[name].collect(self._lanes[name].submit(stage.reset))
        else:
            stage.reset()
        self._gates[name].forget()

    def _switch_hands(self, wanted: bool) -> None:
        if self._hands_on and not wanted:
            self._reset("hands", self.hands)
            self._gestures = NO_GESTURES
        self._hands_on = wanted

    def _switch_pose(self, wanted: bool) -> None:
        """Load the pose models on first use; switched off, forget every track and pose."""
        if wanted and self.pose is None:
            self.pose = PoseStage(self._inference, settings=self._pose_settings)
            if self._lanes:
                self._lanes["pose"] = Lane("pose").start()
        if self._pose_on and not wanted and self.pose is not None:
            self._reset("pose", self.pose)
            self._poses = ()
        self._pose_on = wanted

    def _switch_face(self, wanted: bool) -> None:
        """Load the face models on first use; switched off, forget every track and face."""
        if wanted and self.face is None:
            self.face = FaceStage(self._inference, settings=self._face_settings)
            if self._lanes:
                self._lanes["face"] = Lane("face").start()
        if self._face_on and not wanted and self.face is not None:
            self._reset("face", self.face)
            self._faces = ()
        self._face_on = wanted

    def _switch_age(self, wanted: bool) -> None:
        """Make the age stage on first use (its models load at its first run); switched off, forget every guess."""
        if wanted and self.age is None:
            self.age = AgeStage(self._inference)
            if self._lanes:
                self._lanes["age"] = Lane("age").start()
        if self._age_on and not wanted and self.age is not None:
            self.age.reset()
            self._gates["age"].forget()
        self._age_on = wanted


class Ran(NamedTuple):
    """A job that ran: its value, its ms and the CPU ms of the thread it ran in (with one inference thread a
    model, all of its CPU time; with more, the caller's share)."""

    value: Any
    ms: float
    cpu_ms: float


def _timed(job: Callable[[], Any]) -> Callable[[], Ran]:
    def run() -> Ran:
        started, cpu_started = time.perf_counter(), time.thread_time()
        value = job()
        return Ran(value, (time.perf_counter() - started) * 1000.0, (time.thread_time() - cpu_started) * 1000.0)
    return run


class PerceptionThread(Worker):
    """Takes the newest captured frame, perceives what is wanted of it, publishes the result; never queues.

    ``want`` (from any thread, e.g. the render loop when the experience changes)
    takes effect on the next frame perceived.  While only presence is wanted, the last result's
    coverage may put segmentation on every frame (``schedule.watching``); ``wanted`` tells the capture
    thread which frames it need not convert (``schedule.frame_wanted``).
    """

    def __init__(self, perceiver: Perceiver, frames: LatestSlot[Frame], results: LatestSlot[Perception],
                 needs: Needs = DEFAULT_NEEDS, watch: float = WATCH_COVERAGE) -> None:
        super().__init__("perception")
        self._watch = watch   # the coverage that puts segmentation on every frame (schedule.watch_coverage)
        self.perceiver = perceiver
        self.frames = frames
        self.results = results
        self._needs: LatestSlot[Needs] = LatestSlot()
        self._needs.put(needs)
        self._seen = 0
        self._coverage = 0.0
        self._segmented_at: float | None = None

    def want(self, needs: Needs) -> None:
        self._needs.put(needs)

    def wanted(self, captured_at: float) -> bool:
        """Whether a frame captured at ``captured_at`` will be used (from the capture thread)."""
        _, needs = self._needs.latest()
        return frame_wanted(needs or DEFAULT_NEEDS, self._coverage, self._segmented_at, captured_at, self._watch)

    def stop(self) -> None:
        super().stop()
        self.perceiver.close()

    def step(self) -> None:
        version, frame = self.frames.newer_than(self._seen, timeout=0.2)
        if frame is None or version == self._seen:
            return
        self._seen = version
        _, needs = self._needs.latest()
        try:
            result = self.perceiver.process(frame, watching(needs or DEFAULT_NEEDS, self._coverage, self._watch))
            self._coverage = result.coverage
            if "segmentation" in result.ran:
                self._segmented_at = frame.captured_at
            self.results.put(result)
            self.problem = None
        except ApplianceError as exc:
            if self.problem != str(exc):
                log.error("perception failed: %s", exc)
            self.problem = str(exc)
