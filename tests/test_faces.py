"""Faces: the two detectors and the mesh on real photos, a face tracked over video at one mesh a frame, face on
demand in the scheduler, the ``faces`` of ``analyze`` and the ``face`` stage of ``bench``.

The models are the real ones; inferences are counted through a wrapper around each loaded runner.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from test_cli import cli
from test_hands import KIOSK_VIDEO, CountingInference

from appliance.bench import needs_of
from appliance.config import Config
from appliance.inference.backend import Inference
from appliance.perception.face import EYES_OPEN, LANDMARKS, NOSE_TIP, Face
from appliance.perception.face_detection import (
    FULL_RANGE,
    LEFT_EYE,
    RIGHT_EYE,
    SHORT_RANGE,
    FaceDetector,
    anchors,
)
from appliance.perception.face_tracker import LIVE_WINDOWS, FaceSettings
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.palm import full_frame_window
from appliance.perception.pipeline import Perceiver
from appliance.perception.stages import FaceStage, SegmentationStage
from appliance.sources.base import Frame

FACE_ONLY = Needs(hands=0, face=EVERY_FRAME)
NO_FACE = Needs(hands=0)
#: The astronaut's eye centres (the subject's right eye, on the image's left, then her left), measured once on the
#: image (between the eye corners of the 468-point mesh; dlib's 5-point model puts them within 2 px of these).
ASTRONAUT_EYES = np.array([[204.0, 102.6], [247.1, 104.7]])
ASTRONAUT_NOSE_TIP = np.array([224.1, 131.2])


@pytest.fixture(scope="module")
def still(inference: Inference) -> FaceStage:
    return FaceStage(inference, still=True)


def test_the_anchors_are_the_reference_layouts() -> None:
    short, full = anchors(SHORT_RANGE), anchors(FULL_RANGE)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    assert np.allclose(short[0], [0.5 / 16, 0.5 / 16]) and np.allclose(short[1], short[0])
    assert np.allclose(short[2 * 16 * 16], [0.5 / 8, 0.5 / 8]) and np.allclose(short[-1], [7.5 / 8, 7.5 / 8])
    assert np.allclose(full[0], [0.5 / 48, 0.5 / 48]) and np.allclose(full[1], [1.5 / 48, 0.5 / 48])


@pytest.mark.parametrize("model", [SHORT_RANGE, FULL_RANGE], ids=["short", "full"])
def test_each_detector_finds_the_astronaut_with_its_keypoints_on_her_eyes(inference: Inference, astronaut: np.ndarray,
                                                                          model) -> None:
    detector = FaceDetector(inference.load(model.name), model)
    (face,) = detector.detect(astronaut, full_frame_window(512, 512))
    assert face.score > 0.85
    x_min, y_min, x_max, y_max = face.box
    assert 160 < x_min < 190 and 260 < x_max < 290 and 60 < y_min < 95 and 160 < y_max < 190
    eyes = face.keypoints[[RIGHT_EYE, LEFT_EYE]]
    assert np.abs(eyes - ASTRONAUT_EYES).max() < 6, eyes


def test_the_mesh_sits_on_the_astronauts_face(still: FaceStage, astronaut: np.ndarray) -> None:
    (face,) = still.find(astronaut, None)
    assert face.landmarks.shape == (LANDMARKS, 3) and face.landmarks.dtype == np.float32
    assert face.score > 0.85 and face.track_id == 1
    x, y, w, h = face.box
    nose = face.landmarks[NOSE_TIP, :2]
    assert x < nose[0] < x + w and y < nose[1] < y + h
    assert np.linalg.norm(nose - ASTRONAUT_NOSE_TIP) < 4
    assert np.abs(np.array(face.eyes()) - ASTRONAUT_EYES).max() < 4
    assert 85 < w < 105 and 95 < h < 115   # forehead to chin, ear to ear at this size
    assert 40 < face.interocular() < 46


def test_both_children_are_found_in_the_group_photo(media: Path, still: FaceStage) -> None:
    image = cv2.imread(str(media / "face_group.jpg"))
    faces = still.find(image, None)
    assert len(faces) == 2
    assert faces == sorted(faces, key=lambda face: -face.area)
    centres = sorted(face.box[0] + face.box[2] / 2 for face in faces)
    assert centres[0] < 450 < 700 < centres[1]   # the boy on the left, the girl on the right
    for face in faces:
        right, left = face.eyes()
        assert right[0] < left[0] and abs(right[1] - left[1]) < 0.2 * face.interocular()   # upright, facing us
        x, y, w, h = face.box
        assert y < face.landmarks[NOSE_TIP, 1] < y + h and w > 300


@pytest.mark.parametrize(("name", "faces"), [("portrait_white_bg.png", 1), ("face_group.jpg", 2)])
def test_faces_too_small_for_the_whole_frame_are_found_at_the_top_of_the_person_mask(
        media: Path, inference: Inference, still: FaceStage, name: str, faces: int) -> None:
    """The photo shrunk to an eighth in a 1280x720 frame (faces 30–50 px: shoppers a few metres away)."""
    small = cv2.resize(cv2.imread(str(media / name)), None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)
    frame = np.full((720, 1280, 3), 120, np.uint8)
    height, width = small.shape[:2]
    frame[720 - height:, 100:100 + width] = small
    assert still.find(frame, None) == []
    found = still.find(frame, SegmentationStage(inference, still=True).run(frame))
    assert len(found) == faces
    for face in found:
        x, y, w, h = face.box
        assert 100 <= x and x + w <= 100 + width and 720 - height <= y and 25 < w < 60
        right, left = face.eyes()
        assert right[0] < left[0] < x + w


@pytest.mark.parametrize("picture", ["coffee", "rocket"])
def test_no_face_where_there_is_nobody(still: FaceStage, picture: str) -> None:
    image = cv2.cvtColor(getattr(data, picture)(), cv2.COLOR_RGB2BGR)
    assert still.find(image, None) == []
    assert still.find(np.full((480, 640, 3), 128, np.uint8), None) == []


def test_the_kiosk_video_keeps_one_track_at_one_mesh_a_frame(media: Path) -> None:
    counted = CountingInference()
    perceiver = Perceiver(counted, face=FaceSettings(max_faces=1))
    capture = cv2.VideoCapture(str(media / KIOSK_VIDEO))
    ids, meshes, detections = [], [], []
    for index in range(90):
        ok, image = capture.read()
        assert ok
        result = perceiver.process(Frame(image, index, index / 25.0), FACE_ONLY)
        assert "face" in result.ran and "face" in result.timings_ms
        ids.append(tuple(face.track_id for face in result.faces))
        meshes.append(counted.calls("face_landmark"))
        detections.append(counted.calls("face_detection_full_range_sparse"))
    capture.release()
    assert set(ids) == {(1,)}
    assert meshes == list(range(1, 91))                          # one mesh a frame, the first from the detection
    # the detector on the first frame only (the whole frame and her head), then all faces wanted are tracked
    assert 1 <= detections[0] <= 1 + LIVE_WINDOWS and detections == [detections[0]] * 90
    assert counted.calls("face_detection_short_range") == 0


def test_with_room_for_more_faces_the_detector_only_rechecks(media: Path) -> None:
    counted = CountingInference()
    perceiver = Perceiver(counted, face=FaceSettings(max_faces=4, recheck_every=15))
    capture = cv2.VideoCapture(str(media / KIOSK_VIDEO))
    detector_frames = []
    for index in range(45):
        ok, image = capture.read()
        assert ok
        before = counted.calls("face_detection_full_range_sparse")
        result = perceiver.process(Frame(image, index, index / 25.0), FACE_ONLY)
        assert [face.track_id for face in result.faces] == [1]
        if counted.calls("face_detection_full_range_sparse") > before:
            detector_frames.append(index)
    capture.release()
    assert counted.calls("face_landmark") == 45                  # the rechecks find her again: no second mesh
    assert detector_frames == [0, 15, 30]


def test_face_runs_only_when_asked_at_its_rate_and_forgets_when_off(astronaut: np.ndarray) -> None:
    counted = CountingInference()
    perceiver = Perceiver(counted)
    off = [perceiver.process(Frame(astronaut, index, index / 30.0), NO_FACE) for index in range(2)]
    assert "face_landmark" not in counted.runners and all(result.faces == () for result in off)
    at_ten = [perceiver.process(Frame(astronaut, index, index / 30.0), Needs(hands=0, face=10))
              for index in range(2, 14)]
    assert [result.index for result in at_ten if "face" in result.ran] == [2, 5, 8, 11]
    assert counted.calls("face_landmark") == 4
    assert all(len(result.faces) == 1 for result in at_ten)      # between runs the last faces stay
    first_id = at_ten[-1].faces[0].track_id
    again_off = perceiver.process(Frame(astronaut, 14, 14 / 30.0), NO_FACE)
    assert again_off.faces == () and "face" not in again_off.ran and counted.calls("face_landmark") == 4
    back = perceiver.process(Frame(astronaut, 90, 3.0), FACE_ONLY)
    assert len(back.faces) == 1 and back.faces[0].track_id != first_id


def test_parallel_lanes_give_the_sequential_faces_on_a_still_scene(astronaut: np.ndarray) -> None:
    """On an unchanging image the previous frame's mask is this frame's: parallel = sequential."""
    inference = Inference("litert")
    sequential, parallel = Perceiver(inference), Perceiver(inference, parallel=True)
    try:
        for index in range(3):
            frame = Frame(astronaut, index, index / 30.0)
            one, other = sequential.process(frame, FACE_ONLY), parallel.process(frame, FACE_ONLY)
            assert "face" in one.ran and "face" in other.ran and "face" in other.timings_ms
            assert [face.track_id for face in one.faces] == [face.track_id for face in other.faces] == [1]
            assert np.allclose(one.faces[0].landmarks, other.faces[0].landmarks, atol=0.01)
    finally:
        parallel.close()


def test_analyze_lists_faces_per_contract(astronaut_file: Path, tmp_path: Path) -> None:
    nobody = tmp_path / "coffee.png"
    cv2.imwrite(str(nobody), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    result = cli("analyze", str(astronaut_file), str(nobody), "--json")
    assert result.returncode == 0, result.stderr
    astronaut, coffee = (json.loads(line) for line in result.stdout.splitlines())
    assert coffee["faces"] == []
    (face,) = astronaut["faces"]
    assert set(face) == {"score", "box", "landmarks"}              # no age or gender without the estimator
    assert 0.85 < face["score"] <= 1 and len(face["box"]) == 4
    assert len(face["landmarks"]) == LANDMARKS and all(len(point) == 3 for point in face["landmarks"])
    x, y, w, h = face["box"]
    nose_x, nose_y, _ = face["landmarks"][NOSE_TIP]
    assert x < nose_x < x + w and y < nose_y < y + h


def test_bench_reports_a_face_stage_at_the_rate_asked(astronaut_file: Path) -> None:
    assert needs_of("segmentation,hands,face@10") == Needs(hands=EVERY_FRAME, face=10)
    result = cli("bench", str(astronaut_file), "--frames", "3", "--json", "--screen", "320x180",
                 "--models", "segmentation,hands,face")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["models"] == ["segmentation", "hands", "face"]
    assert {"segmentation", "hands", "face", "total"} <= set(report["stages"])
    assert report["faces"] == {"p50": 1.0, "max": 1}


def test_the_face_table_configures_the_tracker() -> None:
    config = Config.model_validate({"face": {"max_faces": 2, "detector": "short", "recheck_every": 5, "beta": 10}})
    settings = config.face.settings()
    assert (settings.max_faces, settings.detector, settings.recheck_every, settings.smoothing.beta) == \
        (2, "short", 5, 10)
    with pytest.raises(ValueError, match="detector"):
        Config.model_validate({"face": {"detector": "far"}})


def test_a_face_box_bounds_its_landmarks() -> None:
    landmarks = np.zeros((LANDMARKS, 3), np.float32)
    landmarks[:, 0] = np.linspace(10, 50, LANDMARKS)
    landmarks[:, 1] = np.linspace(20, 80, LANDMARKS)
    face = Face(0.9, landmarks)
    assert face.box == (10.0, 20.0, 40.0, 60.0) and face.area == 2400.0


def test_eye_openness_tells_open_eyes_from_a_laughing_squint(still: FaceStage, astronaut: np.ndarray,
                                                             media: Path) -> None:
    [open_eyes] = still.find(astronaut, None)
    assert open_eyes.eye_openness() > 0.25 >= EYES_OPEN
    [laughing] = still.find(cv2.imread(str(media / "pose_sitting.jpg")), None)
    assert laughing.eye_openness() < EYES_OPEN, "one of her eyes is shut in a laugh"


def test_the_photo_is_the_sharpest_frame_with_eyes_open(still: FaceStage, astronaut: np.ndarray) -> None:
    """The booth's best frame: a sharper frame with a blink loses to one with the eyes open."""
    from appliance.experience.api import Perception
    from appliance.kiosk.keepsakes import best_frame

    [face] = still.find(astronaut, None)
    shut = face.landmarks.copy()
    for upper, lower in ((159, 145), (158, 153), (386, 374), (385, 380)):
        shut[upper, :2] = shut[lower, :2] = (shut[upper, :2] + shut[lower, :2]) / 2
    blink = Face(face.score, shut, face.track_id)
    alpha = np.zeros(astronaut.shape[:2], np.uint8)
    alpha[100:, 100:400] = 255
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 2)
    frames = [Perception(Frame(astronaut, 0), alpha, 0.5, faces=(blink,)),
              Perception(Frame(blurred, 1), alpha, 0.5, faces=(face,))]
    assert best_frame(frames).frame.index == 1
    assert best_frame([Perception(Frame(astronaut, 0), alpha, 0.5), frames[1]]).frame.index == 0, \
        "a frame without faces is not judged on eyes"
