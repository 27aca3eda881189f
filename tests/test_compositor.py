"""The compositor chain, on small synthetic frames so every expected pixel can be computed."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_media import flipped_png, huge_png, person_jpeg

from appliance.content import OverlaySpec, SceneSpec, SnowSpec
from appliance.errors import ApplianceError
from appliance.media import MediaLimits
from appliance.render import Compositor
from appliance.render import background as background_module
from appliance.render.background import FALLBACK_BGR, VideoBackground
from appliance.render.fit import cover_box, cover_fit
from appliance.render.snow import Snow

CAMERA = (160, 90)
SCREEN = (320, 180)
BACKGROUND_BGR = (200, 30, 10)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    cv2.imwrite(str(tmp_path / "bg.png"), np.full((CAMERA[1], CAMERA[0], 3), BACKGROUND_BGR, np.uint8))
    return tmp_path


def scene(**changes: object) -> SceneSpec:
    fields: dict[str, object] = {"id": "t", "title": "T", "background": "bg.png", "mirror": False, "feather_px": 0}
    fields.update(changes)
    return SceneSpec(**fields)


def camera_frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (CAMERA[1], CAMERA[0], 3), dtype=np.uint8)


def write_video(path: Path, frames: int, fps: float = 10.0) -> None:
    """Frame i is a flat grey of 20 * i, so a decoded frame tells which one it is."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, CAMERA)
    for index in range(frames):
        writer.write(np.full((CAMERA[1], CAMERA[0], 3), 20 * index, np.uint8))
    writer.release()


def test_opaque_alpha_shows_the_frame_and_clear_alpha_the_background(bundle: Path) -> None:
    compositor = Compositor(scene(), bundle, SCREEN)
    frame = camera_frame()
    person = compositor.compose(frame, np.full(frame.shape[:2], 255, np.uint8), now=0.0)
    np.testing.assert_array_equal(person, cover_fit(frame, SCREEN))
    empty = compositor.compose(frame, np.zeros(frame.shape[:2], np.uint8), now=0.0)
    assert (empty == BACKGROUND_BGR).all()


