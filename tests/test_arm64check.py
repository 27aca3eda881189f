"""`make check-arm64`'s comparison (appliance.tools.arm64check) on scripted analyze outputs: what counts as the
same result (coverage, hands, gestures, poses, faces, boxes within 1 px), the line naming each difference, the
exit status; and the arm64 root's package list.  The emulated run itself is `make check-arm64` (root, minutes)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from appliance.errors import ApplianceError
from appliance.tools.arm64check import (
    BOX_TOLERANCE_PX,
    COVERAGE_TOLERANCE,
    differences,
    main,
    read_results,
    root_packages,
)
from appliance.tools.package import DEBIAN_PACKAGES


def hand(handedness: str = "Right", gesture: str = "thumb_up", box: list[float] | None = None) -> dict:
    return {"handedness": handedness, "score": 0.97, "gesture": gesture, "gesture_score": 0.9,
            "box": box or [120.5, 80.25, 64.0, 70.5], "landmarks": [[1.0, 2.0, 0.0]] * 21}


def result(path: str = "/media/thumb_up.jpg") -> dict:
    pose = {"score": 0.9, "box": [10.0, 20.0, 300.0, 400.0], "landmarks": [[1.0, 2.0, 0.0, 0.9]] * 33}
    face = {"score": 0.8, "box": [50.0, 40.0, 90.0, 95.0], "landmarks": [[1.0, 2.0, 0.0]] * 468}
    return {"path": path, "size": [640, 480], "person": {"coverage": 0.4123},
            "hands": [hand(), hand("Left", "victory", [300.0, 90.0, 60.0, 66.0])],
            "pose": pose, "poses": [pose], "faces": [face]}


def arm64_of(native: dict) -> dict:
    """The same result as the root would print it: its own path, scores and landmarks a little off."""
    arm64 = copy.deepcopy(native)
    arm64["path"] = "/var/tmp/oivis-arm64-media/" + Path(native["path"]).name
    for field in ("hands", "poses", "faces"):
        for found in arm64[field]:
            found["score"] -= 0.01
            found["landmarks"] = [[value + 0.7 for value in point] for point in found["landmarks"]]
    return arm64


def test_the_same_results_with_other_paths_scores_and_landmarks_match() -> None:
    native = [result(), result("/media/face_group.jpg")]
    assert differences(native, [arm64_of(record) for record in native]) == []


def test_boxes_within_one_pixel_match_and_beyond_it_name_the_field() -> None:
    native = result()
    arm64 = arm64_of(native)
    arm64["hands"][1]["box"][2] += BOX_TOLERANCE_PX - 0.05
    arm64["faces"][0]["box"][0] -= BOX_TOLERANCE_PX
    assert differences([native], [arm64]) == []
    arm64["hands"][1]["box"][2] += 0.6
    arm64["poses"][0]["box"][3] -= 2.5
    lines = differences([native], [arm64])
    assert len(lines) == 2
    assert lines[0].startswith("thumb_up.jpg: hands[1].box differs by 1.55 px (> 1 px)")
    assert lines[1].startswith("thumb_up.jpg: poses[0].box differs by 2.50 px")


def test_a_changed_gesture_or_handedness_is_named() -> None:
    native = result()
    arm64 = arm64_of(native)
    arm64["hands"][0]["gesture"] = "open_palm"
    arm64["hands"][1]["handedness"] = "Right"
    assert differences([native], [arm64]) == [
        "thumb_up.jpg: hands[0].gesture 'thumb_up' natively, 'open_palm' on arm64",
        "thumb_up.jpg: hands[1].handedness 'Left' natively, 'Right' on arm64",
    ]


def test_coverage_beyond_its_tolerance_is_named() -> None:
    native = result()
    arm64 = arm64_of(native)
    arm64["person"]["coverage"] = round(native["person"]["coverage"] + COVERAGE_TOLERANCE * 0.9, 4)
    assert differences([native], [arm64]) == []
    arm64["person"]["coverage"] = round(native["person"]["coverage"] + COVERAGE_TOLERANCE * 2, 4)
    (line,) = differences([native], [arm64])
    assert line.startswith("thumb_up.jpg: person.coverage 0.4123 natively, 0.4163 on arm64")


@pytest.mark.parametrize("field", ["hands", "poses", "faces"])
def test_a_missing_detection_is_named(field: str) -> None:
    native = result()
    arm64 = arm64_of(native)
    arm64[field].pop()
    (line,) = differences([native], [arm64])
    assert line == f"thumb_up.jpg: {len(native[field])} {field} natively, {len(native[field]) - 1} on arm64"


def test_errors_other_images_sizes_and_counts_are_differences() -> None:
    native = result()
    failed = {"path": "/var/tmp/thumb_up.jpg", "error": "cannot decode"}
    assert differences([native], [failed]) == ["thumb_up.jpg: arm64 could not analyse it: cannot decode"]
    assert differences([native], [arm64_of(result("/m/pose_sitting.jpg"))]) == [
        "thumb_up.jpg: the arm64 result is for '/var/tmp/oivis-arm64-media/pose_sitting.jpg', another image"]
    resized = arm64_of(native)
    resized["size"] = [480, 640]
    assert differences([native], [resized]) == ["thumb_up.jpg: size [640, 480] natively, [480, 640] on arm64"]
    assert differences([native, native], [arm64_of(native)]) == [
        "2 results natively, 1 on arm64 (the same images must be analysed)"]


def write_lines(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_compare_exits_1_with_the_difference_on_stderr_and_0_when_alike(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    native = write_lines(tmp_path / "native.jsonl", [result()])
    alike = write_lines(tmp_path / "alike.jsonl", [arm64_of(result())])
    changed = arm64_of(result())
    changed["hands"][0]["gesture"] = "fist"
    unlike = write_lines(tmp_path / "unlike.jsonl", [changed])
    assert main(["compare", str(native), str(alike)]) == 0
    out = capsys.readouterr().out
    assert "thumb_up.jpg" in out and "arm64 matches native on 1 image(s)" in out
    assert main(["compare", str(native), str(unlike)]) == 1
    assert ("arm64 differs: thumb_up.jpg: hands[0].gesture 'thumb_up' natively, 'fist' on arm64"
            in capsys.readouterr().err)


def test_an_output_that_is_not_json_lines_is_refused_with_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "arm64.jsonl"
    broken.write_text(json.dumps(result()) + "\nSegmentation fault\n")
    with pytest.raises(ApplianceError, match=r"arm64.jsonl:2: not JSON"):
        read_results(broken)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ApplianceError, match="holds no analyze result"):
        read_results(empty)


def test_the_root_gets_python3_and_every_debian_package_of_the_deb(capsys: pytest.CaptureFixture[str]) -> None:
    listed = [line.split()[0] for line in DEBIAN_PACKAGES.read_text().splitlines()
              if line.split("#", 1)[0].strip()]
    assert root_packages() == ["python3", *listed]
    assert main(["include"]) == 0
    assert capsys.readouterr().out.strip() == ",".join(["python3", *listed])
