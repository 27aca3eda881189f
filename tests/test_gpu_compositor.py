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
from appliance.content import load_bundle
from appliance.errors import ApplianceError
from appliance.kiosk.display import Display, DisplayMode
from appliance.kiosk.gpu_display import RendererDisplay, open_display
from appliance.perception.stages import SegmentationStage
from appliance.render.compositor import Compositor
from appliance.render.gpu import PREVIEW_SIZE

SCREEN = (960, 540)


@pytest.fixture
def gpu():
    display = RendererDisplay(DisplayMode.HEADLESS, SCREEN, software=True)
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
    cpu = Compositor(scene, content_dir, SCREEN)
    painter = gpu.painter(scene, content_dir)
    for name, paint, compose in [
        ("person", lambda: painter.paint(astronaut, matte, 2.0), lambda: cpu.compose(astronaut, matte, 2.0)),
        ("world alone", lambda: painter.paint_world(2.0), lambda: cpu.compose_world(2.0)),
        ("raw camera", lambda: painter.paint(astronaut, None, 2.0), lambda: cpu.compose(astronaut, None, 2.0)),
    ]:
        preview = paint()
        want = compose()
        mean, p99 = differences(gpu.snapshot(), want)
        assert mean < 1.0 and p99 <= 8, f"{scene.id} {name}: mean {mean:.2f}, p99 {p99}"
        assert preview.shape == (PREVIEW_SIZE[1], PREVIEW_SIZE[0], 3)
        small_want = cv2.resize(want, PREVIEW_SIZE, interpolation=cv2.INTER_AREA)
        assert np.abs(preview.astype(int) - small_want).mean() < 6, f"{scene.id} {name}: the preview differs"
    # An experience that never reads the screen's picture costs no CPU copy of it; the screen is the same.
    shown = gpu.snapshot()
    assert painter.paint(astronaut, None, 2.0, picture=False) is None
    assert np.array_equal(gpu.snapshot(), shown)


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
    display.show(np.full((SCREEN[1], SCREEN[0], 3), (90, 60, 30), np.uint8))
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
    for make in (lambda: Display(DisplayMode.HEADLESS, SCREEN), lambda: open_display(DisplayMode.HEADLESS, SCREEN,
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
    display = open_display(DisplayMode.HEADLESS, SCREEN)
    try:
        assert display.compositor == "cpu"
    finally:
        display.close()
    display = open_display(DisplayMode.HEADLESS, SCREEN, "gpu")
    try:
        assert display.compositor == "gpu" and display.rasterises_on_cpu
        assert display.size == SCREEN
    finally:
        display.close()


def test_no_accelerated_renderer_falls_back_to_the_cpu(caplog: pytest.LogCaptureFixture) -> None:
    # SDL's dummy video driver (the tests' own) offers only its software renderer: "auto" must not take it for
    # a GPU, and forcing the GPU on a screen says why it cannot.
    with caplog.at_level(logging.WARNING):
        display = open_display(DisplayMode.WINDOWED, SCREEN)
    try:
        assert display.compositor == "cpu"
    finally:
        display.close()
    assert "no GPU compositor (SDL offers no hardware-accelerated renderer here)" in caplog.text
    with pytest.raises(ApplianceError, match="no hardware-accelerated renderer"):
        open_display(DisplayMode.WINDOWED, SCREEN, "gpu")


def test_an_unknown_compositor_is_refused_naming_the_key() -> None:
    with pytest.raises(ApplianceError, match=r"compositor 'metal' \(\[display\] compositor"):
        open_display(DisplayMode.HEADLESS, SCREEN, "metal")


def test_the_kiosk_runs_on_the_gpu_path_like_on_the_cpu(astronaut_file: Path, content_dir: Path) -> None:
    shots = {}
    for compositor in ("cpu", "gpu"):
        config = Config.model_validate({
            "source": {"uri": f"image:{astronaut_file}"},
            "display": {"width": SCREEN[0], "height": SCREEN[1], "compositor": compositor},
            "kiosk": {"content": str(content_dir)},
        })
        with kiosk_session(config, DisplayMode.HEADLESS) as kiosk:
            assert kiosk.display.compositor == compositor
            assert kiosk.run(max_frames=12) == 0
            shots[compositor] = kiosk.display.snapshot()
            assert kiosk.current == "menu"   # it reads the screen (its live card): a picture either way
            picture = kiosk.show_perception(kiosk._frame_perception, True)
            assert picture.shape[:2] == ((SCREEN[1], SCREEN[0]) if compositor == "cpu" else PREVIEW_SIZE[::-1])
            assert kiosk.stats.summary()["present"]["p50"] >= 0
    # Both show the menu over the world with the astronaut in it (snow and the title's pulse differ in time).
    mean, _ = differences(shots["gpu"], shots["cpu"])
    assert mean < 12, f"mean {mean:.2f}"
