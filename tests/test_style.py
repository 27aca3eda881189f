"""Painted styles on a finished photo (appliance/photo/style.py), on the real models: the astronaut composed
with the default campaign's star, painted by a built-in style and by a painting (scikit-image's public-domain
coffee photograph standing in for a campaign's painting).

The stroke measure: the mean gradient magnitude of the painted print (Sobel on grey).  Smaller strokes put more
edges on every square centimetre of the print, so fine > medium > bold; measured on the astronaut's print
with style 19: 194, 161, 105 (the unpainted photo: 25); with the painting: 42, 31, 18.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from appliance.content import load_bundle
from appliance.errors import ApplianceError
from appliance.experience.photo import ORIGINAL, PhotoStyle
from appliance.experience.registry import installed
from appliance.inference.backend import Inference
from appliance.perception.stages import FaceStage
from appliance.perception.still_faces import StillFaces
from appliance.photo.compose import Photo, compose_photo
from appliance.photo.desk import PhotoDesk
from appliance.photo.style import LIKE_ENOUGH, Styler, face_mask, likeness, sample_picture, samples, styled_photo

PAINTING = "painting.png"
STYLES = [PhotoStyle(name="Van Gogh", index=19, strength=1.0), PhotoStyle(name="Blocks", index=17, stroke="bold"),
          PhotoStyle(name="Coffee", image=PAINTING, strength=1.0)]


@pytest.fixture(scope="module")
def auto() -> Inference:
    """The automatic backend: LiteRT for the .tflite models, ONNX Runtime for the style models."""
    return Inference()


@pytest.fixture(scope="module")
def desk(content_dir: Path, auto: Inference) -> PhotoDesk:
    return PhotoDesk(load_bundle(content_dir, installed()), auto)


@pytest.fixture(scope="module")
def photo(astronaut: np.ndarray, desk: PhotoDesk) -> Photo:
    return compose_photo(astronaut, desk)


@pytest.fixture(scope="module")
def painting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("painting")
    cv2.imwrite(str(directory / PAINTING), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    return directory


@pytest.fixture(scope="module")
def styler(painting: Path, auto: Inference) -> Styler:
    return Styler(STYLES, painting, auto, find_faces=StillFaces(auto))


def stroke_measure(image: np.ndarray) -> float:
    """Mean gradient magnitude (grey, Sobel): higher for smaller strokes."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return float(np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)).mean())


def lab_mean(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float32).mean(axis=0)


@pytest.mark.parametrize("name", ["Van Gogh", "Coffee"])
def test_the_three_stroke_sizes_differ_measurably_fine_to_bold(styler: Styler, photo: Photo, name: str) -> None:
    measures = {stroke: stroke_measure(styler.paint(photo.image, name, stroke))
                for stroke in ("fine", "medium", "bold")}
    assert measures["fine"] > 1.15 * measures["medium"] > 1.15 * 1.15 * measures["bold"], measures


def test_a_painting_moves_the_photos_palette_toward_its_own(styler: Styler, photo: Photo, painting: Path) -> None:
    target = lab_mean(cv2.imread(str(painting / PAINTING)))
    before = float(np.linalg.norm(lab_mean(photo.image) - target))
    after = float(np.linalg.norm(lab_mean(styler.paint(photo.image, "Coffee")) - target))
    assert before > 30 and after < 0.3 * before, (before, after)


def test_a_style_that_destroys_the_face_gives_it_back_and_leaves_the_rest_painted(
        styler: Styler, photo: Photo, auto: Inference) -> None:
    painted = styler.paint(photo.image, "Blocks")
    styled = styler.apply(photo.image, "Blocks", photo.person_box)
    (face,) = styled.faces
    assert face.likeness < LIKE_ENOUGH and face.restored > 0.5, face
    assert likeness(photo.image, painted, face.box) == pytest.approx(face.likeness, abs=1e-3)
    assert face.after > face.likeness + 0.3, face
    (found,) = [f for f in FaceStage(auto, still=True).find(photo.image, None)
                if abs(f.box[0] - face.box[0]) < 4 and abs(f.box[1] - face.box[1]) < 4]
    touched = face_mask(found, (photo.image.shape[1], photo.image.shape[0])) > 0
    changed = np.any(styled.image != painted, axis=2)
    assert changed.any() and not (changed & ~touched).any(), "only the face's feathered mask is given back"
    assert (~touched).mean() > 0.95


def test_a_style_that_keeps_the_face_recognisable_gives_nothing_back(styler: Styler, photo: Photo) -> None:
    styled = styler.apply(photo.image, "Coffee", photo.person_box)
    (face,) = styled.faces
    assert face.likeness >= LIKE_ENOUGH and face.restored == 0.0, face
    assert np.array_equal(styled.image, styler.paint(photo.image, "Coffee"))


