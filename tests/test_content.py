"""campaign.toml validation and the generated default bundle."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tomllib

from appliance.content import generate_default, load_bundle
from appliance.content.artwork import draw_star_pose
from appliance.content.bundle import DEFAULT_BUNDLE_DIR
from appliance.content.generate import STAR_POSES, main, pose_landmark_rows, pose_table
from appliance.errors import ApplianceError
from appliance.experiences.posegame.scoring import SEEN, SWAP, match

MINIMAL = """
name = "test"
[[scenes]]
id = "one"
title = "One"
background = "bg.png"
"""


@pytest.fixture(scope="module")
def default_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("default")
    generate_default(bundle)
    return bundle


def _bundle(tmp_path: Path, toml: str) -> Path:
    (tmp_path / "campaign.toml").write_text(toml)
    cv2.imwrite(str(tmp_path / "bg.png"), np.full((8, 8, 3), 40, np.uint8))
    return tmp_path


def test_generated_default_is_accepted_and_decodes(default_bundle: Path) -> None:
    bundle = load_bundle(default_bundle)
    assert [scene.id for scene in bundle.scenes] == ["snowy-street", "spotlight", "aurora"]
    street = cv2.imread(str(default_bundle / "street.png"))
    assert street.shape == (1080, 1920, 3)
    assert 20 < street.mean() < 200, "the demo background should be neither black nor blank"
    logo = cv2.imread(str(default_bundle / "logo.png"), cv2.IMREAD_UNCHANGED)
    assert logo.shape[2] == 4 and logo[..., 3].min() == 0 and logo[..., 3].max() == 255
    frame = cv2.imread(str(default_bundle / "frame.png"), cv2.IMREAD_UNCHANGED)
    assert frame[540, 960, 3] == 0 and frame[2, 2, 3] == 255
    video = cv2.VideoCapture(str(default_bundle / "aurora.mp4"))
    ok, first = video.read()
    assert ok and first.shape == (720, 1280, 3)
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) >= 50
    video.release()


def test_generation_is_idempotent_and_deterministic(default_bundle: Path) -> None:
    lines: list[str] = []
    assert generate_default(default_bundle, progress=lines.append) == []
    assert len(lines) == 12 and all(line.startswith("kept") for line in lines)
    logo = default_bundle / "logo.png"
    before = logo.read_bytes()
    logo.unlink()
    assert generate_default(default_bundle) == [logo]
    assert logo.read_bytes() == before
    star = default_bundle / "star.png"
    before = star.read_bytes()
    star.unlink()
    draw_star_pose.cache_clear()
    assert generate_default(default_bundle) == [star]
    assert star.read_bytes() == before, "the star is drawn the same, byte for byte"


def test_cli_prints_one_line_per_file(default_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(default_bundle)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 12


def test_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    _bundle(tmp_path, MINIMAL + "colour = 'red'\n")
    with pytest.raises(ApplianceError, match=r"campaign\.toml: scenes\[0\]\.colour: unknown key"):
        load_bundle(tmp_path)


def test_invalid_values_name_the_key(tmp_path: Path) -> None:
    _bundle(tmp_path, MINIMAL + "[scenes.snow]\nmin_radius = 5.0\nmax_radius = 2.0\n")
    with pytest.raises(ApplianceError, match=r"scenes\[0\]\.snow: min_radius 5.0 is larger"):
        load_bundle(tmp_path)
    _bundle(tmp_path, MINIMAL.replace("bg.png", "bg.gif"))
    with pytest.raises(ApplianceError, match=r"scenes\[0\]\.background: 'bg.gif' is not a supported"):
        load_bundle(tmp_path)


def test_missing_media_is_named(tmp_path: Path) -> None:
    _bundle(tmp_path, MINIMAL + "[[scenes.overlays]]\nimage = 'logo.png'\n")
    with pytest.raises(ApplianceError, match=r"scenes\[0\]\.overlays\[0\]\.image: .*logo\.png does not exist"):
        load_bundle(tmp_path)


def test_media_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    _bundle(tmp_path, MINIMAL)
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "campaign.toml").write_text(MINIMAL.replace("bg.png", "../bg.png"))
    with pytest.raises(ApplianceError, match="outside the bundle"):
        load_bundle(inner)


def test_broken_toml_and_missing_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(ApplianceError, match="campaign.toml does not exist"):
        load_bundle(tmp_path)
    _bundle(tmp_path, "name = \n")
    with pytest.raises(ApplianceError, match="campaign.toml is not valid TOML"):
        load_bundle(tmp_path)
    _bundle(tmp_path, 'name = "x"\nscenes = []\n')
    with pytest.raises(ApplianceError, match="scenes: List should have at least 1 item"):
        load_bundle(tmp_path)


def test_duplicate_scene_ids_are_refused(tmp_path: Path) -> None:
    _bundle(tmp_path, MINIMAL + MINIMAL.replace('name = "test"', ""))
    with pytest.raises(ApplianceError, match="scene id 'one' is listed twice"):
        load_bundle(tmp_path)


RPS = """
[rps]
star_name = "Nova"
star_image = "star.png"
"""


def test_the_default_campaign_offers_rps_with_a_drawn_star(default_bundle: Path) -> None:
    bundle = load_bundle(default_bundle)
    rps = bundle.configs["rps"]
    assert bundle.experiences == ("mirror", "rps", "pose", "photo", "fusion", "age")
    assert rps is not None and rps.star_name == "Nova" and rps.win_rate is None and rps.rounds_to_win == 2
    shapes = set()
    for name in (rps.star_image, rps.star_happy_image, rps.star_sad_image):
        star = cv2.imread(str(default_bundle / name), cv2.IMREAD_UNCHANGED)
        height, width = star.shape[:2]
        shapes.add(star.shape)
        assert star.shape[2] == 4 and height > 1.6 * width, "Nova stands: a tall cut-out"
        alpha = star[..., 3]
        assert alpha[0, 0] == 0 and alpha[height // 2, width // 2] == 255, "transparent around, opaque in the middle"
        solid = np.nonzero((alpha == 255).any(axis=1))[0]
        assert height - 1 - solid[-1] < 0.03 * height, f"{name}: her feet must stand on the bottom (the label goes under)"
    assert len(shapes) == 1, "the moods swap in place at one size"
    happy, sad = (cv2.imread(str(default_bundle / name)) for name in (rps.star_happy_image, rps.star_sad_image))
    assert np.abs(happy.astype(int) - sad.astype(int)).mean() > 5, "the moods must look different"


def test_rps_is_optional_and_its_star_is_checked(tmp_path: Path) -> None:
    bundle = load_bundle(_bundle(tmp_path, MINIMAL))
    assert "rps" not in bundle.configs and bundle.experiences == ("mirror",)
    _bundle(tmp_path, MINIMAL + RPS)
    with pytest.raises(ApplianceError, match=r"rps\.star_image: .*star\.png does not exist"):
        load_bundle(tmp_path)
    cv2.imwrite(str(tmp_path / "star.png"), np.zeros((8, 8, 4), np.uint8))
    assert load_bundle(tmp_path).configs["rps"].rounds_to_win == 2
    _bundle(tmp_path, MINIMAL + RPS + "star_sad_image = 'sad.png'\n")
    with pytest.raises(ApplianceError, match=r"rps\.star_sad_image: .*sad\.png does not exist"):
        load_bundle(tmp_path)


@pytest.mark.parametrize(("line", "message"), [
    ("win_rate = 1.5", r"rps\.win_rate: Input should be less than or equal to 1"),
    ("rounds_to_win = 0", r"rps\.rounds_to_win: Input should be greater than or equal to 1"),
    ("star_happy_image = 'happy.jpg'", r"rps\.star_happy_image: .*must be a \.png"),
    ("prize = 'car'", r"rps\.prize: unknown key"),
])
def test_bad_rps_settings_name_the_key(tmp_path: Path, line: str, message: str) -> None:
    _bundle(tmp_path, MINIMAL + RPS + line + "\n")
    with pytest.raises(ApplianceError, match=message):
        load_bundle(tmp_path)


def test_no_experience_can_take_a_campaign_key_and_a_menu_offers_something(tmp_path: Path) -> None:
    from appliance.content import Campaign
    from appliance.experience.api import API_VERSION, RESERVED, Card, Experience

    assert set(Campaign.model_fields) == set(RESERVED)
    with pytest.raises(ValueError, match="'scenes' is a campaign key of its own"):
        Experience(name="scenes", api=API_VERSION, scene=object, card=lambda config: Card("x"))
    _bundle(tmp_path, "experiences = []\n" + MINIMAL)
    with pytest.raises(ApplianceError, match=r"experiences: .*at least 1 item.*\(line 1\)"):
        load_bundle(tmp_path)


def test_the_default_campaign_offers_the_pose_game_with_nova_drawn_on_her_landmarks(default_bundle: Path) -> None:
    bundle = load_bundle(default_bundle)
    pose = bundle.configs["pose"]
    assert bundle.experiences == ("mirror", "rps", "pose", "photo", "fusion", "age")
    assert pose.star_name == "Nova" and pose.tolerance_deg == 30 and pose.seconds_per_pose == 10
    assert [(star.image, star.name) for star in pose.poses] == [(image, name) for image, name, _ in STAR_POSES]
    body = [0, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]   # the face's middle and every joint
    for star in pose.poses:
        picture = cv2.imread(str(default_bundle / star.image), cv2.IMREAD_UNCHANGED)
        assert picture.shape == (800, 640, 4)
        alpha = picture[..., 3]
        assert alpha[:4, :4].max() == 0 and alpha[-4:, -4:].max() == 0, "a cut-out: transparent around Nova"
        points = np.round(star.points((640, 800))[:, :2]).astype(int)
        assert all(alpha[y, x] == 255 for x, y in points[body]), f"{star.image}: a joint off the drawn body"
        assert ((points >= 0) & (points < (640, 800))).all(), f"{star.image}: a landmark outside the picture"
        assert (points[[11, 13, 23, 25], 0] > points[[12, 14, 24, 26], 0]).all(), "MediaPipe's left is the picture's right"


def test_the_committed_pose_table_is_what_generate_computes() -> None:
    text = (DEFAULT_BUNDLE_DIR / "campaign.toml").read_text()
    committed = tomllib.loads(text)["pose"]["poses"]
    assert [(pose["image"], pose["name"]) for pose in committed] == [(image, name) for image, name, _ in STAR_POSES]
    for pose, (_, _, stance) in zip(committed, STAR_POSES, strict=True):
        assert pose["landmarks"] == pose_landmark_rows(stance), f"{pose['image']}: run `python -m appliance.content pose-table`"
    assert pose_table() in text


def _copied(star: np.ndarray, frame: tuple[int, int] = (1280, 720)) -> np.ndarray:
    """The shopper's camera landmarks when they copy the star's picture: the screen mirrors them, so their
    own left arm is where the star's right arm is, and the camera sees them left–right reversed."""
    shopper = star[SWAP].copy()
    shopper[:, :2] = shopper[:, :2] * 0.6 + (frame[0] * 0.2, frame[1] * 0.1)   # smaller and elsewhere in the frame
    shopper[:, 0] = frame[0] - shopper[:, 0]
    return shopper


def test_each_default_pose_copied_by_a_shopper_scores_100_and_only_matches_itself(default_bundle: Path) -> None:
    pose = load_bundle(default_bundle).configs["pose"]
    stars = [star.points(cv2.imread(str(default_bundle / star.image), cv2.IMREAD_UNCHANGED).shape[1::-1])
             for star in pose.poses]
    for index, star in enumerate(stars):
        assert (star[:, 2] >= SEEN).all()
        copy = match(star, _copied(star), pose.tolerance_deg, pose.legs)
        assert copy.score == 100 and copy.matched and len(copy.parts) == 9, pose.poses[index].name
        for other, other_star in enumerate(stars):
            if other != index:
                wrong = match(other_star, _copied(star), pose.tolerance_deg, pose.legs)
                assert not wrong.matched, f"copying {pose.poses[index].name} also matches {pose.poses[other].name}"
    wave = stars[[star.name for star in pose.poses].index("Wave")]
    assert not match(wave, wave, pose.tolerance_deg, pose.legs).matched, "waving the other hand is not the pose"
