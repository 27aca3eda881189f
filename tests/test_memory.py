"""Memory handed back (appliance/memory.py) and the runners that use it: freed heap pages returned, a model
file's pages dropped from the resident set with every run's output unchanged, onnxruntime's memory plan
per kind of model."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import onnxruntime

from appliance.inference.backend import BackendOptions, Inference
from appliance.inference.manifest import Manifest
from appliance.memory import drop_file_pages, hand_back

PAGE = mmap.PAGESIZE


def resident_kb(path: Path) -> int:
    """The resident kB of this process's mappings of ``path`` (smaps)."""
    total, inside, target = 0, False, str(path.resolve())
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and "-" in fields[0] and not fields[0].endswith(":"):
            inside = len(fields) == 6 and fields[5] == target
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


def test_freed_heap_pages_are_handed_back_on_glibc() -> None:
    assert hand_back()


def test_a_read_only_files_pages_leave_the_resident_set_and_read_back_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    content = np.random.default_rng(1).integers(0, 256, 256 * PAGE, np.uint8).tobytes()
    path.write_bytes(content)
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert bytes(mapped) == content and resident_kb(path) >= 200 * PAGE // 1024
        assert drop_file_pages(path) == len(content)
        assert resident_kb(path) < 16 * PAGE // 1024
        assert bytes(mapped) == content   # read again from the file


def test_a_writable_mapping_is_never_advised(tmp_path: Path) -> None:
    path = tmp_path / "scratch.bin"
    path.write_bytes(bytes(64 * PAGE))
    with path.open("r+b") as file, mmap.mmap(file.fileno(), 0) as mapped:
        mapped[:4] = b"kept"
        assert drop_file_pages(path) == 0
        assert mapped[:4] == b"kept"


def test_no_maps_file_drops_nothing(tmp_path: Path) -> None:
    assert drop_file_pages(tmp_path / "model.tflite", maps=tmp_path / "missing") == 0


def test_a_litert_model_files_pages_are_dropped_and_every_run_answers_the_same(astronaut: np.ndarray) -> None:
    path = Manifest.load().verified_path("hand_landmark_full")
    runner = Inference("litert", BackendOptions(threads=1)).load("hand_landmark_full")
    image = np.ascontiguousarray(astronaut[:224, :224, ::-1][None])
    first = [output.copy() for output in runner.run([image])]
    assert resident_kb(path) < path.stat().st_size // 1024 // 4   # a 5.5 MB file, at most a quarter resident
    for _ in range(3):
        assert all(np.array_equal(a, b) for a, b in zip(first, runner.run([image]), strict=True))


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
