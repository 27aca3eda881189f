"""Backend discovery and selection: LiteRT on x86, RKNN refused cleanly without its runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from appliance.errors import ApplianceError
from appliance.inference.backend import BackendOptions, Inference, Registry
from appliance.inference.soc import has_rknn_npu, read_soc


def test_litert_is_discovered_and_rknn_is_recorded_as_unavailable_on_x86() -> None:
    registry = Registry.discover()
    assert "litert" in registry.plugins
    assert "rknn" in registry.unavailable
    assert "rknnlite" in registry.unavailable["rknn"]


def test_asking_for_rknn_on_x86_is_a_clear_error() -> None:
    with pytest.raises(ApplianceError, match="backend 'rknn' cannot be used here: .*rknnlite"):
        Inference("rknn").load("selfie_landscape")


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(ApplianceError, match="unknown backend 'tpu' .*litert.*rknn"):
        Inference("tpu").load("selfie_landscape")


@pytest.mark.parametrize("soc", [None, "rk3399"])
def test_auto_runs_on_litert_without_an_npu(soc: str | None) -> None:
    inference = Inference("auto", BackendOptions(threads=1, soc=soc))
    runner = inference.load("selfie_landscape")
    output = runner.run([np.zeros((1, 144, 256, 3), np.uint8)])
    assert output[0].shape == (1, 144, 256, 1)
    assert inference.backend_summary == "litert"


def test_litert_rejects_a_wrongly_shaped_input() -> None:
    runner = Inference("litert").load("selfie_landscape")
    with pytest.raises(ApplianceError, match="expects input"):
        runner.run([np.zeros((1, 256, 256, 3), np.uint8)])


def test_litert_feeds_the_model_exactly_the_reference_normalisation(astronaut: np.ndarray) -> None:
    """uint8 in, [0, 1] floats into the model: same output as feeding the floats directly."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    from appliance.inference.manifest import Manifest

    image = cv2.resize(astronaut, (256, 256))[None]
    ours = Inference("litert").load("selfie_general").run([image])[0]
    direct = Interpreter(model_path=str(Manifest.load().verified_path("selfie_general")))
    direct.allocate_tensors()
    direct.set_tensor(direct.get_input_details()[0]["index"], image.astype(np.float32) / 255.0)
    direct.invoke()
    expected = direct.get_tensor(direct.get_output_details()[0]["index"])
    assert expected.max() > 0.9  # the person is found, so the comparison means something
    np.testing.assert_allclose(ours, expected, atol=1e-4)  # x * (1/255) vs x / 255 rounding


@pytest.mark.parametrize(
    ("compatible", "soc", "npu"),
    [
        (b"radxa,rock-5b\0rockchip,rk3588\0", "rk3588", True),
        (b"pine64,rockpro64-v2.1\0pine64,rockpro64\0rockchip,rk3399\0", "rk3399", False),
        (b"friendlyarm,nanopi-r5s\0rockchip,rk3568\0", "rk3568", True),
        (b"raspberrypi,4-model-b\0brcm,bcm2711\0", None, False),
    ],
)
def test_soc_is_read_from_the_device_tree(tmp_path: Path, compatible: bytes, soc: str | None, npu: bool) -> None:
    path = tmp_path / "compatible"
    path.write_bytes(compatible)
    assert read_soc(path) == soc
    assert has_rknn_npu(soc) is npu


def test_no_device_tree_means_no_soc(tmp_path: Path) -> None:
    assert read_soc(tmp_path / "absent") is None
