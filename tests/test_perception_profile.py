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
from appliance.perception.profile import CPU_BOARD, FULL, choose


def test_full_changes_nothing() -> None:
    needs = Needs(pose=15, face=EVERY_FRAME, age=2, gender=True)
    assert FULL.cap(needs) == needs


def test_cpu_board_only_lowers_rates() -> None:
    capped = CPU_BOARD.cap(Needs(pose=15, face=EVERY_FRAME, age=2, gender=True))
    assert capped == Needs(segmentation=EVERY_FRAME, hands=EVERY_FRAME, pose=5, face=5, age=1, gender=True)
    assert CPU_BOARD.cap(Needs(hands=0, pose=2)) == Needs(hands=0, pose=2)   # off stays off, lower stays lower


@pytest.mark.parametrize(("soc", "expected"), [("rk3399", CPU_BOARD), ("rk3588", FULL), ("rk3566", FULL),
                                               (None, FULL)])
def test_auto_picks_by_the_soc(soc: str | None, expected) -> None:
    assert choose("auto", soc) is expected
    assert choose("full", "rk3399") is FULL and choose("cpu-board", None) is CPU_BOARD


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ApplianceError, match="unknown perception profile 'fast' \\(known: auto, full, cpu-board\\)"):
        choose("fast", None)


def test_the_config_key_is_validated() -> None:
    assert InferenceConfig().profile == "auto"
    with pytest.raises(ValueError, match="profile"):
        InferenceConfig(profile="fast")


def test_a_cpu_board_runs_pose_at_five_a_second_and_searches_one_window(astronaut: np.ndarray) -> None:
    """On scripted 30 fps frames: segmentation and hands every frame, pose every sixth frame."""
    counted = CountingInference()
    perceiver = Perceiver(counted, profile=CPU_BOARD)
    results = [perceiver.process(frame, Needs(pose=EVERY_FRAME)) for frame in frames(astronaut, 12)]
    assert [result.index for result in results if "pose" in result.ran] == [0, 6]
    assert all({"segmentation", "hands"} <= set(result.ran) for result in results)
    assert perceiver.hands.tracker.windows_while_lost == 1
