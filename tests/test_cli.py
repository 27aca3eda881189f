"""The command line contract: JSON shapes, exit statuses and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_media import flipped_png, huge_png, person_jpeg, truncated_mp4

REPO = Path(__file__).resolve().parents[1]
STAGES = {"capture", "segmentation", "composite", "present", "total"}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_analyze_writes_json_lines_and_masks_and_reports_bad_inputs(astronaut_file: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff garbage")
    masks = tmp_path / "masks"
    result = cli("analyze", str(astronaut_file), str(corrupt), "--json", "--mask-out", str(masks))
    assert result.returncode == 1
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["path"] == str(astronaut_file) and first["size"] == [512, 512]
    assert 0.2 < first["person"]["coverage"] < 0.9
    mask = cv2.imread(first["person"]["mask"], cv2.IMREAD_UNCHANGED)
    assert mask.shape == (512, 512) and mask.dtype.name == "uint8"
    assert first["person"]["mask"] == str(masks / "astronaut.png")
    assert second == {"path": str(corrupt),
                      "error": f"cannot decode image {corrupt}: truncated JPEG (the file ends inside a marker segment)"}


def test_analyze_refuses_cut_rotted_and_oversized_images_in_json_lines_by_default(
        astronaut_file: Path, astronaut: np.ndarray, tmp_path: Path) -> None:
    cut = person_jpeg(tmp_path / "cut.jpg", astronaut, cut_at=1000)
    flipped = flipped_png(tmp_path / "flipped.png", astronaut)
    huge = huge_png(tmp_path / "huge.png")
    result = cli("analyze", str(cut), str(astronaut_file), str(flipped), str(huge))
    assert result.returncode == 1
    cut_record, good, flipped_record, huge_record = (json.loads(line) for line in result.stdout.splitlines())
    assert cut_record == {"path": str(cut), "error": f"cannot decode image {cut}: truncated JPEG "
                          "(the file ends inside the image data, with no end-of-image marker)"}
    assert good["size"] == [512, 512] and 0.2 < good["person"]["coverage"] < 0.9
    assert flipped_record["path"] == str(flipped) and "corrupt PNG (bad CRC" in flipped_record["error"]
    assert huge_record["path"] == str(huge) and "20000x20000" in huge_record["error"]
    summary = 'error: 3 of 4 input(s) could not be analysed (see their "error")'
    assert [line for line in result.stderr.splitlines() if "could not be analysed" in line] == [summary]
    assert error_lines(result.stderr) == [summary]


def test_analyze_takes_the_media_limits_from_the_config(astronaut_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text("[media]\nimage_side_px = 500\n")
    result = cli("analyze", str(astronaut_file), "--json", "--config", str(config))
    assert result.returncode == 1
    (record,) = (json.loads(line) for line in result.stdout.splitlines())
    assert "512x512 (0.3 megapixels): over the limit of 40 megapixels and 500 px a side" in record["error"]


def test_analyze_help_says_json_lines_is_the_default() -> None:
    result = cli("analyze", "--help")
    assert result.returncode == 0
    assert "JSON Lines, one object per input: the default" in " ".join(result.stdout.split())


def test_analyze_matches_the_reference_mask_file(media: Path, tmp_path: Path) -> None:
    result = cli("analyze", str(media / "portrait_white_bg.png"), "--json", "--mask-out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    ours = cv2.imread(json.loads(result.stdout)["person"]["mask"], cv2.IMREAD_GRAYSCALE) >= 128
    theirs = cv2.imread(str(media / "mediapipe_reference/masks/portrait_white_bg.png.selfie0.png"),
                        cv2.IMREAD_GRAYSCALE) >= 128
    assert (ours & theirs).sum() / (ours | theirs).sum() >= 0.97


def test_bench_json_has_the_contract_fields(astronaut_file: Path) -> None:
    result = cli("bench", str(astronaut_file), "--frames", "5", "--json", "--screen", "960x540")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames"] == 5 and report["fps"] > 0 and report["backend"] == "litert"
    assert STAGES <= set(report["stages"])
    for stage in STAGES:
        assert 0 < report["stages"][stage]["p50"] <= report["stages"][stage]["p95"]
    assert report["peak_rss_mb"] > 50
    assert report["cpu_ms_per_frame"] > 0 and report["profile"] == "full"   # auto on x86: the full profile
    assert STAGES - {"total"} <= set(report["cpu_stages"]) and report["cpu_stages"]["segmentation"]["p50"] > 0


def test_bench_cores_keeps_the_frame_path_to_one_core_with_one_thread(astronaut_file: Path) -> None:
    result = cli("bench", str(astronaut_file), "--frames", "3", "--json", "--screen", "640x360", "--cores", "1")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cores"] == sorted(os.sched_getaffinity(0))[:1] and report["threads"] == 1
    too_many = cli("bench", str(astronaut_file), "--frames", "1", "--cores", str(len(os.sched_getaffinity(0)) + 1))
    assert too_many.returncode != 0 and "core(s) here" in too_many.stderr


def test_bench_composites_on_the_cpu_headless_and_on_the_gpu_when_asked(astronaut_file: Path) -> None:
    reports = {}
    for compositor in ("auto", "gpu"):
        result = cli("bench", str(astronaut_file), "--frames", "3", "--json", "--screen", "640x360",
                     "--compositor", compositor)
        assert result.returncode == 0, result.stderr
        reports[compositor] = json.loads(result.stdout)
    assert (reports["auto"]["compositor"], reports["auto"]["renderer"]) == ("cpu", "numpy")
    assert (reports["gpu"]["compositor"], reports["gpu"]["renderer"]) == ("gpu", "software")
    assert reports["gpu"]["stages"]["composite"]["p50"] > 0
    wrong = cli("bench", str(astronaut_file), "--frames", "1", "--compositor", "metal")
    assert wrong.returncode != 0 and "compositor 'metal'" in wrong.stderr


def test_bench_campaign_runs_every_model_of_the_campaign_and_its_first_photo(astronaut_file: Path) -> None:
    result = cli("bench", str(astronaut_file), "--frames", "2", "--json", "--screen", "640x360", "--models", "campaign")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["models"] == ["segmentation", "hands", "pose", "face", "age"]
    assert report["peak_rss_mb"] > 200   # the style models of the first photo loaded beside perception's


def test_bench_on_the_devset_video(media: Path) -> None:
    result = cli("bench", str(media / "kiosk_fist_thumbup_720p.mp4"), "--frames", "20", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["source"].endswith("kiosk_fist_thumbup_720p.mp4") and report["screen"] == [1920, 1080]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--headless", "--source", "video:/nonexistent/clip.mp4", "--frames", "3"),
         "source.uri: /nonexistent/clip.mp4 does not exist"),
        (("bench", "/nonexistent/clip.mp4", "--frames", "3"), "video not found: /nonexistent/clip.mp4"),
        (("bench", "camera:63", "--frames", "3"), "no camera at /dev/video63"),
        (("bench", "rtsp://cam/stream", "--frames", "3"), "unknown source 'rtsp://cam/stream'"),
        (("run", "--headless", "--backend", "rknn", "--frames", "3"),
         "backend 'rknn' cannot be used here: ModuleNotFoundError"),
    ],
)
def test_bad_input_is_one_clear_line_and_a_failure(args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert message in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [("run", "--headless", "--frames", "3", "--source"), ("bench", "--frames", "3")])
def test_run_and_bench_read_a_bare_path_as_its_uri(command: tuple[str, ...], astronaut: np.ndarray,
                                                   tmp_path: Path) -> None:
    """One source syntax: ``clip.mp4`` is ``video:clip.mp4`` and ``still.jpg`` is ``image:still.jpg``
    for run as for bench (here on files that fail, so each answer is one line to compare)."""
    cut = person_jpeg(tmp_path / "cut.jpg", astronaut, cut_at=1000)
    for bare, uri, reason in (("/nonexistent/clip.mp4", "video:/nonexistent/clip.mp4", "/nonexistent/clip.mp4"),
                              (str(cut), f"image:{cut}", f"cannot decode image {cut}: truncated JPEG")):
        by_path, by_uri = cli(*command, bare), cli(*command, uri)
        assert by_path.returncode == by_uri.returncode == 1
        (line,) = error_lines(by_path.stderr)
        assert error_lines(by_uri.stderr) == [line] and reason in line and "unknown source" not in line


def test_bench_refuses_a_cut_image_and_a_video_that_ends_early(astronaut: np.ndarray, tmp_path: Path) -> None:
    cut = person_jpeg(tmp_path / "cut.jpg", astronaut, cut_at=1000)
    result = cli("bench", str(cut), "--frames", "3", "--screen", "320x180")
    assert result.returncode == 1
    assert error_lines(result.stderr) == [f"error: cannot decode image {cut}: truncated JPEG "
                                          "(the file ends inside the image data, with no end-of-image marker)"]
    video = truncated_mp4(tmp_path / "cut.mp4", 50)
    result = cli("bench", str(video), "--frames", "60", "--screen", "320x180")
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"error: video {video} ends after ") and line.endswith(" of its 50 frames (truncated or corrupt)")


def test_missing_model_names_the_fix(astronaut_file: Path, tmp_path: Path) -> None:
    shutil.copy(REPO / "models" / "manifest.toml", tmp_path / "manifest.toml")
    result = cli("analyze", str(astronaut_file), "--json", env={"OIVIS_MODELS_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert error_lines(result.stderr) == [
        f"error: model selfie_general is missing ({tmp_path}/cache/selfie_segmentation.tflite); "
        "run `make models` to fetch it"]


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text('[source]\nuri = "demo"\nframerate = 30\n[inference]\nthreads = 0\n')
    result = cli("run", "--headless", "--config", str(config), "--frames", "1")
    assert result.returncode == 1
    (line,) = error_lines(result.stderr)
    assert "source.framerate: unknown key" in line
    assert "inference.threads: Input should be greater than or equal to 1" in line


def test_models_verify_passes_on_a_fetched_cache() -> None:
    result = cli("models", "verify")
    assert result.returncode == 0 and "verified" in result.stdout


def test_analyze_reports_hands_with_gestures_in_the_contract_shape(media: Path) -> None:
    result = cli("analyze", str(media / "victory_closeup.jpg"), str(media / "thumb_up.jpg"), "--json")
    assert result.returncode == 0, result.stderr
    victory, thumb = (json.loads(line) for line in result.stdout.splitlines())
    (hand,) = victory["hands"]
    assert hand["gesture"] == "scissors" and 0 < hand["gesture_score"] <= 1
    assert hand["handedness"] in ("Left", "Right") and 0.5 < hand["score"] <= 1
    assert len(hand["box"]) == 4 and len(hand["landmarks"]) == 21
    assert all(len(point) == 3 for point in hand["landmarks"])
    x, y, w, h = hand["box"]
    assert 0 <= x and x + w <= 750 and 0 <= y and y + h <= 1000
    assert [h["gesture"] for h in thumb["hands"]] == ["thumb_up"]


@pytest.fixture()
def gesture_set(media: Path, tmp_path: Path) -> Path:
    """A labelled folder built from the devset: fist and thumbs-up frames of the kiosk video, two stills."""
    for label in ("rock", "thumb_up", "scissors"):
        (tmp_path / label).mkdir()
    capture = cv2.VideoCapture(str(media / "kiosk_fist_thumbup_720p.mp4"))
    for index in range(195):
        ok, frame = capture.read()
        if 32 <= index <= 52 and index % 4 == 0:
            cv2.imwrite(str(tmp_path / "rock" / f"{index}.jpg"), frame)
        if 70 <= index <= 190 and index % 20 == 0:
            cv2.imwrite(str(tmp_path / "thumb_up" / f"{index}.jpg"), frame)
    shutil.copy(media / "thumb_up.jpg", tmp_path / "thumb_up")
    shutil.copy(media / "victory_closeup.jpg", tmp_path / "scissors")
    return tmp_path


def test_eval_gestures_reports_recall_accuracy_and_confusion(gesture_set: Path) -> None:
    result = cli("eval", "gestures", str(gesture_set), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == 6 + 7 + 1
    assert report["detection_recall"] == 1.0
    assert report["accuracy"] >= 0.85
    assert report["confusion"]["scissors"] == {"scissors": 1}
    assert sum(report["confusion"]["rock"].values()) == 6


def test_eval_with_an_unreadable_image_reports_it_and_fails(tmp_path: Path) -> None:
    (tmp_path / "rock").mkdir()
    (tmp_path / "rock" / "broken.jpg").write_bytes(b"not a jpeg")
    result = cli("eval", "gestures", str(tmp_path), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"][0]["path"].endswith("broken.jpg")


def test_eval_refuses_an_unknown_label_folder(tmp_path: Path) -> None:
    (tmp_path / "fist").mkdir()
    result = cli("eval", "gestures", str(tmp_path))
    assert result.returncode == 1
    assert error_lines(result.stderr)[0].startswith("error: unknown label folder(s) fist")


def test_masks_of_inputs_with_the_same_name_do_not_overwrite_each_other(astronaut_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "b" / "astronaut.jpg"
    other.parent.mkdir()
    cv2.imwrite(str(other), cv2.flip(cv2.imread(str(astronaut_file)), 1))
    result = cli("analyze", str(astronaut_file), str(other), "--json", "--mask-out", str(tmp_path / "masks"))
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line)["person"]["mask"] for line in result.stdout.splitlines())
    assert (first, second) == (str(tmp_path / "masks" / "astronaut.png"), str(tmp_path / "masks" / "astronaut-2.png"))
    assert not np.array_equal(cv2.imread(first), cv2.imread(second))
