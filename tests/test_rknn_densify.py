"""The DENSIFY rewrite's decoder (models/rknn/tflite_patch.densify_values) against TFLite's sparse format.

The converter replaces each DENSIFY of a sparse constant by the dense values it
decodes; a wrong decode would silently corrupt the pose and face detectors'
weights on the NPU.  These tests encode known dense arrays the way TFLite's
sparsity format defines it (per level: DENSE expands every path, SPARSE_CSR
keeps segments + indices of the non-zero sub-arrays) and check the decode gives
the arrays back bit for bit.  Pure numpy: no TensorFlow in the appliance venv.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from models.rknn.tflite_patch import PatchError, densify_values

DENSE, CSR = 0, 1


def encode(dense: np.ndarray, formats: list[int]) -> tuple[np.ndarray, SimpleNamespace]:
    """TFLite sparse encoding of ``dense`` (identity traversal order, no block map)."""
    levels = [{"segments": [0], "indices": []} for _ in formats]
    values: list = []

    def walk(block: np.ndarray, level: int) -> None:
        """Encode ``block`` at ``level`` (a CSR level keeps only its non-zero sub-arrays)."""
        if level == len(formats):
            values.append(block[()])
            return
        if formats[level] == DENSE:
            for i in range(block.shape[0]):
                walk(block[i], level + 1)
            return
        stored = levels[level]
        for i in range(block.shape[0]):
            if np.any(block[i] != 0):
                stored["indices"].append(i)
                walk(block[i], level + 1)
        stored["segments"].append(len(stored["indices"]))

    walk(dense, 0)
    metadata = []
    for level, fmt in enumerate(formats):
        if fmt == DENSE:
            metadata.append(SimpleNamespace(format=DENSE, denseSize=dense.shape[level]))
        else:
            metadata.append(SimpleNamespace(
                format=CSR, denseSize=0,
                arraySegments=SimpleNamespace(values=np.array(levels[level]["segments"], np.int32)),
                arrayIndices=SimpleNamespace(values=np.array(levels[level]["indices"], np.uint16))))
    sparsity = SimpleNamespace(traversalOrder=np.arange(dense.ndim), blockMap=None, dimMetadata=metadata)
    return np.array(values, dtype=dense.dtype), sparsity


def sparse_weights(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal(shape).astype(np.float16)
    weights[rng.random(shape) < 0.6] = 0  # pruned like MediaPipe's sparse models
    return weights


@pytest.mark.parametrize(("shape", "formats"), [
    ((16, 1, 1, 24), [DENSE, DENSE, DENSE, CSR]),   # the layout in pose_detection / face_detection_full_range_sparse
    ((5, 7), [CSR, CSR]),                            # CSR on every level, with empty rows
    ((3, 4, 6), [DENSE, CSR, DENSE]),               # CSR in the middle
])
def test_decodes_tflite_sparse_encoding(shape: tuple[int, ...], formats: list[int]) -> None:
    dense = sparse_weights(shape, seed=len(shape))
    dense[0] = 0  # an all-zero leading slice: CSR stores nothing for it
    values, sparsity = encode(dense, formats)
    decoded = densify_values(values, list(shape), sparsity, "test")
    assert decoded.dtype == dense.dtype
    np.testing.assert_array_equal(decoded, dense)


def test_refuses_metadata_that_does_not_match_the_buffer() -> None:
    dense = sparse_weights((4, 8), seed=1)
    values, sparsity = encode(dense, [DENSE, CSR])
    with pytest.raises(PatchError, match="addresses"):
        densify_values(values[:-1], [4, 8], sparsity, "test")


def test_refuses_block_sparsity() -> None:
    dense = sparse_weights((4, 8), seed=2)
    values, sparsity = encode(dense, [DENSE, CSR])
    sparsity.blockMap = np.array([1])
    with pytest.raises(PatchError, match="block map"):
        densify_values(values, [4, 8], sparsity, "test")
