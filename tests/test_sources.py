"""Frame sources and the capture thread: looping, pacing, bad files, a camera that comes and goes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_media import huge_png, person_jpeg, truncated_mp4

from appliance.errors import ApplianceError
from appliance.media import MediaLimits
from appliance.perception.demo import demo_image
from appliance.slot import LatestSlot
from appliance.sources.base import Frame
from appliance.sources.camera import SETTLE_FRAMES, CameraMode, CameraSource
from appliance.sources.capture import CaptureThread
from appliance.sources.files import StillSource, VideoFileSource
from appliance.sources.open import SourceSpec, open_source, parse_source


@pytest.fixture()
def short_video(tmp_path: Path) -> Path:
    path = tmp_path / "five.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for value in range(5):
        writer.write(np.full((48, 64, 3), value * 50, np.uint8))
    writer.release()
    return path


def test_video_loops_forever(short_video: Path) -> None:
    source = VideoFileSource(short_video, paced=False)
    frames = [source.read() for _ in range(12)]
    brightness = [int(frame.image.mean()) for frame in frames]
    assert [frame.index for frame in frames] == list(range(12))
    assert brightness[:5] == brightness[5:10]  # the sixth frame is the first again
    assert brightness[0] < brightness[4]


def test_video_is_paced_at_its_own_fps(short_video: Path) -> None:
    source = VideoFileSource(short_video, paced=True)
    started = time.monotonic()
    for _ in range(6):
        source.read()
    assert time.monotonic() - started >= 5 / 25 * 0.9


def test_image_source_repeats_the_image(astronaut_file: Path) -> None:
    source = open_source(f"image:{astronaut_file}", paced=False)
    first, second = source.read(), source.read()
    assert first.size == (512, 512) and second.index == 1
    assert np.array_equal(first.image, second.image)


def test_demo_source_is_a_16_9_person() -> None:
    frame = open_source("demo", paced=False, demo=demo_image).read()
    assert frame.size == (1280, 720)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("video:/nonexistent/clip.mp4", "video not found: /nonexistent/clip.mp4"),
        ("image:/nonexistent/still.png", "image not found"),
        ("camera:abc", "bad camera index"),
        ("webcam:0", "unknown source 'webcam:0'"),
        ("rtsp://cam/stream", "unknown source 'rtsp://cam/stream'"),
        ("video:", "unknown source 'video:'"),
        ("demo:x", "unknown source 'demo:x'"),
        ("", "unknown source ''"),
        ("/nonexistent/clip.mp4", "video not found: /nonexistent/clip.mp4"),
        ("/nonexistent/still.JPG", "image not found: /nonexistent/still.JPG"),
    ],
)
def test_bad_source_uris_say_what_is_wrong(uri: str, message: str) -> None:
    with pytest.raises(ApplianceError, match=message):
        open_source(uri)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("camera:2", SourceSpec("camera", "2")),
        ("camera", SourceSpec("camera", "0")),
        ("video:clip.mp4", SourceSpec("video", "clip.mp4")),
        ("image:still.png", SourceSpec("image", "still.png")),
        ("demo", SourceSpec("demo")),
        ("auto", SourceSpec("auto")),
        ("clip.mp4", SourceSpec("video", "clip.mp4")),
        ("/media/Clip.MOV", SourceSpec("video", "/media/Clip.MOV")),
        ("shots/still.JPEG", SourceSpec("image", "shots/still.JPEG")),
        ("./odd:name.png", SourceSpec("image", "./odd:name.png")),
    ],
)
def test_one_source_syntax_takes_uris_and_bare_paths(text: str, spec: SourceSpec) -> None:
    assert parse_source(text) == spec


def test_a_bare_path_opens_like_its_uri(tmp_path: Path, astronaut_file: Path, short_video: Path) -> None:
    assert open_source(str(short_video), paced=False).description == f"video:{short_video}"
    still = open_source(str(astronaut_file), paced=False)
    assert still.description == f"image:{astronaut_file}" and still.read().size == (512, 512)
    odd = tmp_path / "webcam:0"
    odd.write_bytes(short_video.read_bytes())
    assert open_source(str(odd), paced=False).description == f"video:{odd}"


def test_an_oversized_image_source_is_refused_at_once(tmp_path: Path) -> None:
    huge = huge_png(tmp_path / "huge.png")
    with pytest.raises(ApplianceError, match="20000x20000 .* over the limit of 40 megapixels"):
        open_source(f"image:{huge}")


def test_a_cut_jpeg_image_source_is_an_error(tmp_path: Path, astronaut: np.ndarray) -> None:
    cut = person_jpeg(tmp_path / "cut.jpg", astronaut, cut_at=1000)
    with pytest.raises(ApplianceError, match=f"cannot decode image {cut}: truncated JPEG"):
        open_source(f"image:{cut}")


def test_a_video_source_reports_where_a_truncated_file_ends(tmp_path: Path) -> None:
    cut = truncated_mp4(tmp_path / "cut.mp4", 50)
    source = open_source(f"video:{cut}", paced=False)
    decoded = 0
    with pytest.raises(ApplianceError, match=rf"video {cut} ends after (\d+) of its 50 frames") as failure:
        for _ in range(100):         # two passes of the declared length: never loop quietly over the cut
            source.read()
            decoded += 1
    assert 10 < decoded < 50 and f"after {decoded} of" in str(failure.value)
    source.reopen()
    assert source.read().index == decoded, "reopened, it plays again from the start"


def test_file_sources_take_the_configured_limits(short_video: Path, astronaut_file: Path) -> None:
    with pytest.raises(ApplianceError, match="64x48: over the limit of 32x2160"):
        open_source(f"video:{short_video}", limits=MediaLimits(video_width=32))
    with pytest.raises(ApplianceError, match="512x512 .* over the limit"):
        open_source(str(astronaut_file), limits=MediaLimits(image_side_px=500))


def test_corrupt_media_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01not a video" * 100)
    with pytest.raises(ApplianceError, match="cannot decode video"):
        open_source(f"video:{junk}")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ApplianceError, match="cannot decode image"):
        open_source(f"image:{broken}")


def test_absent_camera_fails_on_read_not_on_open() -> None:
    camera = CameraSource(63)
    with pytest.raises(ApplianceError, match="no camera at /dev/video63"):
        camera.read()


class UnpluggableCamera:
    """A test double for a camera that is unplugged after a few frames and plugged back later."""

    description = "test-camera"
    still_size = None

    def __init__(self) -> None:
        self.plugged = threading.Event()
        self.plugged.set()
        self.reopens = 0
        self._index = 0

    def read(self) -> Frame:
        if not self.plugged.is_set():
            raise ApplianceError("test camera unplugged")
        time.sleep(0.005)
        self._index += 1
        return Frame(np.zeros((4, 4, 3), np.uint8), self._index)

    def still(self, count: int) -> list[Frame]:
        return [self.read() for _ in range(count)]

    def reopen(self) -> None:
        self.reopens += 1
        if not self.plugged.is_set():
            raise ApplianceError("test camera still unplugged")

    def close(self) -> None:
        self.plugged.clear()


def wait_for(condition, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture()
def unpluggable() -> Iterator[tuple[UnpluggableCamera, LatestSlot[Frame], CaptureThread]]:
    """A capture thread reading the unpluggable camera, retrying fast, once frames flow."""
    camera = UnpluggableCamera()
    slot: LatestSlot[Frame] = LatestSlot()
    capture = CaptureThread(camera, slot, retry_initial=0.02, retry_max=0.05).start()
    try:
        assert wait_for(lambda: slot.latest()[0] > 3)
        yield camera, slot, capture
    finally:
        capture.stop()


def test_capture_thread_survives_an_unplugged_camera_and_recovers(unpluggable: tuple) -> None:
    camera, slot, capture = unpluggable
    camera.plugged.clear()
    assert wait_for(lambda: capture.problem is not None)
    assert "unplugged" in capture.problem
    stalled_at = slot.latest()[0]
    assert wait_for(lambda: camera.reopens >= 2)
    assert slot.latest()[0] <= stalled_at + 1
    camera.plugged.set()
    assert wait_for(lambda: capture.problem is None and slot.latest()[0] > stalled_at + 3)


def test_an_image_larger_than_the_live_size_is_filmed_at_it_and_photographed_at_its_own(astronaut: np.ndarray) -> None:
    source = StillSource(astronaut, "image:astronaut", fps=0, live_size=(320, 240))
    live = source.read()
    assert live.size == (240, 240), "fitted inside 320x240, its aspect kept"
    assert source.still_size == (512, 512)
    stills = source.still(2)
    assert [still.size for still in stills] == [(512, 512)] * 2 and np.array_equal(stills[0].image, astronaut)
    assert [still.index for still in stills] == [1, 2] and source.read().size == (240, 240)
    small = StillSource(astronaut, "image:astronaut", fps=0, live_size=(1280, 720))
    assert small.still_size is None and small.read().size == (512, 512), "never scaled up"


class ScriptedV4L2:
    """A test double for ``cv2.VideoCapture`` on a V4L2 camera (there is none on this machine): it keeps the
    size last set, as a driver does once its stream restarts, numbers its frames, and counts the restarts."""

    def __init__(self, sizes: set[tuple[int, int]]) -> None:
        self.sizes, self.size, self.reads, self.restarts = sizes, (640, 480), 0, 0
        self._pending: list[int] = [640, 480]

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return True

    def set(self, prop: int, value: float) -> bool:
        if prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT):
            self._pending[prop == cv2.CAP_PROP_FRAME_HEIGHT] = int(value)
            if tuple(self._pending) in self.sizes and tuple(self._pending) != self.size:
                self.size, self.restarts = tuple(self._pending), self.restarts + 1
        return True

    def get(self, prop: int) -> float:
        return {cv2.CAP_PROP_FRAME_WIDTH: self.size[0], cv2.CAP_PROP_FRAME_HEIGHT: self.size[1]}.get(prop, 0.0)

    def read(self) -> tuple[bool, np.ndarray]:
        self.reads += 1
        return True, np.full((self.size[1], self.size[0], 3), self.reads % 256, np.uint8)

    def release(self) -> None:
        """Nothing held."""


def test_a_camera_photographs_in_its_still_mode_after_it_settles_and_films_live_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("appliance.sources.camera.camera_present", lambda index: True)
    device = ScriptedV4L2({(1280, 720), (1920, 1080)})
    camera = CameraSource(0, CameraMode(still_width=1920, still_height=1080), open_capture=lambda index: device)
    assert camera.still_size == (1920, 1080) and camera.read().size == (1280, 720)
    reads = device.reads
    stills = camera.still(3)
    assert [still.size for still in stills] == [(1920, 1080)] * 3
    assert device.reads == reads + SETTLE_FRAMES + 3, "the frames after the switch are dropped"
    assert camera.read().size == (1280, 720) and device.restarts == 3, "live, still, live"
    assert CameraSource(0, CameraMode(still_width=1280, still_height=720)).still_size is None, "no larger: none"


def test_a_camera_without_the_still_mode_still_photographs_and_says_which_size_it_gave(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("appliance.sources.camera.camera_present", lambda index: True)
    device = ScriptedV4L2({(1280, 720)})
    camera = CameraSource(0, CameraMode(still_width=3840, still_height=2160), open_capture=lambda index: device)
    assert [still.size for still in camera.still(1)] == [(1280, 720)]
    assert "gives 1280x720, not the configured still size 3840x2160" in caplog.text
    assert camera.read().size == (1280, 720)


def test_the_capture_thread_takes_the_photos_asked_for_between_live_frames(astronaut: np.ndarray) -> None:
    source = StillSource(astronaut, "image:astronaut", fps=200, live_size=(256, 256))
    slot: LatestSlot[Frame] = LatestSlot()
    capture = CaptureThread(source, slot).start()
    try:
        assert wait_for(lambda: slot.latest()[0] > 2)
        asked = []
        askers = [threading.Thread(target=lambda: asked.append(capture.still(2))) for _ in range(2)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(5)
        assert [[still.size for still in stills] for stills in asked] == [[(512, 512)] * 2] * 2
        counted = slot.latest()[0]
        assert wait_for(lambda: slot.latest()[0] > counted + 2) and slot.latest()[1].size == (256, 256)
    finally:
        capture.stop()


def test_a_failed_photo_reaches_the_asker_and_the_capture_recovers(unpluggable: tuple) -> None:
    camera, slot, capture = unpluggable
    camera.plugged.clear()
    with pytest.raises(ApplianceError, match="unplugged"):
        capture.still(1)
    camera.plugged.set()
    assert wait_for(lambda: capture.problem is None)
    assert len(capture.still(2)) == 2
    capture.stop()
    with pytest.raises(ApplianceError, match="test-camera gave no photo within 0 s"):
        capture.still(1, timeout_s=0.05)


def test_slot_keeps_only_the_newest_value_and_wakes_waiters() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.latest() == (0, None)
    for value in range(100):
        slot.put(value)
    assert slot.latest() == (100, 99)
    assert slot.newer_than(100, timeout=0.01) == (100, 99)  # timed out, still answers
    threading.Timer(0.05, slot.put, args=(7,)).start()
    assert slot.newer_than(100, timeout=2.0) == (101, 7)


def test_a_worker_survives_an_unexpected_error_and_reports_it() -> None:
    from appliance.worker import Worker

    class Flaky(Worker):
        def __init__(self) -> None:
            super().__init__("flaky")
            self.calls = 0

        def step(self) -> None:
            self.calls += 1
            if self.calls == 2:
                raise ValueError("a numpy surprise")
            self.pause(0.001)

    worker = Flaky().start()
    try:
        assert wait_for(lambda: worker.calls > 5)
        assert worker.problem == "ValueError: a numpy surprise"
    finally:
        worker.stop()
