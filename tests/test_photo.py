"""The photo booth's still path: the `photo` command on real stills, the colour transfer, the placement,
the [photo] table and the star cut-out."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from bundles import offering
from pydantic import ValidationError

import appliance.content.bundle as bundle_module
from appliance.cli import main
from appliance.colour import lab_statistics, transfer
from appliance.content import load_bundle
from appliance.experience.photo import PhotoConfig
from appliance.experience.registry import Registry, installed
from appliance.inference.backend import Inference
from appliance.ops.cli import main as ops_main
from appliance.perception.segmentation import STILL_MODEL, PersonSegmenter
from appliance.photo.command import photo
from appliance.photo.compose import compose_photo
from appliance.photo.desk import PhotoDesk
from appliance.photo.harmonize import strengths
from appliance.photo.matte import StillMatte
from appliance.photo.place import Shopper, layout

STILLS = ("portrait_white_bg.png", "pose_sitting.jpg", "thumb_up.jpg")


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The installed experiences: the photo booth's registration gives the [photo] table its model."""
    return installed()


def _campaign(content_dir: Path, target: Path, table: str) -> Path:
    return offering(content_dir, target, '["mirror"]', f'\n[photo]\nstar = "nova_wave.png"\n{table}',
                    without=("photo",))


def _records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def _overlap(a: list[int], b: list[int]) -> float:
    """Intersection over the smaller box's area."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, width) * max(0, height) / min(a[2] * a[3], b[2] * b[3])


def _bare_world(desk: PhotoDesk) -> np.ndarray:
    """The photo's world with nobody in it: the background and the layers drawn over everything."""
    canvas = desk.background.copy()
    for layer in desk.layers:
        layer.draw(canvas, 0.0)
    return canvas


def _grown(box: list[int], share: float) -> tuple[slice, slice]:
    x, y, w, h = box
    gx, gy = round(w * share), round(h * share)
    return slice(max(0, y - gy), y + h + gy), slice(max(0, x - gx), x + w + gx)


def _check_photo(record: dict, side: str, world: np.ndarray, matte: StillMatte) -> None:
    assert "error" not in record, record
    picture = cv2.imread(record["photo"])
    assert picture.shape == (1200, 1800, 3) and record["size"] == [1800, 1200]
    assert cv2.imread(record["screen"]).shape == (853, 1280, 3)
    person, star = record["person"]["box"], record["star"]["box"]
    for x, y, w, h in (person, star):
        assert w > 50 and h > 50 and x >= 0 and y >= 0 and x + w <= 1800 and y + h <= 1200
    assert _overlap(person, star) < 0.5, (person, star)   # beside a wide shopper the star stands partly behind
    person_centre, star_centre = person[0] + person[2] / 2, star[0] + star[2] / 2
    assert (star_centre > person_centre) == (side == "right")
    # What was added to the world is inside the two boxes (their shadows reach a little further) ...
    added = np.abs(picture.astype(np.int16) - world).max(axis=2) > 60
    outside = added.copy()
    for box in (person, star):
        outside[_grown(box, 0.12)] = False
    assert outside.sum() < 0.01 * added.sum()
    # ... and the person box holds a person: the still segmentation finds one filling much of it.
    rows, cols = _grown(person, 0.0)
    assert added[rows, cols].mean() > 0.15
    assert (matte.matte(picture)[rows, cols] >= 128).mean() > 0.2


def test_photo_of_the_devset_stills_and_the_astronaut_puts_the_shopper_and_the_star_side_by_side(
        media: Path, astronaut_file: Path, content_dir: Path, tmp_path: Path, registry: Registry,
        inference: Inference) -> None:
    matte = StillMatte(inference)
    for side in ("left", "right"):
        campaign = _campaign(content_dir, tmp_path / side, f'star_side = "{side}"\nworld = "spotlight"\n')
        out = io.StringIO()
        inputs = [astronaut_file, *(media / name for name in STILLS)]
        assert photo(inputs, campaign, tmp_path / f"out-{side}", inference, out, registry=registry) == 0
        records = _records(out.getvalue())
        assert [record["path"] for record in records] == [str(path) for path in inputs]
        world = _bare_world(PhotoDesk(load_bundle(campaign, registry), inference, find_pose=False))
        for record in records:
            _check_photo(record, side, world, matte)


