"""RKNN outputs back in the float model's layout (appliance/inference/layout.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.errors import ApplianceError
from appliance.inference.layout import float_output_shapes, to_model_layout
from appliance.inference.manifest import Manifest


def test_a_many_channel_nchw_output_is_transposed_back_to_nhwc() -> None:
    nhwc = np.random.default_rng(0).random((1, 64, 48, 39)).astype(np.float32)   # pose heatmap-like
    (restored,) = to_model_layout([nhwc.transpose(0, 3, 1, 2)], [(1, 64, 48, 39)])
    assert restored.shape == (1, 64, 48, 39)
    np.testing.assert_array_equal(restored, nhwc)


def test_a_cube_output_is_taken_as_nchw_because_the_runtime_gives_nchw() -> None:
    nhwc = np.arange(2 * 2 * 2, dtype=np.float32).reshape(1, 2, 2, 2)
    (restored,) = to_model_layout([nhwc.transpose(0, 3, 1, 2)], [(1, 2, 2, 2)])
    np.testing.assert_array_equal(restored, nhwc)


@pytest.mark.parametrize(("given", "wanted"), [
    ((1, 1, 144, 256), (1, 144, 256, 1)),   # one-channel mask: NCHW and NHWC hold the same order
    ((1, 1404, 1, 1), (1, 1, 1, 1404)),     # face mesh: channels only
    ((1, 2016, 18), (1, 2016, 18)),         # SSD boxes: not 4-D, unchanged
    ((1, 63, 1, 1), (1, 63)),               # a vector padded to 4-D
])
def test_outputs_whose_order_cannot_differ_are_reshaped(given: tuple[int, ...], wanted: tuple[int, ...]) -> None:
    values = np.arange(int(np.prod(given)), dtype=np.float32)
    (restored,) = to_model_layout([values.reshape(given)], [wanted])
    assert restored.shape == wanted
    np.testing.assert_array_equal(restored.reshape(-1), values)


def test_a_shape_that_matches_neither_layout_is_an_error() -> None:
    with pytest.raises(ApplianceError, match=r"NPU output 0 has shape \(1, 18, 2016\).*\(1, 2016, 18\)"):
        to_model_layout([np.zeros((1, 18, 2016), np.float32)], [(1, 2016, 18)])


def test_an_output_count_mismatch_is_an_error() -> None:
    with pytest.raises(ApplianceError, match="gave 1 outputs, the float model has 2"):
        to_model_layout([np.zeros((1, 63), np.float32)], [(1, 63), (1, 1)])


def test_an_output_with_free_axes_passes_unchanged() -> None:
    stylized = np.zeros((1, 3, 240, 320), np.float32)   # an ONNX model's NCHW output: already the runtime's layout
    (restored,) = to_model_layout([stylized], [(1, 3, None, None)])
    assert restored is stylized


def test_shapes_are_read_from_the_float_models() -> None:
    manifest = Manifest.load()
    assert float_output_shapes(manifest.verified_path("pose_landmark_full")) == [
        (1, 195), (1, 1), (1, 256, 256, 1), (1, 64, 64, 39), (1, 117)]
    assert float_output_shapes(manifest.verified_path("age")) == [(None, 81)]


def test_a_model_of_another_format_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ApplianceError, match="neither a .tflite nor an .onnx"):
        float_output_shapes(tmp_path / "palm_detection_full-rk3588.rknn")
