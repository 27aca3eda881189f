"""The board's perception profile: the caps it puts on an experience's needs, how ``auto`` picks it by SoC, and
the cpu-board profile's schedule on scripted 30 fps frames (real models, counted calls)."""

from __future__ import annotations

import numpy as np
import pytest
from test_hands import CountingInference
from test_perception_scheduler import frames

from appliance.config import InferenceConfig
from appliance.errors import ApplianceError
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.pipeline import Perceiver
from appliance.perception.profile import CPU_BOARD, CPU_BOARD_LITE, FULL, NPU_BOARD, choose


def test_full_changes_nothing() -> None:
    needs = Needs(pose=15, face=EVERY_FRAME, age=2, gender=True)
    assert FULL.cap(needs) == needs


def test_cpu_board_only_lowers_rates() -> None:
    capped = CPU_BOARD.cap(Needs(pose=15, face=EVERY_FRAME, age=2, gender=True))
    assert capped == Needs(segmentation=EVERY_FRAME, hands=EVERY_FRAME, pose=5, face=5, age=1, gender=True)
    assert CPU_BOARD.cap(Needs(hands=0, pose=2)) == Needs(hands=0, pose=2)   # off stays off, lower stays lower


@pytest.mark.parametrize(("soc", "expected"), [("rk3399", CPU_BOARD), ("rk3588", NPU_BOARD),
                                               ("rk3566", NPU_BOARD), (None, FULL)])
def test_auto_picks_by_the_soc(soc: str | None, expected) -> None:
    assert choose("auto", soc) is expected


def test_a_named_profile_is_taken_whatever_the_soc() -> None:
    assert choose("full", "rk3399") is FULL and choose("cpu-board", None) is CPU_BOARD


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ApplianceError, match="'fast' \\(known: auto, full, npu-board, cpu-board, cpu-board-lite\\)"):
        choose("fast", None)


def test_the_config_key_is_validated() -> None:
    assert InferenceConfig().profile == "auto"
    with pytest.raises(ValueError, match="profile"):
        InferenceConfig(profile="fast")


def test_a_cpu_board_runs_pose_at_five_a_second_in_lanes(astronaut: np.ndarray) -> None:
    """On scripted 30 fps frames: segmentation and hands every frame (each in its own lane), pose every sixth."""
    counted = CountingInference()
    perceiver = Perceiver(counted, profile=CPU_BOARD)
    try:
        results = [perceiver.process(frame, Needs(pose=EVERY_FRAME)) for frame in frames(astronaut, 12)]
        assert [result.index for result in results if "pose" in result.ran] == [0, 6]
        assert all({"segmentation", "hands"} <= set(result.ran) for result in results)
        assert {"segmentation", "hands", "pose"} <= set(perceiver._lanes)
    finally:
        perceiver.close()


def test_with_no_hand_a_cpu_board_searches_on_five_frames_a_second() -> None:
    """Nobody there (an empty grey wall): one palm window on every sixth frame of 30 fps."""
    counted = CountingInference()
    perceiver = Perceiver(counted, profile=CPU_BOARD_LITE)
    try:
        calls = []
        for frame in frames(np.full((720, 1280, 3), 128, np.uint8), 12):
            perceiver.process(frame, Needs())
            calls.append(counted.calls("palm_detection_full"))
    finally:
        perceiver.close()
    searched = [index for index, (before, after) in enumerate(zip([0, *calls], calls, strict=False)) if after > before]
    assert searched == [0, 6]
    assert set(counted.runners) == {"selfie_landscape", "palm_detection_full", "hand_landmark_lite"}


def test_a_cpu_board_takes_one_inference_thread_unless_the_file_says() -> None:
    assert InferenceConfig(profile="cpu-board").inference().options.threads == 1
    assert InferenceConfig(profile="cpu-board", threads=2).inference().options.threads == 2
    assert InferenceConfig(profile="full").inference().options.threads == 2
    lanes = InferenceConfig(profile="cpu-board", models={"selfie_landscape": {"core_mask": "0"}}).inference()
    assert lanes.settings("selfie_landscape").options.threads == 1