def test_a_corrupt_input_is_an_error_line_and_a_failing_exit_after_every_input(
        astronaut_file: Path, content_dir: Path, tmp_path: Path, registry: Registry,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bundle_module, "installed", lambda: registry)
    campaign = _campaign(content_dir, tmp_path / "campaign", "")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    status = main(["photo", str(corrupt), str(astronaut_file), "--campaign", str(campaign),
                   "--out-dir", str(tmp_path / "out"), "--json", "--backend", "litert"])
    captured = capsys.readouterr()
    first, second = _records(captured.out)
    assert status == 1 and "1 of 2 input(s)" in captured.err
    assert set(first) == {"path", "error"} and first["path"] == str(corrupt) and "corrupt.jpg" in first["error"]
    assert Path(second["photo"]).is_file() and not (tmp_path / "out" / "corrupt.jpg").exists()
    assert set(second["timings_ms"]) >= {"matte", "layout", "shopper", "star", "blend", "encode", "total"}


def test_a_campaign_without_a_photo_table_is_refused_naming_it(content_dir: Path, tmp_path: Path,
                                                               registry: Registry, inference: Inference) -> None:
    bundle = load_bundle(offering(content_dir, tmp_path / "plain", '["mirror"]', without=("photo",)), registry)
    with pytest.raises(Exception, match=r"has no \[photo\] table"):
        PhotoDesk(bundle, inference)


