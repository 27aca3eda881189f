"""Perception on demand: only the models the experience needs run, at its rate, tagged with their frame;
per-model inference lanes in the configuration; parallel lanes; bench --models.

The models are the real ones; what is counted is calls into the loaded model objects (a wrapper around
each runner), never faked results.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from test_cli import cli, error_lines
from test_hands import KIOSK_VIDEO, CountingInference, load_distance_module

from appliance.config import load_config
from appliance.errors import ApplianceError
from appliance.inference.backend import BackendOptions, Inference, Runner
from appliance.perception.hand import GestureState
from appliance.perception.lanes import Lane
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.pipeline import Perceiver, PerceptionThread
from appliance.perception.schedule import PRESENCE_RATE
from appliance.slot import LatestSlot
from appliance.sources.base import Frame
from appliance.tomlfile import InvalidFile

FPS = 30.0
NO_HANDS = Needs(hands=0)


@pytest.fixture
def counted() -> CountingInference:
    return CountingInference()


def frames(image: np.ndarray, count: int, start: int = 0) -> list[Frame]:
    return [Frame(image, index, captured_at=index / FPS) for index in range(start, start + count)]


def test_hands_not_wanted_never_call_the_hand_models(counted: CountingInference, astronaut: np.ndarray) -> None:
    perceiver = Perceiver(counted)
    results = [perceiver.process(frame, NO_HANDS) for frame in frames(astronaut, 4)]
    assert counted.calls("palm_detection_full") == counted.calls("hand_landmark_full") == 0
    assert counted.calls("selfie_landscape") == 4
    assert [result.ran for result in results] == [("segmentation",)] * 4
    assert all(result.gestures == GestureState() and "hands" not in result.timings_ms for result in results)
    assert all(0.2 < result.coverage < 0.9 and result.alpha.shape == astronaut.shape[:2] for result in results)
    perceiver.process(Frame(astronaut, 4, 4 / FPS))
    assert counted.calls("palm_detection_full") > 0


def test_rates_are_kept_on_the_capture_clock(counted: CountingInference, astronaut: np.ndarray) -> None:
    """Hands at 10/s on a 30 fps camera: every third frame; no person drawn: segmentation at the presence rate."""
    perceiver = Perceiver(counted)
    results = [perceiver.process(frame, Needs(segmentation=0, hands=10)) for frame in frames(astronaut, 12)]
    hands = [result.index for result in results if "hands" in result.ran]
    segmentation = [result.index for result in results if "segmentation" in result.ran]
    assert hands == [0, 3, 6, 9]
    assert segmentation == list(range(0, 12, int(FPS / PRESENCE_RATE)))
    assert counted.calls("selfie_landscape") == len(segmentation)
    assert all(result.alpha is results[0].alpha for result in results[:6])


def test_switching_hands_off_resets_the_tracker(media: Path, counted: CountingInference) -> None:
    """A tracked hand is forgotten when hands go off: on their return it is searched for again, with a new track."""
    images = list(load_distance_module().frames(str(media / KIOSK_VIDEO), 1.0))[60:80]
    perceiver = Perceiver(counted)
    tracked = [perceiver.process(Frame(image, index, index / 25.0)) for index, image in enumerate(images[:10])]
    (first,) = tracked[-1].gestures.hands
    off = perceiver.process(Frame(images[10], 10, 10 / 25.0), NO_HANDS)
    assert off.gestures == GestureState() and off.ran == ("segmentation",)
    palm_before = counted.calls("palm_detection_full")
    back = [perceiver.process(Frame(image, index, index / 25.0)) for index, image in enumerate(images[11:], 11)]
    assert counted.calls("palm_detection_full") > palm_before
    assert back[0].gestures.hands == () or back[0].gestures.hands[0].held is None
    (again,) = back[-1].gestures.hands
    assert again.hand.track_id != first.hand.track_id


def wait_for(results: LatestSlot, index: int, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    version = 0
    while time.monotonic() < deadline:
        version, result = results.newer_than(version, 0.5)
        if result is not None and result.index >= index:
            return result
    raise AssertionError(f"no result for frame {index} within {timeout} s")


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_the_thread_takes_new_needs_by_the_next_frame(counted: CountingInference, astronaut: np.ndarray,
                                                      parallel: bool) -> None:
    captured: LatestSlot[Frame] = LatestSlot()
    results: LatestSlot = LatestSlot()
    thread = PerceptionThread(Perceiver(counted, parallel=parallel), captured, results).start()
    try:
        seen = []
        for frame in frames(astronaut, 6):
            if frame.index == 2:
                thread.want(NO_HANDS)
            if frame.index == 4:
                thread.want(Needs())
            captured.put(frame)
            result = wait_for(results, frame.index)
            seen.append((result.index, result.ran))
    finally:
        thread.stop()
    both, alone = ("segmentation", "hands"), ("segmentation",)
    assert seen == [(0, both), (1, both), (2, alone), (3, alone), (4, both), (5, both)]
    assert thread.problem is None


def test_results_carry_increasing_frame_indices(counted: CountingInference, astronaut: np.ndarray) -> None:
    """The thread drops frames it has no time for (latest-value slots) but never goes back."""
    captured: LatestSlot[Frame] = LatestSlot()
    results: LatestSlot = LatestSlot()
    thread = PerceptionThread(Perceiver(counted), captured, results).start()
    seen = []
    try:
        for frame in frames(astronaut, 30):
            captured.put(frame)
            time.sleep(1 / FPS)
            seen.append(results.latest()[1])
        seen.append(wait_for(results, 29))
    finally:
        thread.stop()
    published = [result for result in seen if result is not None]
    indices = [result.index for previous, result in zip([None, *published[:-1]], published, strict=True)
               if result is not previous]
    assert indices == sorted(set(indices)) and indices[-1] == 29 and len(indices) >= 3


class MeetingRunner:
    """A real runner whose first call on each lane thread, once armed, waits for the other lanes' first calls."""

    def __init__(self, runner, meeting: Meeting) -> None:
        self.runner, self.backend, self.meeting = runner, runner.backend, meeting

    def run(self, inputs):
        self.meeting.arrive()
        return self.runner.run(inputs)


