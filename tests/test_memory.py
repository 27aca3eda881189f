"""Memory handed back (appliance/memory.py) and the runners' memory: freed heap pages returned, onnxruntime's
memory plan per kind of model."""

from __future__ import annotations

import mmap

import numpy as np
import onnxruntime

from appliance.inference.backend import BackendOptions, Inference
from appliance.inference.manifest import Manifest
from appliance.memory import hand_back

PAGE = mmap.PAGESIZE


def test_freed_heap_pages_are_handed_back_on_glibc() -> None:
    assert hand_back()


def test_onnx_plans_a_memory_pattern_only_for_fixed_size_models() -> None:
    inference = Inference("onnx", BackendOptions(threads=1))
    fixed, any_size = inference.load("age"), inference.load("multistyle26")
    assert fixed._session.get_session_options().enable_mem_pattern
    assert not any_size._session.get_session_options().enable_mem_pattern


def test_onnx_normalises_straight_into_the_models_tensor_exactly_as_the_reference(astronaut: np.ndarray) -> None:
    runner = Inference("onnx", BackendOptions(threads=1)).load("multistyle26")
    image = np.ascontiguousarray(astronaut[:64, :96, ::-1][None])
    weights = np.eye(26, dtype=np.float32)[19]
    (ours,) = runner.run([image, weights])
    direct = onnxruntime.InferenceSession(str(Manifest.load().verified_path("multistyle26")))
    scale, offsets = Manifest.load().spec("multistyle26").channel_normalisation
    tensor = image.astype(np.float32) * np.float32(scale) + np.asarray(offsets, np.float32)
    (expected,) = direct.run(None, {"image": np.ascontiguousarray(tensor.transpose(0, 3, 1, 2)),
                                    "style_weights": weights})
    np.testing.assert_array_equal(ours, expected)