def test_a_720p_camera_frame_becomes_a_print_size_photo_with_its_timings(
        media: Path, content_dir: Path, tmp_path: Path, registry: Registry, inference: Inference) -> None:
    capture = cv2.VideoCapture(str(media / "kiosk_fist_thumbup_720p.mp4"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 60)
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (720, 1280, 3)
    desk = PhotoDesk(load_bundle(_campaign(content_dir, tmp_path / "c", ""), registry), inference)
    result = compose_photo(frame, desk)
    assert result.image.shape == (1200, 1800, 3) and result.jpeg[:2] == b"\xff\xd8"
    assert result.timings_ms["total"] > 0   # the speed is measured by `photo --json` (README), never in a test


def test_reinhard_transfer_moves_the_masked_statistics_toward_the_target() -> None:
    rng = np.random.default_rng(3)
    image = np.clip(rng.normal((60, 120, 200), 25, (120, 160, 3)), 0, 255).astype(np.uint8)
    alpha = np.zeros((120, 160), np.uint8)
    alpha[20:100, 30:130] = 255
    image[alpha == 0] = (0, 255, 0)        # outside the mask: must not count
    world = np.clip(rng.normal((150, 110, 70), 15, (80, 80, 3)), 0, 255).astype(np.uint8)
    target = lab_statistics(world)
    mean_before, std_before = lab_statistics(image, alpha)
    assert np.array_equal(transfer(image, alpha, target, 0.0), image)
    half_mean, half_std = lab_statistics(transfer(image, alpha, target, 0.5), alpha)
    full_mean, full_std = lab_statistics(transfer(image, alpha, target, 1.0), alpha)
    distance_before = np.linalg.norm(mean_before - target[0])
    assert distance_before > 20
    assert np.linalg.norm(half_mean - target[0]) < 0.65 * distance_before
    assert np.linalg.norm(full_mean - target[0]) < 0.1 * distance_before
    assert np.all(np.abs(np.log(full_std / target[1])) < np.abs(np.log(std_before / target[1])) + 1e-3)
    colour_mean, _ = lab_statistics(transfer(image, alpha, target, strengths(1.0) * (0, 1, 1)), alpha)
    assert abs(colour_mean[0] - mean_before[0]) < 1.0 and np.linalg.norm(colour_mean[1:] - target[0][1:]) < 2.0
    assert strengths(0.5)[0] < strengths(0.5)[1] == 0.5      # the photo's lightness moves less than its colour


def test_the_star_stands_beside_the_shopper_on_the_asked_side_and_both_fit() -> None:
    centred = Shopper((500.0, 100.0, 800.0, 720.0), 1100.0)          # cut by a 1280x720 frame's bottom
    for side in ("left", "right"):
        placed = layout(centred, (1280, 720), (1800, 1200), (400, 1000), side, 1.0)
        x, y, w, h = placed.star_box
        scale, dx = placed.transform[0, 0], placed.transform[0, 2]
        left, right = 500 * scale + dx, 800 * scale + dx
        assert (x >= right) if side == "right" else (x + w <= left)
        assert 0 <= min(x, left) and max(x + w, right) <= 1800
        assert h == pytest.approx(1100 * scale, rel=0.01)
        assert y == pytest.approx(100 * scale + placed.transform[1, 2], abs=2)   # heads level at star_scale 1
    wide = layout(Shopper((100.0, 50.0, 1180.0, 720.0), 900.0), (1280, 720), (1800, 1200), (400, 1000), "auto", 1.0)
    assert wide.transform[0, 0] < 1800 / 1280      # shrunk so the star fits beside a shopper filling the frame
    at_left = layout(Shopper((50.0, 100.0, 300.0, 720.0), 1100.0), (1280, 720), (1800, 1200), (400, 1000),
                     "auto", 1.0)
    assert at_left.side == "right"


def test_the_photo_table_refuses_unknown_keys_and_bad_sizes_and_turns_portrait() -> None:
    config = PhotoConfig(star="star.png")
    assert (config.photo_size(), config.screen_size()) == ((1800, 1200), (1280, 853))
    assert PhotoConfig(star="star.png", orientation="portrait").photo_size() == (1200, 1800)
    for bad in ({"star_sides": "left"}, {"print_size_px": (1200, 1800)}, {"star": "star.jpg", "star_side": "up"}):
        with pytest.raises(ValidationError):
            PhotoConfig(**{"star": "star.png", **bad})


def test_a_campaign_names_its_star_in_the_photo_table_and_a_missing_one_is_refused_with_its_key(
        content_dir: Path, tmp_path: Path, registry: Registry) -> None:
    campaign = _campaign(content_dir, tmp_path / "c", 'frame = "missing-frame.png"\n')
    with pytest.raises(Exception, match=r"photo\.frame"):
        load_bundle(campaign, registry)


def test_star_cutout_writes_a_png_whose_opaque_area_is_the_person(media: Path, tmp_path: Path,
                                                                  inference: Inference) -> None:
    source = media / "portrait_white_bg.png"
    out = tmp_path / "star.png"
    assert ops_main(["star-cutout", str(source), "--out", str(out), "--backend", "litert"]) == 0
    cut = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert cut.ndim == 3 and cut.shape[2] == 4
    image = cv2.imread(str(source))
    found = cv2.matchTemplate(image, cut[:, :, :3], cv2.TM_SQDIFF)
    _, _, (x, y), _ = cv2.minMaxLoc(found)
    assert np.array_equal(image[y:y + cut.shape[0], x:x + cut.shape[1]], cut[:, :, :3])
    segmenter = PersonSegmenter(inference.load(STILL_MODEL), inference.manifest.spec(STILL_MODEL))
    person = segmenter.mask(image) >= 128
    opaque = np.zeros_like(person)
    opaque[y:y + cut.shape[0], x:x + cut.shape[1]] = cut[:, :, 3] >= 128
    iou = (person & opaque).sum() / (person | opaque).sum()
    assert iou > 0.9, iou
    assert ops_main(["star-cutout", str(source), "--out", str(tmp_path / "star.jpg"), "--backend", "litert"]) == 1


def test_beside_a_close_up_in_a_portrait_photo_the_star_steps_behind_and_keeps_its_head_in() -> None:
    """Before: beside the astronaut in a portrait photo 61% of the star, her head too, was off the photo."""
    for close_up, frame in ((Shopper((60.0, 30.0, 470.0, 512.0), 800.0), (512, 512)),      # the astronaut
                            (Shopper((300.0, 60.0, 1000.0, 720.0), 1100.0), (1280, 720))):  # a waist-up shopper
        for side in ("left", "right"):
            placed = layout(close_up, frame, (1200, 1800), (400, 1000), side, 1.0)
            x, y, w, h = placed.star_box
            head = (x + w / 4, y, x + 3 * w / 4, y + h / 4)   # the middle of the box's top quarter
            assert 0 <= head[0] and head[2] <= 1200 and 0 <= head[1] and head[3] <= 1800, (side, placed.star_box)
            scale, dx = placed.transform[0, 0], placed.transform[0, 2]
            left, right = close_up.box[0] * scale + dx, close_up.box[2] * scale + dx
            behind = (right - x) if side == "right" else (x + w - left)
            assert behind <= 0.6 * w, "beside the shopper, at most partly behind"
            assert (x + w / 2 > (left + right) / 2) == (side == "right")


def test_a_portrait_photo_of_the_astronaut_has_the_star_beside_her_head_and_all(
        astronaut_file: Path, content_dir: Path, tmp_path: Path, registry: Registry, inference: Inference) -> None:
    for side in ("left", "right"):
        campaign = _campaign(content_dir, tmp_path / side, f'star_side = "{side}"\norientation = "portrait"\n')
        out = io.StringIO()
        assert photo([astronaut_file], campaign, tmp_path / f"out-{side}", inference, out, registry=registry) == 0
        [record] = _records(out.getvalue())
        assert record["size"] == [1200, 1800] and cv2.imread(record["photo"]).shape == (1800, 1200, 3)
        person, star = record["person"]["box"], record["star"]["box"]
        assert star[3] > 400 and star[2] > 0.45 * star[3], "most of the star is on the photo (before: 261 x 746)"
        assert (star[0] + star[2] / 2 > person[0] + person[2] / 2) == (side == "right")
        assert star[1] < person[1] + person[3] / 3, "the star's head is up beside hers"


def test_the_photo_command_never_writes_over_an_input_or_another_inputs_files(
        astronaut: np.ndarray, content_dir: Path, tmp_path: Path, registry: Registry, inference: Inference) -> None:
    """Before: --out-dir the inputs' own directory overwrote x.jpg, and x-screen.jpg's photo overwrote x's screen."""
    inputs = [tmp_path / "x.jpg", tmp_path / "x-screen.jpg"]
    for path in inputs:
        assert cv2.imwrite(str(path), astronaut)
    before = [path.read_bytes() for path in inputs]
    out = io.StringIO()
    assert photo(inputs, _campaign(content_dir, tmp_path / "c", ""), tmp_path, inference, out, registry=registry) == 0
    written = [(record["photo"], record["screen"]) for record in _records(out.getvalue())]
    assert [path.read_bytes() for path in inputs] == before, "the inputs are untouched"
    files = [name for pair in written for name in pair]
    assert len(set(files)) == 4 and not {str(path) for path in inputs} & set(files), written
    assert written[0] == (str(tmp_path / "x-2.jpg"), str(tmp_path / "x-2-screen.jpg"))


def test_the_photo_table_offers_styles_by_index_or_painting_and_refuses_what_cannot_be_one() -> None:
    config = PhotoConfig(star="star.png", styles=[{"name": "Van Gogh", "index": 19},
                                                  {"name": "Ours", "image": "painting.jpg", "stroke": "bold"}],
                         style_default="Ours")
    assert [(style.name, style.index, style.image, style.stroke) for style in config.styles] == [
        ("Van Gogh", 19, None, "medium"), ("Ours", None, "painting.jpg", "bold")]
    assert config.style("Ours").strength == 0.9
    with pytest.raises(KeyError, match="no style 'Pop'.*Van Gogh, Ours"):
        config.style("Pop")
    for styles, default, problem in (
            ([{"name": "A", "index": 3, "image": "a.png"}], None, "either index"),
            ([{"name": "A"}], None, "either index"),
            ([{"name": "A", "index": 26}], None, "less than 26"),
            ([{"name": "A", "index": 3, "brush": "big"}], None, "brush"),
            ([{"name": "A", "index": 3, "stroke": "huge"}], None, "fine"),
            ([{"name": "original", "index": 3}], None, "unstyled"),
            ([{"name": "A", "index": 3}, {"name": "A", "index": 4}], None, "A named more than once"),
            ([{"name": "A", "index": 3}], "B", "style_default 'B' is not one of styles")):
        with pytest.raises(ValidationError, match=problem):
            PhotoConfig(star="star.png", styles=styles, style_default=default)


def test_a_campaign_styles_painting_is_checked_with_its_key_and_an_unknown_style_key_with_its_line(
        content_dir: Path, tmp_path: Path, registry: Registry) -> None:
    missing = _campaign(content_dir, tmp_path / "m", 'styles = [{ name = "Ours", image = "missing.jpg" }]\n')
    with pytest.raises(Exception, match=r"photo\.styles\[0\]\.image"):
        load_bundle(missing, registry)
    gif = _campaign(content_dir, tmp_path / "g", 'styles = [{ name = "Ours", image = "ours.gif" }]\n')
    with pytest.raises(Exception, match=r"photo\.styles\[0\]\.image.*\.png|\.png.*photo\.styles\[0\]\.image"):
        load_bundle(gif, registry)
    typo = _campaign(content_dir, tmp_path / "t", 'styles = [{ name = "A", index = 3, strok = "fine" }]\n')
    with pytest.raises(Exception, match=r"line \d+.*strok|strok.*line \d+"):
        load_bundle(typo, registry)


def test_the_photo_command_paints_in_a_campaign_style_at_the_stroke_asked_and_times_it(
        astronaut_file: Path, content_dir: Path, tmp_path: Path, registry: Registry,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bundle_module, "installed", lambda: registry)
    campaign = _campaign(content_dir, tmp_path / "c", 'styles = [{ name = "Van Gogh", index = 19 }]\n')
    records = {}
    for stroke in ("fine", "bold", None):
        options = ["--style", "Van Gogh", "--stroke", stroke] if stroke else []
        assert main(["photo", str(astronaut_file), "--campaign", str(campaign), "--out-dir",
                     str(tmp_path / f"out-{stroke}"), *options]) == 0
        (records[stroke],) = _records(capsys.readouterr().out)
    pictures = {stroke: cv2.imread(record["photo"]) for stroke, record in records.items()}
    assert all(picture.shape == (1200, 1800, 3) for picture in pictures.values())
    assert "style" in records["fine"]["timings_ms"] and "style" not in records[None]["timings_ms"]
    grey = {stroke: cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY).astype(np.float32)
            for stroke, picture in pictures.items()}
    edges = {stroke: float(np.abs(cv2.Sobel(image, cv2.CV_32F, 1, 0)).mean()) for stroke, image in grey.items()}
    assert edges["fine"] > 1.3 * edges["bold"] > 1.3 * edges[None], edges
    assert main(["photo", str(astronaut_file), "--campaign", str(campaign), "--out-dir", str(tmp_path / "x"),
                 "--style", "Pop"]) != 0
    assert "no style 'Pop'" in capsys.readouterr().err
