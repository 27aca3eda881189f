"""The bundled demo shopper: cut out onto a studio wall, so the live matte finds her and nothing else."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from appliance.inference.backend import Inference
from appliance.perception.demo import demo_image, studio_wall
from appliance.perception.stages import SegmentationStage
from appliance.sources.open import open_source

SIZE = (1280, 720)


@pytest.fixture(scope="module")
def demo() -> np.ndarray:
    return demo_image(SIZE)


def _longest_vertical_edge(image: np.ndarray, step: int = 24) -> int:
    """The longest run of rows over which one column has a sharp left–right step (a photo's straight side)."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.int16)
    strong = np.abs(np.diff(grey, axis=1)) > step
    edges = np.diff(np.pad(strong.astype(np.int8), ((1, 1), (0, 0))), axis=0)
    longest = 0
    for column in range(strong.shape[1]):
        starts, ends = np.flatnonzero(edges[:, column] == 1), np.flatnonzero(edges[:, column] == -1)
        if starts.size:
            longest = max(longest, int((ends - starts).max()))
    return longest


def test_the_demo_is_a_deterministic_16_9_frame(demo: np.ndarray) -> None:
    assert demo.shape == (720, 1280, 3) and demo.dtype == np.uint8
    assert np.array_equal(demo, demo_image(SIZE))
    assert open_source("demo", paced=False, demo=demo_image).read().size == SIZE


def test_the_demo_has_no_straight_photo_edge(demo: np.ndarray) -> None:
    assert _longest_vertical_edge(demo) < 120, "a column with a long sharp step: the photo's side shows"
    old_style = demo.copy()
    old_style[:, 280:1000] = cv2.resize(demo[:, 200:1080], (720, 720))
    old_style[:, :280] = (150, 140, 140)
    assert _longest_vertical_edge(old_style) >= 300, "the check must see a pasted photo's side"


def test_the_live_matte_keeps_her_and_no_background(demo: np.ndarray) -> None:
    stage = SegmentationStage(Inference())
    for _ in range(5):
        alpha = stage.run(demo).alpha
    wall = np.abs(demo.astype(np.int16) - studio_wall(SIZE).astype(np.int16)).max(axis=2) <= 4
    opaque = alpha > 128
    assert 0.2 < opaque.mean() < 0.45, "she is in the frame"
    assert (opaque & wall).sum() < 0.001 * opaque.size, "the matte keeps pieces of the wall"
    assert not opaque[:, :100].any() and not opaque[:, -100:].any(), "a remnant at the frame's sides"
    assert not wall[-1, 400:880].all(), "she stands in the frame, cut by its bottom"