class Meeting:
    """Records, per lane thread, its arrival at a barrier of ``parties`` and its leaving; a barrier that a
    sequential run could never pass (one stage would wait for the next, which has not started)."""

    def __init__(self, parties: int) -> None:
        self.armed = False
        self.events: list[tuple[str, str]] = []
        self._barrier = threading.Barrier(parties, timeout=30)
        self._met: set[str] = set()
        self._lock = threading.Lock()

    def arrive(self) -> None:
        name = threading.current_thread().name
        with self._lock:
            if not self.armed or name in self._met:
                return
            self._met.add(name)
            self.events.append(("arrive", name))
        self._barrier.wait()
        with self._lock:
            self.events.append(("leave", name))


class MeetingInference(Inference):
    def __init__(self, meeting: Meeting) -> None:
        super().__init__("litert")
        self.meeting = meeting

    def load(self, model: str) -> Runner:
        return MeetingRunner(super().load(model), self.meeting)


def test_parallel_lanes_run_segmentation_hands_and_pose_of_a_frame_at_once(astronaut: np.ndarray) -> None:
    """One model per lane (per NPU core on an RK3588): the three stages of a frame are all inside a model call
    before any of them leaves it — shown by the order of events, not by timing."""
    meeting = Meeting(parties=3)
    perceiver = Perceiver(MeetingInference(meeting), parallel=True)
    wanted = Needs(hands=EVERY_FRAME, pose=EVERY_FRAME)
    try:
        perceiver.process(Frame(astronaut, 0, captured_at=0.0), wanted)   # a person found: the next frame's boxes
        meeting.armed = True
        result = perceiver.process(Frame(astronaut, 1, captured_at=1 / FPS), wanted)
    finally:
        perceiver.close()
    assert set(result.ran) >= {"segmentation", "hands", "pose"}
    arrivals = [name for kind, name in meeting.events if kind == "arrive"]
    assert sorted(arrivals) == ["lane-hands", "lane-pose", "lane-segmentation"]
    assert [kind for kind, _ in meeting.events] == ["arrive"] * 3 + ["leave"] * 3


