"""The GPU path against the numpy compositor it must match: SDL's software renderer stands in for a GPU here.

The same default campaign's worlds, the same real matte (the segmentation model on the astronaut), drawn by
both paths; the pictures must agree within a few levels (the GPU scales before it blends, the CPU after, and
overlapping flakes blend twice on the GPU).  The displays' drawing methods are compared the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.compose import kiosk_session
from appliance.config import Config
from appliance.content import SceneSpec, load_bundle
from appliance.errors import ApplianceError
from appliance.experience.api import API_VERSION, Card, Experience
from appliance.kiosk.app import picture_for
from appliance.kiosk.display import Display, DisplayMode
from appliance.kiosk.gpu_display import RendererDisplay, open_display
from appliance.perception.stages import SegmentationStage
from appliance.render.compositor import Compositor
from appliance.render.gpu import NO_PICTURE, PREVIEW, SCREEN, preview_size

SIZE = (960, 540)


@pytest.fixture
def gpu():
    display = RendererDisplay(DisplayMode.HEADLESS, SIZE, software=True)
    yield display
    display.close()


@pytest.fixture(scope="module")
def matte(inference, astronaut: np.ndarray) -> np.ndarray:
    return SegmentationStage(inference).run(astronaut).alpha


def differences(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """Mean and 99th percentile absolute difference, at a quarter of the size (pixel-level scaling differences
    of single-pixel stars and flake edges average out; a misplaced or missing layer does not)."""
    size = (got.shape[1] // 4, got.shape[0] // 4)
    small_got, small_want = (cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(int) for image in (got, want))
    difference = np.abs(small_got - small_want)
    return float(difference.mean()), float(np.percentile(difference, 99))


@pytest.mark.parametrize("world", [0, 1, 2])
def test_gpu_paints_every_world_as_the_numpy_compositor(gpu: RendererDisplay, content_dir: Path, world: int,
                                                        astronaut: np.ndarray, matte: np.ndarray) -> None:
    scene = load_bundle(content_dir).scenes[world]
    cpu = Compositor(scene, content_dir, SIZE)
    painter = gpu.painter(scene, content_dir)
    small = preview_size(SIZE)
    for name, paint, compose in [
        ("person", lambda picture: painter.paint(astronaut, matte, 2.0, picture),
         lambda: cpu.compose(astronaut, matte, 2.0)),
        ("world alone", lambda picture: painter.paint_world(2.0, picture), lambda: cpu.compose_world(2.0)),
        ("raw camera", lambda picture: painter.paint(astronaut, None, 2.0, picture),
         lambda: cpu.compose(astronaut, None, 2.0)),
    ]:
        want = compose()
        screen = paint(SCREEN)
        assert np.array_equal(screen, gpu.snapshot())   # the screen read back, as an API 1.0-1.4 experience gets
        mean, p99 = differences(screen, want)
        assert mean < 1.0 and p99 <= 8, f"{scene.id} {name}: mean {mean:.2f}, p99 {p99}"
        preview = paint(PREVIEW)
        assert preview.shape == (small[1], small[0], 3)
        small_want = cv2.resize(want, small, interpolation=cv2.INTER_AREA)
        # a thumbnail: its own snow, scaled to its size, differs from the full screen's scaled down
        assert np.abs(preview.astype(int) - small_want).mean() < 10, f"{scene.id} {name}: the preview differs"
        # An experience that never reads the screen's picture costs no copy of it; the screen is the same.
        assert paint(NO_PICTURE) is None
        assert np.array_equal(gpu.snapshot(), screen)


def test_each_experience_gets_the_picture_its_api_promised() -> None:
    def experience(api: str, reads_screen: bool = True) -> Experience:
        return Experience(name="quiz", api=api, scene=object, card=lambda config: Card("Quiz"),
                          reads_screen=reads_screen)

    assert picture_for(experience("1.0")) == SCREEN and picture_for(experience("1.4")) == SCREEN
    assert picture_for(experience(API_VERSION)) == PREVIEW
    assert picture_for(experience(API_VERSION, reads_screen=False)) == NO_PICTURE
    assert picture_for(None) == NO_PICTURE


def test_a_person_shows_where_the_world_would_be(gpu: RendererDisplay, content_dir: Path, astronaut: np.ndarray,
                                                 matte: np.ndarray) -> None:
    painter = gpu.painter(load_bundle(content_dir).scenes[0], content_dir)
    painter.paint_world(0.0)
    world = gpu.snapshot()
    painter.paint(astronaut, matte, 0.0)
    person = gpu.snapshot()
    centre = (slice(200, 340), slice(400, 560))
    assert np.abs(person[centre].astype(int) - world[centre]).mean() > 30
    corner = (slice(0, 100), slice(0, 100))
    assert np.abs(person[corner].astype(int) - world[corner]).mean() < 3   # the world around the person


def draw_everything(display: Display | RendererDisplay, image) -> None:
    display.show(np.full((SIZE[1], SIZE[0], 3), (90, 60, 30), np.uint8))
    display.text("Step in front", (480, 60), size=48, colour=(255, 214, 90), anchor="center", backdrop=True)
    display.panel((40, 120, 300, 160), (20, 40, 80), opacity=0.6, radius=24, border=(255, 255, 255))
    display.circle((500, 200), 40, (255, 255, 255), opacity=0.35)
    display.circle((600, 200), 40, (255, 255, 255), width=5)
    display.ring((720, 200), 50, 0.6, (255, 214, 90), 10)
    display.blit(image, (150, 420), anchor="center")
    display.blit(image, (420, 420), anchor="center", angle=30.0, scale=0.8)
    display.picture(np.full((90, 160, 3), (10, 200, 10), np.uint8), (800, 420), anchor="center")


def test_the_displays_draw_the_same_shapes_text_and_images(content_dir: Path) -> None:
    shots = []
    for make in (lambda: Display(DisplayMode.HEADLESS, SIZE), lambda: open_display(DisplayMode.HEADLESS, SIZE,
                                                                                     "gpu")):
        display = make()
        try:
            draw_everything(display, display.load_image(content_dir / "star.png", 160))
            shots.append(display.snapshot())
        finally:
            display.close()
    cpu, gpu = shots
    assert np.abs(cpu.astype(int) - (90, 60, 30)).sum(axis=2).astype(bool).mean() > 0.1   # something was drawn
    mean, p99 = differences(gpu, cpu)
    assert mean < 1.5 and p99 <= 12, f"mean {mean:.2f}, p99 {p99}"


def test_headless_auto_composites_on_the_cpu_and_gpu_can_be_forced() -> None:
    display = open_display(DisplayMode.HEADLESS, SIZE)
    try:
        assert display.compositor == "cpu"
    finally:
        display.close()
    display = open_display(DisplayMode.HEADLESS, SIZE, "gpu")
    try:
        assert display.compositor == "gpu" and display.rasterises_on_cpu
        assert display.size == SIZE
    finally:
        display.close()


def test_no_accelerated_renderer_falls_back_to_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    # SDL's dummy video driver (the tests' own) offers only its software renderer: "auto" must not take it for
    # a GPU, and forcing the GPU on a screen says why it cannot.
    with caplog.at_level(logging.WARNING):
        display = open_display(DisplayMode.WINDOWED, SIZE)
    try:
        assert display.compositor == "cpu"
    finally:
        display.close()
    assert "no GPU compositor (SDL offers no hardware-accelerated renderer here)" in caplog.text
    with pytest.raises(ApplianceError, match="no hardware-accelerated renderer"):
        open_display(DisplayMode.WINDOWED, SIZE, "gpu")


def test_an_unknown_compositor_is_refused_naming_the_key() -> None:
    with pytest.raises(ApplianceError, match=r"compositor 'metal' \(\[display\] compositor"):
        open_display(DisplayMode.HEADLESS, SIZE, "metal")


def test_the_kiosk_runs_on_the_gpu_path_like_on_the_cpu(astronaut_file: Path, content_dir: Path) -> None:
    shots = {}
    for compositor in ("cpu", "gpu"):
        config = Config.model_validate({
            "source": {"uri": f"image:{astronaut_file}"},
            "display": {"width": SIZE[0], "height": SIZE[1], "compositor": compositor},
            "kiosk": {"content": str(content_dir)},
        })
        with kiosk_session(config, DisplayMode.HEADLESS) as kiosk:
            assert kiosk.display.compositor == compositor
            assert kiosk.run(max_frames=12) == 0
            shots[compositor] = kiosk.display.snapshot()
            assert kiosk.current == "menu"   # it reads the screen (its live card): a picture either way
            picture = kiosk.show_perception(kiosk._frame_perception, True)
            assert picture.shape[:2] == ((SIZE[1], SIZE[0]) if compositor == "cpu" else preview_size(SIZE)[::-1])
            assert kiosk.stats.summary()["present"]["p50"] >= 0
    # Both show the menu over the world with the astronaut in it (snow and the title's pulse differ in time).
    mean, _ = differences(shots["gpu"], shots["cpu"])
    assert mean < 12, f"mean {mean:.2f}"


def test_a_background_larger_than_the_screen_is_fitted_before_the_gpu_holds_it(gpu: RendererDisplay,
                                                                                tmp_path: Path) -> None:
    rows, columns = np.mgrid[0:3000, 0:4000]
    cv2.imwrite(str(tmp_path / "huge.png"), np.dstack([columns % 256, rows % 256, (rows + columns) // 32 % 256]
                                                      ).astype(np.uint8))
    scene = SceneSpec(id="huge", title="Huge", background="huge.png", mirror=False, feather_px=0)
    painter = gpu.painter(scene, tmp_path)
    texture = painter._background_texture.texture
    assert (texture.width, texture.height) == SIZE   # fitted once on the CPU: never a texture beyond the screen
    painter.paint_world(0.0, NO_PICTURE)
    mean, p99 = differences(gpu.snapshot(), Compositor(scene, tmp_path, SIZE).compose_world(0.0))
    assert mean < 1.0 and p99 <= 8, f"mean {mean:.2f}, p99 {p99}"


def test_closing_the_display_releases_its_painters_textures_first(content_dir: Path) -> None:
    display = RendererDisplay(DisplayMode.HEADLESS, SIZE, software=True)
    painter = display.painter(load_bundle(content_dir).scenes[0], content_dir)
    painter.paint_world(0.0, NO_PICTURE)
    display.close()
    assert painter._renderer is None and painter._camera is None and painter._overlays == []
