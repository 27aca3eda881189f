"""The live segmentation's cheaper paths give what the plain ones give (issue 16: each stage nearer its limit)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.inference.backend import Inference
from appliance.perception.matte import LiveMatte, guided_coefficients, input_guide
from appliance.perception.segmentation import LIVE_MODEL, PersonSegmenter
from appliance.perception.tensor import Region, full_frame_tensor, region_tensor


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080), (640, 360)])
def test_full_frame_tensor_is_the_corner_aligned_warp(size: tuple[int, int]) -> None:
    """720p and 360p are whole multiples of 256x144 (the nearest-resize path), 1080p is not (the warp)."""
    width, height = size
    image = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    warped = region_tensor(image, Region(width / 2, height / 2, width, height), (256, 144))
    assert np.array_equal(full_frame_tensor(image, (256, 144)), warped)


def test_guided_coefficients_are_the_textbook_filter() -> None:
    rng = np.random.default_rng(3)
    guide = rng.random((36, 64), dtype=np.float32)
    source = np.clip(guide + rng.normal(0, 0.1, guide.shape), 0, 1).astype(np.float32)

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.blur(x.astype(np.float64), (5, 5))

    a = (mean(guide * source) - mean(guide) * mean(source)) / (mean(guide * guide) - mean(guide) ** 2 + 0.01)
    b = mean(source) - a * mean(guide)
    got_a, got_b = guided_coefficients(guide, source, 5, 0.01)
    assert got_a.dtype == got_b.dtype == np.float32
    np.testing.assert_allclose(got_a, mean(a), atol=1e-4)
    np.testing.assert_allclose(got_b, mean(b), atol=1e-4)


def test_matte_guided_by_the_model_input_matches_the_frame_guided_one(media: Path, inference: Inference) -> None:
    """The live stage guides the matte with the model's own input instead of a resize of the frame: the
    same pixels a sub-pixel apart, so the person's cut agrees (IoU) and the values barely move."""
    segmenter = PersonSegmenter(inference.load(LIVE_MODEL), inference.manifest.spec(LIVE_MODEL))
    by_frame, by_input = LiveMatte(), LiveMatte()
    capture = cv2.VideoCapture(str(media / "kiosk_fist_thumbup_720p.mp4"))
    for _ in range(40):
        ok, frame = capture.read()
        assert ok
        model_input = segmenter.model_input(frame)
        probabilities = segmenter.probabilities_of(model_input)
        plain = by_frame.update(frame, probabilities)
        guided = by_input.update(frame, probabilities, input_guide(model_input))
        mine, theirs = guided >= 128, plain >= 128
        assert (mine & theirs).sum() / max((mine | theirs).sum(), 1) >= 0.99
        assert np.abs(guided.astype(int) - plain).mean() < 1.0
    capture.release()