def test_parallel_lanes_give_the_sequential_answers_on_a_still_scene(astronaut: np.ndarray) -> None:
    """On an unchanging image the previous frame's person box is this frame's: parallel = sequential."""
    inference = Inference("litert")
    sequential, parallel = Perceiver(inference), Perceiver(inference, parallel=True)
    try:
        for frame in frames(astronaut, 4):
            one, other = sequential.process(frame), parallel.process(frame)
            assert one.ran == other.ran == ("segmentation", "hands")
            assert np.array_equal(one.alpha, other.alpha) and one.coverage == other.coverage
            assert len(one.gestures.hands) == len(other.gestures.hands)
            assert set(other.timings_ms) == {"segmentation", "hands"}
    finally:
        parallel.close()


def test_a_lane_hands_back_what_its_stage_raised() -> None:
    lane = Lane("test").start()
    try:
        def fail() -> None:
            raise ApplianceError("model broke")

        with pytest.raises(ApplianceError, match="model broke"):
            lane.collect(lane.submit(fail))
        assert lane.collect(lane.submit(lambda: 42)) == 42
    finally:
        lane.stop()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "appliance.toml"
    path.write_text(text)
    return path


def test_lanes_override_the_inference_defaults_per_model(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[inference]\nthreads = 3\nparallel = true\n'
                                         '[inference.models.hand_landmark_full]\nthreads = 1\ncore_mask = "1"\n'))
    inference = config.inference.inference()
    assert config.inference.parallel is True
    lane = inference.settings("hand_landmark_full")
    assert (lane.backend, lane.options.threads, lane.options.core_mask) == ("auto", 1, "1")
    default = inference.settings("selfie_landscape")
    assert (default.backend, default.options) == ("auto", BackendOptions(3, "auto", inference.options.soc))


@pytest.mark.parametrize(("text", "problem", "line"), [
    ('[inference.models.selfie_landscap]\nthreads = 1\n', "inference.models.selfie_landscap: unknown model "
     "(the manifest has: ", 1),
    ('[inference.models.palm_detection_full]\nthread = 1\n', "inference.models.palm_detection_full.thread: ", 2),
    ('[inference.models.palm_detection_full]\ncore_mask = "3"\n', "inference.models.palm_detection_full."
     "core_mask: ", 2),
])
def test_lane_mistakes_name_the_key_and_the_line(tmp_path: Path, text: str, problem: str, line: int) -> None:
    with pytest.raises(InvalidFile) as error:
        load_config(write(tmp_path, f'device_id = "mall-01-screen-3"\n[inference]\nthreads = 2\n{text}'))
    (message,) = error.value.problems
    assert message.startswith(problem) and message.endswith(f"(line {line + 3})"), message


def test_bench_models_picks_the_stages_and_refuses_an_unknown_model_in_one_line(astronaut_file: Path) -> None:
    result = cli("bench", str(astronaut_file), "--frames", "3", "--json", "--screen", "320x180",
                 "--models", "segmentation")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["models"] == ["segmentation"] and "hands" not in report["stages"]
    assert {"capture", "segmentation", "composite", "present", "total"} <= set(report["stages"])
    refused = cli("bench", str(astronaut_file), "--frames", "3", "--models", "segmentation,iris")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    (line,) = error_lines(refused.stderr)
    assert "unknown model 'iris'" in line
