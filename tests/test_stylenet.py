"""The built-in style network painting in strips (appliance/photo/stylenet.py) against the same network run
whole, on the real model and scikit-image's astronaut photograph; and the cut itself (Inference.load_parts)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.errors import ApplianceError
from appliance.experience.photo import PhotoStyle
from appliance.inference.backend import Inference
from appliance.photo.style import WHOLE_MAX_PIXELS, Styler
from appliance.photo.stylenet import MODEL, StripedStyles

#: The painting is in 0..1: this is 0.5 of a level of 255 (the sums are float64, the whole run's float32).
TOLERANCE = 0.5 / 255


@pytest.fixture(scope="module")
def auto() -> Inference:
    return Inference()


@pytest.fixture(scope="module")
def striped(auto: Inference) -> StripedStyles:
    return StripedStyles(auto)


def batch_of(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA),
                                             cv2.COLOR_BGR2RGB)[None])


def weights_of(*mix: tuple[int, float]) -> np.ndarray:
    weights = np.zeros(26, np.float32)
    for index, weight in mix:
        weights[index] = weight
    return weights


@pytest.mark.parametrize(("width", "height", "mix"), [
    (1440, 960, ((10, 1.0),)),            # a print at fine strokes, landscape: 30 strips in the first segment
    (1440, 1080, ((19, 1.0),)),           # every segment's last strip shorter than the others
    (1012, 1440, ((19, 1.0),)),           # portrait
    (224, 100, ((5, 0.5), (17, 0.5))),    # a few strips, a mix of two styles
    (64, 20, ((0, 1.0),)),                # fewer rows than one strip: every segment runs whole
])
def test_strips_paint_what_the_whole_network_paints(auto: Inference, striped: StripedStyles, astronaut: np.ndarray,
                                                    width: int, height: int, mix) -> None:
    batch, weights = batch_of(astronaut, width, height), weights_of(*mix)
    (whole,) = auto.load(MODEL).run([batch, weights])
    painted = striped.paint(batch, weights)
    assert painted.shape == whole.shape == (1, 3, height, width)
    difference = np.abs(painted - whole)
    assert difference.max() < TOLERANCE, f"max {difference.max() * 255:.3f} levels"


def test_a_side_not_a_multiple_of_the_stride_is_refused(striped: StripedStyles) -> None:
    with pytest.raises(ApplianceError, match="multiples of 4, got 102x100"):
        striped.paint(np.zeros((1, 100, 102, 3), np.uint8), weights_of((0, 1.0)))


def test_a_cut_at_a_tensor_the_model_lacks_names_it(auto: Inference) -> None:
    with pytest.raises(ApplianceError, match="multistyle26 has no tensor '/nowhere'"):
        auto.load_parts(MODEL, [(("image",), ("/nowhere",))])


def test_a_backend_that_cannot_cut_a_graph_says_so(auto: Inference) -> None:
    with pytest.raises(ApplianceError, match="backend litert cannot cut model selfie_landscape into parts"):
        auto.load_parts("selfie_landscape", [(("input",), ("output",))])


def test_a_styler_paints_fine_strokes_in_strips_for_the_job_only(auto: Inference, astronaut: np.ndarray,
                                                                  tmp_path: Path) -> None:
    styler = Styler([PhotoStyle(name="Sepia", index=10, stroke="fine", strength=1.0),
                     PhotoStyle(name="Oils", index=5, stroke="medium", strength=1.0)], tmp_path, auto)
    print_ = cv2.resize(astronaut, (1800, 1200), interpolation=cv2.INTER_AREA)
    with styler.job():
        styler.paint(print_, "Oils")
        assert styler.loaded == [MODEL]                       # 896x597 runs whole
        assert 896 * 597 <= WHOLE_MAX_PIXELS < 1440 * 960
        fine = styler.paint(print_, "Sepia")
        assert styler.loaded == [MODEL, f"{MODEL}:strips"]
    assert styler.loaded == []
    assert fine.shape == print_.shape and fine.dtype == np.uint8
