"""``python -m appliance.ops star-pose``: the star's pose from a photo as a campaign's [[pose.poses]] entry.

The entry's writing and appending need no model; the command end to end runs the appliance's own still
pose (real models) on the devset's photo, made a cut-out, and the campaign that gets the entry is loaded
and scored by the pose game."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.analyze import StillPerception, StillResult
from appliance.content import load_bundle
from appliance.errors import ApplianceError
from appliance.experience.registry import Registry
from appliance.experiences.posegame import experience
from appliance.experiences.posegame.scoring import match, mirrored
from appliance.ops.cli import main
from appliance.ops.star_pose import append, entry, image_path, over_white, playable
from appliance.perception.body import LANDMARK_NAMES, Pose

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - boards with Python 3.10
    import tomli as tomllib

#: The pose pipeline (appliance/perception/pose*.py) fills StillResult.poses; without it there is nothing to run.
POSE_PIPELINE = pytest.mark.skipif("poses" not in StillResult.__dataclass_fields__,
                                   reason="the still pose (StillResult.poses) has not landed in appliance.analyze")

CAMPAIGN = """name = "star"
experiences = ["pose"]

[[scenes]]
id = "one"
title = "One"
background = "bg.png"

[pose]
star_name = "Nova"
"""


def a_pose(seen: float = 0.9) -> Pose:
    landmarks = np.zeros((33, 4), np.float32)
    landmarks[:, 0], landmarks[:, 1], landmarks[:, 3] = np.linspace(10, 330, 33), np.linspace(20, 620, 33), seen
    return Pose(0.9, landmarks, 1)


def test_the_entry_is_toml_with_each_landmark_named_in_fractions_of_the_picture() -> None:
    text = entry(a_pose(), (400, 800), "star/wave.png", "Wave \"hi\"")
    (parsed,) = tomllib.loads(text)["pose"]["poses"]
    assert parsed["image"] == "star/wave.png" and parsed["name"] == "Wave \"hi\""
    assert parsed["landmarks"][0] == [0.025, 0.025, 0.9] and parsed["landmarks"][32] == [0.825, 0.775, 0.9]
    assert all(f"# {index} {name}" in text for index, name in enumerate(LANDMARK_NAMES))
    assert playable(a_pose()) is None and "shoulders" in (playable(a_pose(seen=0.2)) or "")


def test_entries_append_to_a_campaign_only_when_it_stays_valid_toml(tmp_path: Path) -> None:
    campaign = tmp_path / "campaign.toml"
    campaign.write_text(CAMPAIGN)
    append(campaign, entry(a_pose(), (400, 800), "one.png"))
    append(campaign, entry(a_pose(), (400, 800), "two.png"))
    document = tomllib.loads(campaign.read_text())
    assert document["pose"]["star_name"] == "Nova"
    assert [pose["image"] for pose in document["pose"]["poses"]] == ["one.png", "two.png"]
    inline = tmp_path / "inline.toml"
    inline.write_text("[pose]\nposes = []\n")
    with pytest.raises(ApplianceError, match="would not be valid TOML.*inline"):
        append(inline, entry(a_pose(), (400, 800), "one.png"))
    assert inline.read_text() == "[pose]\nposes = []\n"


def test_the_image_path_is_relative_to_the_campaign_when_inside_it(tmp_path: Path) -> None:
    assert image_path(tmp_path / "stars" / "nova.png", tmp_path / "campaign.toml") == "stars/nova.png"
    assert image_path(Path("/elsewhere/nova.png"), tmp_path / "campaign.toml") == "nova.png"
    assert image_path(tmp_path / "nova.png", None) == "nova.png"


def test_a_cut_out_is_shown_to_the_model_over_white() -> None:
    picture = np.zeros((2, 2, 4), np.uint8)
    picture[0, 0] = (10, 20, 30, 255)
    picture[1, 1] = (10, 20, 30, 0)
    assert over_white(picture)[0, 0].tolist() == [10, 20, 30] and over_white(picture)[1, 1].tolist() == [255] * 3


def cut_out(photo: Path, target: Path) -> None:
    """The photo as a star's cut-out: its top band (above the head) noise, fully transparent."""
    image = cv2.imread(str(photo))
    alpha = np.full(image.shape[:2], 255, np.uint8)
    band = image.shape[0] // 9
    image[:band] = np.random.default_rng(0).integers(0, 255, (band, image.shape[1], 3), dtype=np.uint8)
    alpha[:band] = 0
    cv2.imwrite(str(target), np.dstack([image, alpha]))


@POSE_PIPELINE
def test_star_pose_end_to_end_on_a_photo_makes_a_campaign_the_game_plays(media: Path, inference: object,
                                                                       tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    photo = media / "pose_sitting.jpg"
    bundle = tmp_path / "bundle"
    (bundle / "stars").mkdir(parents=True)
    cv2.imwrite(str(bundle / "bg.png"), np.full((8, 8, 3), 40, np.uint8))
    (bundle / "campaign.toml").write_text(CAMPAIGN)
    cut_out(photo, bundle / "stars" / "sitting.png")
    assert main(["star-pose", str(bundle / "stars" / "sitting.png"), "--out", str(bundle / "campaign.toml"),
                 "--name", "Sitting", "--backend", "litert"]) == 0
    assert "appended the pose" in capsys.readouterr().err
    config = load_bundle(bundle, Registry.of([experience])).configs["pose"]
    (star,) = config.poses
    assert star.image == "stars/sitting.png" and star.name == "Sitting"
    image = cv2.imread(str(photo))
    height, width = image.shape[:2]
    found = StillPerception(inference).perceive(image).poses[0]     # the same photo, uncut, straight from analyze
    written = star.points((width, height))
    body = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]
    torso = float(np.linalg.norm(found.landmarks[11, :2] - found.landmarks[24, :2]))
    error = np.linalg.norm(written[body, :2] - found.landmarks[body, :2], axis=1) / torso   # the cut-out's top differs
    assert np.median(error) < 0.05 and error.max() < 0.15, error
    copy = mirrored(found.landmarks[:, [0, 1, 3]])                   # a shopper copying it in the mirror
    assert match(written, copy, config.tolerance_deg).matched


@POSE_PIPELINE
def test_star_pose_without_a_person_fails_naming_the_photo(inference: object, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((480, 360, 3), 255, np.uint8))
    assert main(["star-pose", str(blank), "--backend", "litert"]) == 1
    assert f"error: {blank}: no person found" in capsys.readouterr().err


def test_a_pose_the_game_cannot_play_is_refused_with_the_tables_legs(tmp_path: Path) -> None:
    from appliance.ops.star_pose import legs_of

    no_hips = a_pose()
    no_hips.landmarks[[23, 24], 3] = 0.1
    no_hips.landmarks[11], no_hips.landmarks[12] = [100, 100, 0, 0.9], [200, 100, 0, 0.9]
    assert "legs = false" in (playable(no_hips, legs=True) or "")
    assert playable(no_hips, legs=False) is None
    campaign = tmp_path / "campaign.toml"
    assert legs_of(campaign) is True   # no file yet: the game's default
    campaign.write_text('name = "x"\n[pose]\nlegs = false\n')
    assert legs_of(campaign) is False
