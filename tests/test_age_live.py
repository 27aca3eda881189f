"""Age guesses in live perception: smoothed per track, at the rate asked, gender only when asked, nothing logged."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from appliance.analyze import analyze
from appliance.inference.backend import BackendOptions, Inference
from appliance.perception.age import AgeGuess
from appliance.perception.age_tracker import AgeTracks, smoothed
from appliance.perception.needs import EVERY_FRAME, Needs
from appliance.perception.pipeline import Perceiver
from appliance.sources.base import Frame

ROOT = Path(__file__).resolve().parent.parent
AGE = Needs(hands=0, face=EVERY_FRAME, age=EVERY_FRAME)
AGE_AND_GENDER = Needs(hands=0, face=EVERY_FRAME, age=EVERY_FRAME, gender=True)


def guess(age: float, gender: str | None = None, score: float | None = None) -> AgeGuess:
    return AgeGuess(age, 0.3, gender, score)


def test_a_tracks_age_is_the_median_of_its_last_guesses() -> None:
    tracks = AgeTracks(window=5)
    for age in (30.0, 31.0, 29.0, 70.0, 30.5):   # one wild guess (a turned head) moves nothing
        tracks.add(7, guess(age))
    estimate = tracks.estimate(7)
    assert estimate is not None and estimate.age == 30.5 and estimate.band == "25-35" and estimate.guesses == 5
    for age in (8.0, 9.0, 8.5):                  # the window slides: the newest five are 70, 30.5, 8, 9, 8.5
        tracks.add(7, guess(age))
    estimate = tracks.estimate(7)
    assert estimate is not None and estimate.age == 9.0 and estimate.band == "kid" and estimate.guesses == 5


def test_tracks_are_smoothed_apart_and_forgotten_when_gone() -> None:
    tracks = AgeTracks()
    tracks.add(1, guess(40.0))
    tracks.add(2, guess(15.0))
    assert (tracks.estimate(1).band, tracks.estimate(2).band) == ("35-45", "teen")
    tracks.keep([2])
    assert tracks.estimate(1) is None and len(tracks) == 1
    assert tracks.estimate(3) is None


def test_gender_is_the_mean_probability_over_the_guesses_that_have_one() -> None:
    estimate = smoothed([guess(30, "male", 0.9), guess(30, "female", 0.6), guess(30, "male", 0.7), guess(30)])
    assert estimate.gender == "male" and estimate.gender_score == pytest.approx((0.9 + 0.4 + 0.7) / 3)
    assert smoothed([guess(30, "female", 0.8)]).gender == "female"
    assert (smoothed([guess(30)]).gender, smoothed([guess(30)]).gender_score) == (None, None)


def test_an_estimate_withholds_its_values_from_its_repr() -> None:
    estimate = smoothed([guess(33.0, "female", 0.87)])
    text = repr(estimate) + str(estimate)
    assert "33" not in text and "female" not in text and "30-40" not in text


def test_age_needs_face_and_gender_needs_age() -> None:
    with pytest.raises(ValueError, match="face must be on"):
        Needs(age=3)
    with pytest.raises(ValueError, match="age must be on"):
        Needs(face=10, gender=True)
    joined = Needs(face=10, age=3, gender=True).union(Needs(hands=EVERY_FRAME))
    assert (joined.age, joined.gender, joined.face) == (3, True, 10)
    assert Needs(face=10, age=3).describe().endswith("face 10/s, age 3/s")


def test_the_astronaut_is_guessed_once_per_age_run_smoothed_and_without_gender(astronaut: np.ndarray) -> None:
    inference = Inference("auto", BackendOptions(threads=1, soc=None))
    perceiver = Perceiver(inference)
    needs = Needs(hands=0, face=EVERY_FRAME, age=5)
    runs = 0
    for index in range(50):                     # two seconds at 25 fps: ten age runs at 5 a second
        result = perceiver.process(Frame(astronaut, index, index / 25.0), needs)
        runs += "age" in result.ran
        (face,) = result.faces
        assert face.age is not None and face.age.guesses == min(runs, 9)   # the window keeps nine
    assert runs == 10
    assert face.age.band in ("25-35", "30-40") and (face.age.gender, face.age.gender_score) == (None, None)
    assert "gender" not in inference.chosen                 # gender not asked: its model never loaded
    with_gender = perceiver.process(Frame(astronaut, 50, 2.0), AGE_AND_GENDER)
    assert with_gender.faces[0].age.gender == "female" and "gender" in inference.chosen
    off = perceiver.process(Frame(astronaut, 51, 2.04), Needs(hands=0, face=EVERY_FRAME))
    assert off.faces[0].age is None and "age" not in off.ran
    again = perceiver.process(Frame(astronaut, 52, 2.08), AGE)
    assert again.faces[0].age.guesses == 1      # switched off, every guess was forgotten


def test_age_runs_only_where_face_ran_on_that_frames_raw_mesh(astronaut: np.ndarray) -> None:
    """Face at 10 a second, age every frame at 25 fps: age waits for face's frames; the shopper moving, its
    guess comes from the mesh of the frame it runs on as the model gave it, not from the smoothed one."""
    perceiver = Perceiver(Inference("auto", BackendOptions(threads=1, soc=None)))
    faces_only, both = Needs(hands=0, face=10), Needs(hands=0, face=10, age=EVERY_FRAME)
    ran: list[tuple[str, ...]] = []
    for index in range(30):
        moved = np.roll(astronaut, 6 * index, axis=1)            # walking across: the smoothed mesh lags
        result = perceiver.process(Frame(moved, index, index / 25.0), both if index >= 20 else faces_only)
        ran.append(result.ran)
        if "age" in result.ran and result.faces[0].age.guesses == 1:
            assert perceiver.face is not None and perceiver.face.tracker is not None
            (raw,) = perceiver.face.tracker.raw_faces
            estimator = perceiver.age.estimator
            assert result.faces[0].age.age == estimator.estimate(moved, raw.landmarks, False).age
            assert result.faces[0].age.age != estimator.estimate(moved, result.faces[0].landmarks, False).age
    aged = [names for names in ran[20:] if "age" in names]
    assert aged and all("face" in names for names in aged)
    assert any("face" not in names for names in ran[20:])         # frames without face had no age either


def test_nobody_in_front_leaves_no_guess_behind(astronaut: np.ndarray) -> None:
    perceiver = Perceiver(Inference("auto", BackendOptions(threads=1, soc=None)))
    for index in range(3):
        perceiver.process(Frame(astronaut, index, index / 25.0), AGE)
    assert perceiver.age is not None and len(perceiver.age.tracks) == 1
    empty = np.full_like(astronaut, 128)
    for index in range(3, 40):
        result = perceiver.process(Frame(empty, index, index / 25.0), AGE)
    assert result.faces == () and len(perceiver.age.tracks) == 0


def test_no_log_line_says_a_faces_age_or_gender(astronaut: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        perceiver = Perceiver(Inference("auto", BackendOptions(threads=1, soc=None)))
        for index in range(6):
            result = perceiver.process(Frame(astronaut, index, index / 25.0), AGE_AND_GENDER)
        text = repr(result)
    estimate = result.faces[0].age
    assert estimate is not None and estimate.gender is not None
    said = "\n".join(record.getMessage() for record in caplog.records) + text
    assert not re.search(rf"\b{round(estimate.age)}\b|{re.escape(f'{estimate.age:.1f}')}|\bmale\b|female|"
                         rf"{re.escape(estimate.band)}", said)   # escaped: "29.7" is not "2967" of a landmark


def test_analyze_gives_age_and_gender_only_when_enabled(astronaut_file: Path, tmp_path: Path) -> None:
    off = Inference("auto", BackendOptions(threads=1, soc=None))
    out = io.StringIO()
    assert analyze([astronaut_file], off, None, out) == 0
    (face,) = json.loads(out.getvalue())["faces"]
    assert set(face) == {"score", "box", "landmarks"} and not {"age", "gender"} & set(off.chosen)
    config = tmp_path / "oivis.toml"
    config.write_text("[face]\nage_gender = true\n")
    result = subprocess.run([sys.executable, "-m", "appliance", "analyze", str(astronaut_file), "--json", "--config",
                             str(config)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (face,) = json.loads(result.stdout)["faces"]
    assert set(face) == {"score", "box", "landmarks", "age", "gender", "gender_score"}
    assert abs(face["age"] - 33) <= 4 and face["gender"] == "female" and 0.8 < face["gender_score"] <= 1


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance", "bench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_bench_has_an_age_stage_and_refuses_age_without_face_in_one_line(astronaut_file: Path) -> None:
    result = bench(str(astronaut_file), "--frames", "3", "--json", "--screen", "320x180", "--models",
                   "segmentation,face,age")   # every frame: an unpaced source is quick
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["models"] == ["segmentation", "face", "age"] and "age" in report["stages"]
    refused = bench(str(astronaut_file), "--frames", "3", "--models", "segmentation,age")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    (line,) = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert "face must be on too" in line