def test_the_star_is_left_painted(styler: Styler, photo: Photo) -> None:
    """Only the shopper's face is given back: the star (its drawn face too) stays as painted."""
    styled = styler.apply(photo.image, "Blocks", photo.person_box)
    assert styled.faces and all(face.restored > 0 for face in styled.faces), "the shopper's face was given back"
    x, y, w, h = photo.star_box
    assert all(box[0] + box[2] <= x or box[0] >= x + w for box in (face.box for face in styled.faces))
    painted = styler.paint(photo.image, "Blocks")
    assert np.array_equal(styled.image[y:y + h, x:x + w], painted[y:y + h, x:x + w])


@pytest.mark.parametrize("stroke", ["fine", "bold"])
def test_a_styled_photo_keeps_its_size_and_is_encoded_again(styler: Styler, photo: Photo, stroke: str) -> None:
    odd = cv2.resize(photo.image, (1203, 797))
    for name in ("Van Gogh", "Coffee"):
        assert styler.paint(odd, name, stroke).shape == odd.shape
    styled = styled_photo(photo, styler, "Coffee", 90, (1280, 853), stroke)
    assert styled.image.shape == photo.image.shape and styled.screen.shape == (853, 1280, 3)
    assert cv2.imdecode(np.frombuffer(styled.jpeg, np.uint8), cv2.IMREAD_COLOR).shape == photo.image.shape
    assert set(styled.timings_ms) == set(photo.timings_ms) | {"style"}
    assert styled.timings_ms["total"] >= photo.timings_ms["total"]
    assert not np.array_equal(styled.image, photo.image) and photo.image is not styled.image


def test_samples_paint_every_style_on_the_world_and_star(styler: Styler, desk: PhotoDesk) -> None:
    picture = sample_picture(desk.background, desk.star)
    painted = samples(styler, picture)
    assert list(painted) == [ORIGINAL, "Van Gogh", "Blocks", "Coffee"]
    assert all(image.shape == picture.shape for image in painted.values())
    assert painted[ORIGINAL] is picture and not np.array_equal(painted["Van Gogh"], picture)


def test_an_unknown_style_and_an_unreadable_painting_are_refused_naming_them(
        styler: Styler, photo: Photo, tmp_path: Path, auto: Inference) -> None:
    with pytest.raises(ApplianceError, match="no style 'Pop'.*Van Gogh, Blocks, Coffee"):
        styler.paint(photo.image, "Pop")
    (tmp_path / PAINTING).write_bytes(b"not an image")
    with pytest.raises(ApplianceError, match=PAINTING):
        Styler([STYLES[2]], tmp_path, auto)


class CountingInference(Inference):
    """The automatic backend, counting the models it loads."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []

    def load(self, model: str):
        self.loads.append(model)
        return super().load(model)


def test_the_styles_models_are_held_for_a_job_only_and_paint_the_same_when_loaded_again(
        painting: Path, photo: Photo) -> None:
    inference = CountingInference()
    styler = Styler(STYLES, painting, inference)
    assert styler.loaded == []   # checked when made, then released: between jobs a kiosk holds none
    small = cv2.resize(photo.image, (360, 240), interpolation=cv2.INTER_AREA)
    inference.loads.clear()
    first = styler.paint(small, "Van Gogh", "bold")
    assert styler.loaded == [] and inference.loads == ["multistyle26"]
    again = styler.paint(small, "Van Gogh", "bold")
    assert np.array_equal(first, again)   # released and loaded again: the same painting, pixel for pixel
    inference.loads.clear()
    with styler.job():
        painted = samples(styler, small)
        assert styler.loaded == ["arbitrary_style_transform", "multistyle26"]
    assert styler.loaded == [] and sorted(inference.loads) == ["arbitrary_style_transform", "multistyle26"]
    assert np.array_equal(painted["Van Gogh"], first)


def test_a_still_pose_is_found_by_a_stage_loaded_for_the_call_and_released(
        astronaut: np.ndarray, content_dir: Path) -> None:
    inference = CountingInference()
    desk = PhotoDesk(load_bundle(content_dir, installed()), inference)
    assert "pose_detection" not in inference.loads   # a desk never holds the still pose stage's 70 MB
    first, again = desk.poses(astronaut), desk.poses(astronaut)
    assert inference.loads.count("pose_detection") == 2 and first
    assert np.array_equal(first[0].landmarks, again[0].landmarks)


def test_a_stills_faces_come_from_a_stage_loaded_for_the_still_and_released(astronaut: np.ndarray) -> None:
    inference = CountingInference()
    find_faces = StillFaces(inference)
    assert inference.loads == []
    first, again = find_faces(astronaut), find_faces(astronaut)
    assert inference.loads.count("face_landmark") == 2 and len(first) == 1
    assert first[0].box == again[0].box and np.array_equal(first[0].landmarks, again[0].landmarks)