def test_output_is_a_fresh_screen_sized_array(bundle: Path) -> None:
    compositor = Compositor(scene(), bundle, CAMERA)
    frame = camera_frame()
    out = compositor.compose(frame, None, now=0.0)
    assert out.shape == (CAMERA[1], CAMERA[0], 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    out[:] = 0
    assert frame.any(), "drawing on the result must not touch the camera frame"


def test_feather_softens_the_edge_monotonically(bundle: Path) -> None:
    frame = np.full((CAMERA[1], CAMERA[0], 3), 255, np.uint8)
    alpha = np.zeros(frame.shape[:2], np.uint8)
    alpha[:, :80] = 255
    hard = Compositor(scene(), bundle, CAMERA).compose(frame, alpha, 0.0)[45, :, 1].astype(int)
    soft = Compositor(scene(feather_px=5), bundle, CAMERA).compose(frame, alpha, 0.0)[45, :, 1].astype(int)
    assert set(np.unique(hard)) == {30, 255}
    assert (np.diff(soft) <= 0).all(), "the ramp from person to background must not wiggle"
    ramp = soft[(soft > 30) & (soft < 255)]
    assert 8 <= len(ramp) <= 11
    assert soft[79] < 255 and soft[80] > 30


def test_mirror_flips_frame_and_alpha_together(bundle: Path) -> None:
    frame = np.zeros((CAMERA[1], CAMERA[0], 3), np.uint8)
    frame[:, :40] = (0, 0, 255)
    alpha = np.zeros(frame.shape[:2], np.uint8)
    alpha[:, :40] = 255
    out = Compositor(scene(mirror=True), bundle, CAMERA).compose(frame, alpha, 0.0)
    assert (out[:, -40:] == (0, 0, 255)).all(), "the person moves to the right, still cut out"
    assert (out[:, :-40] == BACKGROUND_BGR).all()


def test_cover_fit_crops_to_the_target_aspect() -> None:
    assert cover_box((640, 480), (1920, 1080)) == (0, 60, 640, 360)
    assert cover_box((1280, 720), (640, 480)) == (160, 0, 960, 720)
    assert cover_box((1280, 720), (1920, 1080)) == (0, 0, 1280, 720)
    image = np.zeros((480, 640), np.uint8)
    image[60:420] = 255
    fitted = cover_fit(image, (320, 180))
    assert fitted.shape == (180, 320) and (fitted == 255).all()


def test_background_is_cover_fitted_to_the_camera(tmp_path: Path) -> None:
    four_three = np.zeros((120, 160, 3), np.uint8)
    four_three[15:105] = (0, 255, 0)
    cv2.imwrite(str(tmp_path / "bg.png"), four_three)
    out = Compositor(scene(), tmp_path, SCREEN).compose(camera_frame(), np.zeros(CAMERA[::-1], np.uint8), 0.0)
    assert (out == (0, 255, 0)).all(), "the 4:3 background's top and bottom bands are cropped away"


def test_snow_brightens_pixels_and_moves_deterministically(bundle: Path) -> None:
    spec = scene(snow=SnowSpec(count=60, min_radius=6.0, max_radius=12.0, speed=600.0, wind=0.0, seed=3))
    black = np.zeros((CAMERA[1], CAMERA[0], 3), np.uint8)
    first = Compositor(spec, bundle, SCREEN).compose(black, None, now=10.0)
    assert first.any(axis=2).sum() > 60, "each flake lights at least a pixel or so"
    again = Compositor(spec, bundle, SCREEN)
    again.compose(black, None, now=3.0)
    np.testing.assert_array_equal(again.compose(black, None, now=10.0), first)
    assert (again.compose(black, None, now=10.5) != first).any()

    snow = Snow(spec.snow, SCREEN)
    (_, y0), (_, y1) = snow.positions(10.0), snow.positions(10.1)
    falling = y1 > y0
    assert falling.mean() > 0.9, "all but the flakes wrapping to the top move down"
    fall = (y1 - y0)[falling] / 0.1
    scale = SCREEN[1] / 1080
    assert fall.min() >= 600 * scale * 0.35 - 1e-6 and fall.max() <= 600 * scale + 1e-6


def test_overlay_alpha_blends_one_known_pixel(tmp_path: Path, bundle: Path) -> None:
    overlay = np.zeros((18, 18, 4), np.uint8)
    overlay[:] = (200, 100, 50, 128)
    overlay[9:, :, 3] = 255
    cv2.imwrite(str(bundle / "mark.png"), overlay)
    spec = scene(overlays=[OverlaySpec(image="mark.png", anchor="bottom-right", margin=0.0, scale=0.1)])
    frame = np.full((CAMERA[1], CAMERA[0], 3), 100, np.uint8)
    out = Compositor(spec, bundle, SCREEN).compose(frame, None, 0.0)
    top_left_of_mark = out[180 - 18, 320 - 18]
    expected = np.rint(np.array([200, 100, 50]) * 128 / 255 + 100 * 127 / 255)
    np.testing.assert_allclose(top_left_of_mark, expected, atol=1)
    assert (out[-1, -1] == (200, 100, 50)).all()
    assert (out[180 - 19, 320 - 19] == 100).all() and (out[-1, 320 - 19] == 100).all()


def test_fill_overlay_leaves_its_transparent_middle_alone(bundle: Path) -> None:
    border = np.zeros((90, 160, 4), np.uint8)
    border[:4] = border[-4:] = border[:, :4] = border[:, -4:] = (255, 255, 255, 255)
    cv2.imwrite(str(bundle / "frame.png"), border)
    spec = scene(overlays=[OverlaySpec(image="frame.png", anchor="fill")])
    frame = np.full((CAMERA[1], CAMERA[0], 3), 50, np.uint8)
    out = Compositor(spec, bundle, SCREEN).compose(frame, None, 0.0)
    assert (out[0] == 255).all() and (out[:, 0] == 255).all()
    assert (out[20:160, 20:300] == 50).all()


def test_video_background_advances_with_time_and_loops(tmp_path: Path) -> None:
    write_video(tmp_path / "count.mp4", frames=10)
    video = VideoBackground(tmp_path / "count.mp4")

    def shown(now: float) -> float:
        return float(video.frame(CAMERA, now).mean()) / 20

    assert shown(50.0) == pytest.approx(0, abs=0.3)
    assert shown(50.55) == pytest.approx(5, abs=0.3)
    assert shown(50.95) == pytest.approx(9, abs=0.3)
    assert shown(51.25) == pytest.approx(2, abs=0.3), "past the end it starts again"
    assert shown(150.35) == pytest.approx(3, abs=0.3), "a long pause skips whole loops"


def test_dead_video_falls_back_to_dark_and_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write_video(tmp_path / "count.mp4", frames=10)
    video = VideoBackground(tmp_path / "count.mp4")
    video.frame(CAMERA, 0.0)

    class DeadCapture:
        """A decoder that has stopped delivering frames, and stays dead when reopened."""

        def __init__(self, *args: object) -> None:
            pass

        def grab(self) -> bool:
            return False

        def set(self, *args: object) -> bool:
            return True

        def isOpened(self) -> bool:
            return True

        def get(self, *args: object) -> float:
            return 0.0

        def release(self) -> None:
            pass

    monkeypatch.setattr(background_module.cv2, "VideoCapture", DeadCapture)
    video._capture = DeadCapture()
    with caplog.at_level(logging.WARNING):
        for now in (0.5, 0.6, 2.0):
            assert (video.frame(CAMERA, now) == FALLBACK_BGR).all()
    assert len([r for r in caplog.records if "stopped decoding" in r.message]) == 1


@pytest.mark.parametrize("name", ["missing.png", "corrupt.png", "corrupt.mp4"])
def test_bad_media_fails_at_build_naming_the_file(bundle: Path, name: str) -> None:
    (bundle / "corrupt.png").write_bytes(b"\x89PNG not really")
    (bundle / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ApplianceError, match=name.replace(".", r"\.")):
        Compositor(scene(background=name), bundle, SCREEN)
    if name.endswith(".png"):
        with pytest.raises(ApplianceError, match=name.replace(".", r"\.")):
            Compositor(scene(overlays=[OverlaySpec(image=name)]), bundle, SCREEN)


def test_mismatched_alpha_is_refused(bundle: Path) -> None:
    compositor = Compositor(scene(), bundle, SCREEN)
    with pytest.raises(ApplianceError, match="alpha"):
        compositor.compose(camera_frame(), np.zeros((10, 10), np.uint8), 0.0)


@pytest.mark.parametrize("where", ["background", "overlay"])
def test_an_oversized_image_is_refused_when_the_scene_is_built(bundle: Path, where: str) -> None:
    huge_png(bundle / "huge.png")
    spec = scene(background="huge.png") if where == "background" else scene(overlays=[OverlaySpec(image="huge.png")])
    with pytest.raises(ApplianceError, match=r"huge\.png is 20000x20000 .* over the limit of 40 megapixels"):
        Compositor(spec, bundle, SCREEN)


def test_the_compositor_decodes_within_the_limits_it_is_given(bundle: Path, tmp_path: Path) -> None:
    cv2.imwrite(str(bundle / "logo.png"), np.zeros((100, 300, 4), np.uint8))
    write_video(bundle / "loop.mp4", frames=5)
    small = MediaLimits(image_side_px=200, video_width=100)
    Compositor(scene(), bundle, SCREEN, limits=small)
    with pytest.raises(ApplianceError, match=r"logo\.png is 300x100 .* 200 px a side"):
        Compositor(scene(overlays=[OverlaySpec(image="logo.png")]), bundle, SCREEN, limits=small)
    with pytest.raises(ApplianceError, match=r"loop\.mp4 is 160x90: over the limit of 100x2160"):
        Compositor(scene(background="loop.mp4"), bundle, SCREEN, limits=small)


def test_a_cut_or_bit_rotted_background_fails_at_build(bundle: Path, astronaut: np.ndarray) -> None:
    person_jpeg(bundle / "cut.jpg", astronaut, cut_at=1000)
    flipped_png(bundle / "flipped.png", astronaut)
    with pytest.raises(ApplianceError, match=r"cut\.jpg: truncated JPEG"):
        Compositor(scene(background="cut.jpg"), bundle, SCREEN)
    with pytest.raises(ApplianceError, match=r"flipped\.png: corrupt PNG"):
        Compositor(scene(overlays=[OverlaySpec(image="flipped.png")]), bundle, SCREEN)
