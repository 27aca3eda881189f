"""Faces against the reference: the same faces found, the same boxes, the same mesh.

The reference is MediaPipe 0.10.21's legacy ``face_detection`` (short and full range)
and ``face_mesh`` (static images, 468 points), run by models/reference/face_reference.py
in the dev-only .venv-ref.  With .venv-ref here the reference is run afresh (and its
answers checked against the recording); without it, its answers recorded by
``models/reference/compare_face.py --record`` (models/reference/face_reference.json)
stand in.  The stills are the devset's and scikit-image's astronaut.

Thresholds, against what was measured (2026-11-30): each detector finds exactly the
reference's faces, boxes at IoU ≥ 0.98 (measured ≥ 0.990).  The mesh, on the
region the reference's pipeline uses (the short-range detection's), has a median
error over the faces under 0.005 inter-ocular distances (measured 0.0006; 0.02 on
pose_sitting.jpg's turned face, whose short-range box is the one at IoU 0.990) and
none above 0.03.  The mesh model corrects much of a misplaced region by itself, so
the median is what catches a broken port: a region 10% too small gives a median of
0.018, one turned 5° of 0.013.  The still path (both detectors, the more confident
detection's region) finds the reference's faces; its meshes match the reference's
except on pose_sitting.jpg, where the full-range box (score 0.87 against 0.61) gives
a mesh on her face and the reference's a mesh over face and neck (0.35 apart).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

from appliance.inference.backend import Inference

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "models" / "reference"))
import compare_face  # noqa: E402  (models/reference: the measurements the README reports)

REFERENCE_PYTHON = REPO / ".venv-ref" / "bin" / "python"
MIN_IOU = 0.98
MEDIAN_ERROR = 0.005
MAX_ERROR = 0.03
#: Where the still path's mesh knowingly differs from the reference's (see the module docstring).
OWN_REGION = {"pose_sitting.jpg"}


@pytest.fixture(scope="module")
def paths(media: Path) -> dict[str, Path]:
    return compare_face.image_paths(media)


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(compare_face.RECORDED.read_text())["images"]


@pytest.fixture(scope="module")
def reference(paths: dict[str, Path], recorded: dict) -> dict:
    return compare_face.reference(paths, REFERENCE_PYTHON) if REFERENCE_PYTHON.exists() else recorded


@pytest.fixture(scope="module")
def report(paths: dict[str, Path], inference: Inference, reference: dict) -> dict:
    return compare_face.compare(compare_face.ours(paths, inference), reference)


def test_the_recording_is_what_the_reference_answers(paths: dict[str, Path], recorded: dict) -> None:
    if not REFERENCE_PYTHON.exists():
        pytest.skip("no .venv-ref here (make .venv-ref/.installed): the recording stands in")
    live = compare_face.reference(paths, REFERENCE_PYTHON)
    assert set(live) == set(recorded)
    for name, entry in live.items():
        for label in ("short", "full"):
            assert len(entry[label]) == len(recorded[name][label]), (name, label)
            for now, then in zip(entry[label], recorded[name][label], strict=True):
                assert np.allclose(now["box"], then["box"], atol=0.05), (name, label)
        assert len(entry["mesh"]) == len(recorded[name]["mesh"]), name
        for now, then in zip(entry["mesh"], recorded[name]["mesh"], strict=True):
            assert np.allclose(now["landmarks"], then["landmarks"], atol=0.05), name


def test_each_detector_finds_the_reference_faces_in_the_same_boxes(report: dict) -> None:
    assert sum(row["short"]["reference"] for row in report.values()) >= 5
    for name, row in report.items():
        for label in ("short", "full"):
            cell = row[label]
            assert cell["ours"] == cell["reference"], (name, label, cell)
            assert cell["iou"] is None or cell["iou"] >= MIN_IOU, (name, label, cell)


def test_the_mesh_on_the_reference_region_is_the_reference_mesh(report: dict) -> None:
    errors = []
    for name, row in report.items():
        cell = row["mesh_short"]
        assert cell["ours"] == cell["reference"] and len(cell["errors"]) == cell["reference"], (name, cell)
        errors += cell["errors"]
    assert statistics.median(errors) < MEDIAN_ERROR and max(errors) < MAX_ERROR, errors


def test_the_still_path_finds_the_reference_faces_and_meshes(report: dict) -> None:
    for name, row in report.items():
        cell = row["mesh"]
        assert cell["ours"] == cell["reference"] and len(cell["errors"]) == cell["reference"], (name, cell)
        if name not in OWN_REGION:
            assert all(error < MEDIAN_ERROR for error in cell["errors"]), (name, cell)
