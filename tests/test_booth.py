"""The star photo booth: the visit as a pure state machine on a fake clock, then the booth played through the
test kit on the kiosk's real photo desk — the real compose on the astronaut, a real S3 server (SeaweedFS,
tests/s3server.py) and a real CUPS with a cups-pdf queue (tests/cupsd.py), one of each for the module.

Refused consent leaves nothing anywhere; given consent uploads (the QR decodes to a link serving the
photo's bytes) and prints (a PDF comes out); the storage down offers no QR and uploads later; a paused
printer is said on screen and raised as the ``printer`` alert; the photo's copies leave the device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from cupsd import Cups, pdf_queue
from netproxy import Proxy
from s3server import S3Server, http_get
from test_printing import images, read_pdf
from test_share import closed_port, wait_for

from appliance.alerts import Alerts
from appliance.compose import photo_desk as kiosk_photo_desk
from appliance.config import Config
from appliance.content import Bundle, load_bundle
from appliance.errors import ApplianceError
from appliance.experience.api import MENU, Action, Moment, Perception
from appliance.experience.keepsake import Keepsake
from appliance.experience.photo import PhotoConfig
from appliance.experience.registry import installed
from appliance.experience.testkit import SESSION, FakeContext, gestures, moment, play
from appliance.experiences.photobooth import experience
from appliance.experiences.photobooth.booth import Booth, Phase, Rules
from appliance.inference.backend import Inference
from appliance.kiosk.keepsakes import KioskKeepsakes
from appliance.perception.still_faces import StillFaces
from appliance.photo.compose import compose_photo
from appliance.photo.desk import PhotoDesk
from appliance.photo.style import Styler, sample_picture, samples, styled_photo
from appliance.printing import PrintService
from appliance.printing.service import ATTENTION, PRINTING, PrintStatus
from appliance.share import ShareService
from appliance.share.queue import queue_directory
from appliance.sources.base import Frame

DEVICE = "booth-1"
VISIT = "visit-1"
QR_PX = 1080 * 2 // 5   # the QR's size on the test kit's 1080-line screen


# --- the visit, pure --------------------------------------------------------------------------------

def counted_down(booth: Booth, start: float) -> list[int]:
    """The numbers shown from ``start`` on, a frame every 0.1 s, until the photo is asked for."""
    shown, now = [], start
    while not booth.want_photo:
        assert now < start + 10, "the countdown never ended"
        shown.append(booth.seconds_left(now))
        now = round(now + 0.1, 3)
        booth.update(now, None)
    return shown


def test_a_held_thumbs_up_counts_down_on_the_clock_and_asks_for_the_photo_once() -> None:
    booth = Booth(Rules(), now=0.0)
    for now in (0.0, 0.3, 0.5):
        booth.update(now, "thumb_up")
    assert booth.phase is Phase.PREVIEW, "held for less than hold_s"
    booth.update(0.6, "thumb_up")
    assert booth.phase is Phase.COUNTDOWN and not booth.want_photo
    shown = counted_down(booth, 0.6)   # one update a frame: the countdown is the clock, it never waits
    assert sorted(set(shown), reverse=True) == [3, 2, 1] and shown == sorted(shown, reverse=True)
    assert len(shown) == 30, "3 s of frames at 10 per second"
    assert booth.phase is Phase.DEVELOPING and booth.takes == 1
    for now in (3.7, 3.8):
        booth.update(now, "thumb_up")
    assert booth.want_photo and booth.takes == 1, "asked for once, however long the photo takes"
    booth.taken(3.9)
    assert booth.phase is Phase.REVIEW and not booth.want_photo
    victory = Booth(Rules(hold_s=0.2), now=0.0)
    for now in (0.0, 0.1, 0.2):
        victory.update(now, "scissors")
    assert victory.phase is Phase.COUNTDOWN, "a victory sign starts it too"
    palm = Booth(Rules(hold_s=0.2), now=0.0)
    for now in (0.0, 0.5, 1.0):
        palm.update(now, "open_palm")
    assert palm.phase is Phase.PREVIEW


def reviewing(rules: Rules) -> Booth:
    """A booth showing its first photo, taken at 10 s (the technician's key started the countdown at 0)."""
    booth = Booth(rules, now=0.0)
    booth.update(0.0, None, shoot=True)
    booth.update(rules.countdown_s, None)
    booth.taken(10.0)
    return booth


def test_a_thumbs_up_held_since_the_countdown_is_no_consent() -> None:
    """Before: the thumbs up that took the photo (and is often in it) consented by itself 1.6 s after the photo
    appeared, and the photo was uploaded and printed without the shopper meaning to."""
    booth = Booth(Rules(), now=0.0)
    for now in np.arange(0.0, 0.8, 0.1):
        booth.update(float(now), "thumb_up")
    for now in np.arange(0.8, 3.9, 0.1):
        booth.update(float(now), "thumb_up")
    booth.taken(4.0)
    for now in np.arange(4.0, 12.0, 0.1):
        booth.update(float(now), "thumb_up")
    assert booth.phase is Phase.REVIEW and not booth.consented
    booth.update(12.0, None)   # lowered...
    for now in np.arange(12.1, 12.9, 0.1):
        booth.update(float(now), "thumb_up")   # ...and raised again
    assert booth.consented and booth.phase is Phase.DONE


def test_the_photo_thumbs_up_lowered_while_the_notice_is_read_then_raised_consents() -> None:
    """Before: lowered within the reading time, the spent hold was never released and a real consent was ignored."""
    booth = Booth(Rules(), now=0.0)
    for now in np.arange(0.0, 3.9, 0.1):
        booth.update(float(now), "thumb_up")
    booth.taken(4.0)
    booth.update(4.3, None)   # lowered half-way through the reading time
    for now in np.arange(5.2, 6.0, 0.1):
        booth.update(float(now), "thumb_up")
    assert booth.consented and booth.phase is Phase.DONE


def test_a_review_left_alone_ends_the_visit_without_consent() -> None:
    booth = reviewing(Rules(review_s=30.0))
    for now in np.arange(10.0, 40.5, 0.5):
        booth.update(float(now), None)
    assert booth.phase is Phase.OVER and not booth.consented


def test_a_thumbs_up_consents_only_once_the_notice_could_be_read() -> None:
    booth = reviewing(Rules())
    for now in np.arange(10.0, 10.99, 0.1):
        booth.update(float(now), "thumb_up", consent_key=True)
    assert booth.phase is Phase.REVIEW and not booth.consented, "consent before the reading time"
    booth.update(11.0, "thumb_up")
    booth.update(11.5, "thumb_up")
    assert booth.phase is Phase.REVIEW, "the hold counts from the reading time on"
    booth.update(11.7, "thumb_up")
    assert booth.phase is Phase.DONE and booth.consented
    booth.update(36.6, None)
    assert not booth.finished
    booth.update(36.7, None)
    assert booth.phase is Phase.OVER and booth.finished, "done_s after consent"


def test_retakes_are_offered_up_to_the_limit_and_a_failed_photo_goes_back_to_the_preview() -> None:
    booth = reviewing(Rules(retakes=2))
    for left in (2, 1):
        assert booth.retakes_left == left
        booth.update(booth.since + 0.1, None, retake=True)
        assert booth.phase is Phase.PREVIEW
        booth.update(booth.since, None, shoot=True)
        booth.update(booth.since + 3.0, None)
        booth.taken(booth.since + 1.0)
    assert booth.takes == 3 and booth.retakes_left == 0
    booth.update(booth.since + 2.0, None, retake=True)
    assert booth.phase is Phase.REVIEW, "a retake past the limit"
    failing = reviewing(Rules(retakes=1))
    failing.update(failing.since, None, retake=True)
    failing.update(failing.since, None, shoot=True)
    failing.update(failing.since + 3.0, None)
    failing.failed(20.0)
    assert failing.phase is Phase.FAILED and not failing.want_photo and failing.takes == 1
    failing.update(22.9, None)
    assert failing.phase is Phase.FAILED
    failing.update(23.0, None)
    assert failing.phase is Phase.PREVIEW and failing.retakes_left == 1, "a failed photo is not a take"


# --- the booth on the kiosk's real photo desk -------------------------------------------------------------

def test_swipes_in_the_preview_choose_the_style_which_stays_through_the_photo_and_its_retakes() -> None:
    booth = Booth(Rules(styles=4), now=0.0)
    assert booth.style == 0, "the original photo first"
    booth.update(0.1, None, step=1)
    assert booth.style == 1
    for now in (0.2, 0.3):
        booth.update(now, None, retake=True, step=-1)
    assert booth.style == 3 and booth.phase is Phase.PREVIEW, "previous from the original wraps round to the last"
    booth.update(0.4, None, shoot=True)
    booth.update(0.5, None, retake=True, step=1)
    assert booth.phase is Phase.COUNTDOWN and booth.style == 3, "a swipe in the countdown changes nothing"
    booth.update(3.4, None)
    booth.taken(5.0)
    booth.update(5.1, None, retake=True, step=1)
    assert booth.phase is Phase.PREVIEW and booth.style == 3, "on the review a swipe is a retake, the style kept"
    booth.update(5.2, None, retake=True, step=1)
    assert booth.style == 0
    assert Booth(Rules(styles=3, style=2), now=0.0).style == 2, "the campaign's style_default"
    alone = Booth(Rules(), now=0.0)
    alone.update(0.1, None, retake=True, step=1)
    assert alone.style == 0 and alone.phase is Phase.PREVIEW, "without styles a swipe in the preview does nothing"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"), devices=(DEVICE,)).start()
    try:
        server.create_bucket()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cups() -> Iterator[Cups]:
    yield from pdf_queue()


@pytest.fixture(scope="module")
def bundle(content_dir: Path) -> Bundle:
    return load_bundle(content_dir, installed())


@pytest.fixture(scope="module")
def photo_desk(bundle: Bundle, inference: Inference) -> PhotoDesk:
    return PhotoDesk(bundle, inference)


@pytest.fixture(scope="module")
def shopper(astronaut: np.ndarray, photo_desk: PhotoDesk) -> list[Perception]:
    """The astronaut as the camera saw them: a blurred frame, then a sharp one, with the still matte's alpha."""
    alpha = photo_desk.matte.matte(astronaut)
    coverage = float(alpha.mean() / 255)
    assert coverage > 0.2, "the matte found the astronaut"
    return [Perception(Frame(image, index, float(index)), alpha, coverage)
            for index, image in enumerate((cv2.GaussianBlur(astronaut, (0, 0), 4), astronaut))]


def config(tmp_path: Path, s3: S3Server, cups: Cups | None, endpoint_url: str | None = None) -> Config:
    """Sharing to ``s3`` (or ``endpoint_url``), printing to ``cups`` (off without)."""
    credentials = s3.devices[DEVICE].write(tmp_path / "credentials")
    printing = {"enabled": False} if cups is None else {
        "enabled": True, "queue": cups.queue, "server": cups.server, "poll_s": 0.2}
    return Config.model_validate({
        "device_id": DEVICE,
        "share": {"endpoint_url": endpoint_url or s3.endpoint_url, "bucket": s3.bucket,
                  "credentials_dir": str(credentials)},
        "printing": printing,
        "paths": {"state_dir": str(tmp_path / "state")}})


def kiosk_desk(cfg: Config | None, alerts: Alerts, photo_desk: PhotoDesk, shopper: list[Perception], tmp_path: Path,
               clock: Callable[[], float] = time.monotonic,
               stills: Callable[[int], list[Frame]] | None = None, styler: Styler | None = None) -> KioskKeepsakes:
    """The kiosk's photo desk as ``compose.photo_desk`` builds it (sharing and printing off without ``cfg``; with
    ``styler``, photos and samples painted in the campaign's styles), having seen the shopper."""
    services = {} if cfg is None else {
        "start_share": lambda: ShareService.from_config(cfg, DEVICE, environ={}),
        "start_printer": lambda outcome: PrintService.from_config(cfg, alerts, cfg.paths.state_dir, outcome)}
    config = photo_desk.config
    if styler is not None:
        services["samples"] = lambda bundle, world: samples(styler, sample_picture(photo_desk.background,
                                                                                   photo_desk.star))

    def compose(bundle: Bundle, world: str, frame: np.ndarray, pose: object, style: str | None) -> object:
        photo = compose_photo(frame, photo_desk, pose)
        if style is None:
            return photo
        return styled_photo(photo, styler, style, config.jpeg_quality, config.screen_size())

    desk = KioskKeepsakes(compose, tmp_path / "photos", clock=clock, stills=stills, **services)
    for perception in shopper:
        desk.remember(perception)
    return desk


def booth_context(desk: KioskKeepsakes, bundle: Bundle) -> FakeContext:
    """The booth's context with the desk as ``Context.keepsakes``, the desk's events going to the context."""
    context = FakeContext(experience, bundle.configs["photo"].model_dump(), campaign=bundle.name)
    context.keepsakes = desk.for_jobs(context.jobs.submit)
    desk.attach(context.publish, lambda: VISIT, lambda: (bundle, bundle.scenes[0].id))
    return context


class Unfolding:
    """A ``play`` script made as the scene runs (``play`` reads the first moment, then iterates): between two
    moments the test checks what the scene did and waits, in real time, for the uploader or the printer."""

    def __init__(self, moments: Iterator[Moment]) -> None:
        self._first, self._rest = next(moments), moments

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, index: int) -> Moment:
        if index != 0:
            raise IndexError(index)
        return self._first

    def __iter__(self) -> Iterator[Moment]:
        yield self._first
        yield from self._rest


class Shopper:
    """The moments of a visit on a fake clock; the desk ticks before each, as in the kiosk's loop."""

    def __init__(self, desk: KioskKeepsakes) -> None:
        self.desk, self.now = desk, 0.0

    def frame(self, step: float = 0.1, **kwargs: object) -> Moment:
        self.now = round(self.now + step, 3)
        self.desk.tick()
        return moment(self.now, **kwargs)

    def hold(self, gesture: str | None, seconds: float) -> Iterator[Moment]:
        end = self.now + seconds
        while self.now < end:
            yield self.frame(gestures=gestures(gesture) if gesture else None)

    def until(self, condition: Callable[[], object], what: str, timeout_s: float = 30.0) -> Iterator[Moment]:
        """Frames 20 ms apart on the fake clock, 0.1 s apart in real time, until ``condition``."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} within {timeout_s:.0f} s")
            time.sleep(0.1)
            yield self.frame(step=0.02)

    def photo(self, context: FakeContext) -> Iterator[Moment]:
        """Thumbs up held, the countdown, the photo composed and on screen."""
        yield from self.hold("thumb_up", 0.8)
        yield from self.hold(None, 3.0)
        yield from self.until(lambda: photo_jobs(context) and photo_jobs(context)[-1].done, "no photo")
        yield self.frame()

    def consent(self) -> Iterator[Moment]:
        yield from self.hold(None, 1.0)
        yield from self.hold("thumb_up", 0.7)


def photo_jobs(context: FakeContext) -> list:
    """The photo jobs submitted (the styles' samples, asked for at the start, aside)."""
    return [job for job in context.jobs.submitted if job.name == "photo"]


def taken(context: FakeContext) -> Keepsake:
    return photo_jobs(context)[-1].result()


def on_screen(status: str) -> str:
    """A printer status line as the done screen writes it."""
    return status[:1].upper() + status[1:]


def objects(s3: S3Server) -> list[str]:
    listing = s3.admin_client().list_objects_v2(Bucket=s3.bucket, Prefix=f"photos/{DEVICE}/")
    return [entry["Key"] for entry in listing.get("Contents", [])]


def qr_pictures(context: FakeContext) -> list[np.ndarray]:
    return [call.args["image"] for call in context.named("picture")
            if call.args["image"].shape[:2] == (QR_PX, QR_PX)]


def decoded(picture: np.ndarray) -> str:
    """What the QR code says (OpenCV's ArUco-based detector: the classic one misses about a third of these
    dense pre-signed links, the ArUco one none of 40 tried)."""
    text, _, _ = cv2.QRCodeDetectorAruco().detectAndDecode(picture)
    return text


def test_refused_consent_keeps_nothing_and_given_consent_uploads_and_prints(
        s3: S3Server, cups: Cups, bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception],
        tmp_path: Path) -> None:
    desk = kiosk_desk(config(tmp_path, s3, cups), Alerts(), photo_desk, shopper, tmp_path)
    context = booth_context(desk, bundle)
    pdfs_before = len(cups.pdfs())
    seen: dict[str, object] = {}

    def visit(shopper: Shopper) -> Iterator[Moment]:
        yield moment(0.0)
        yield from shopper.hold("thumb_up", 0.8)
        assert context.texts(-1) == ["3"] and not photo_jobs(context), "the countdown is on, no photo yet"
        yield from shopper.hold(None, 3.0)
        assert "1" in context.texts() and "2" in context.texts()
        yield from shopper.until(lambda: photo_jobs(context) and photo_jobs(context)[-1].done, "no photo")
        assert len(photo_jobs(context)) == 1, "one photo asked for"
        yield shopper.frame()
        first = taken(context)
        assert context.published("photo_taken")[0]["photo_id"] == first.photo_id
        assert desk.private_on, "a finished photo is on screen: no fleet screenshot"
        path = tmp_path / "photos" / f"{first.photo_id}.jpg"
        assert path.is_file() and path.stat().st_mode & 0o777 == 0o600
        assert len(context.named("picture", -1)) == 1, "the finished photo is shown"
        assert "Your photo is uploaded for 24 h for your QR link, then deleted; it is printed here" in context.texts(-1)
        yield from shopper.hold(None, 1.2)
        yield shopper.frame(actions=(Action.NEXT,))   # a swipe: try again
        assert context.published("photo_retake") == [{"session": SESSION, "campaign": bundle.name,
                                                      "photo_id": first.photo_id, "take": 1}]
        assert not desk.private_on and not path.exists(), "a refused photo leaves the screen and the device"
        yield from shopper.until(lambda: desk.share is not None and desk.share.online, "the storage never answered")
        yield from shopper.hold(None, 2.0)
        assert not any(queue_directory(tmp_path / "state").iterdir()) and not desk.share.done(first.photo_id)
        first_key = f"photos/{DEVICE}/{first.photo_id}.jpg"
        assert first_key not in objects(s3) and len(cups.pdfs()) == pdfs_before, "a refused photo left the screen"
        yield from shopper.photo(context)
        second = taken(context)
        assert second.photo_id != first.photo_id and desk.private_on
        seen["jpeg"] = (tmp_path / "photos" / f"{second.photo_id}.jpg").read_bytes()
        yield from shopper.consent()
        yield from shopper.until(lambda: qr_pictures(context), "no QR code offered")
        seen["link"] = desk.link(second)
        assert decoded(qr_pictures(context)[-1]) == seen["link"]
        yield from shopper.until(lambda: context.published("photo_printed"), "the photo was not printed", 60)
        yield shopper.frame()
        assert desk.private_on, "the photo is still on screen"
        assert not (tmp_path / "photos" / f"{second.photo_id}.jpg").exists(), "deleted once uploaded and printed"
        seen["texts"] = context.texts(-1)
        yield from shopper.hold(None, 26.0)

    context = play(experience, None, Unfolding(visit(Shopper(desk))), context)
    try:
        second = taken(context)
        assert context.target == MENU and context.exits == ["done"], "back to the menu after the done screen"
        assert not desk.private_on
        assert f"photos/{DEVICE}/{second.photo_id}.jpg" in objects(s3)
        assert http_get(str(seen["link"])) == (200, seen["jpeg"]), "the QR's link serves the photo"
        assert "Scan to take your photo home" in seen["texts"] and on_screen(PRINTING) in context.texts()
        for kind in ("photo_shared", "photo_printed"):
            assert context.published(kind) == [{"session": VISIT, "campaign": bundle.name,
                                                "photo_id": second.photo_id}], kind
        assert [event["take"] for event in context.published("photo_taken")] == [1, 2]
        assert len(cups.pdfs()) == pdfs_before + 1
        [(width, height, _)] = images(read_pdf(cups.pdfs()[-1]))
        assert (width, height) == (1800, 1200), "printed at 6x4 in, 300 dpi"
    finally:
        desk.stop()


def test_with_the_storage_down_no_qr_is_offered_and_the_photo_is_uploaded_once_it_is_back(
        s3: S3Server, cups: Cups, bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception],
        tmp_path: Path) -> None:
    proxy = Proxy(("127.0.0.1", 0), ("127.0.0.1", s3.ports["s3"])).start()
    port = int(proxy.address.rsplit(":", 1)[1])
    proxy.close()
    desk = kiosk_desk(config(tmp_path, s3, cups, f"http://127.0.0.1:{port}"), Alerts(), photo_desk, shopper,
                      tmp_path)
    context = booth_context(desk, bundle)
    seen: dict[str, object] = {}

    def visit(shopper: Shopper) -> Iterator[Moment]:
        nonlocal proxy
        yield moment(0.0)
        yield from shopper.photo(context)
        yield from shopper.until(lambda: desk.share.online is False and desk.can_print(),
                                 "the storage was not found down, or the printer not up")
        yield from shopper.consent()
        yield shopper.frame()
        photo = taken(context)
        assert "Your photo will be printed" in context.texts(-1)
        assert desk.link(photo) is None and qr_pictures(context) == [], "a QR code that would not work"
        yield from shopper.until(lambda: context.published("photo_printed"), "the photo was not printed", 60)
        assert not desk.share.done(photo.photo_id) and f"photos/{DEVICE}/{photo.photo_id}.jpg" not in objects(s3)
        proxy = Proxy(("127.0.0.1", port), ("127.0.0.1", s3.ports["s3"])).start()
        yield from shopper.until(lambda: desk.share.done(photo.photo_id), "the queued photo was not uploaded")
        yield shopper.frame()
        yield shopper.frame()
        seen["link"], seen["qr"] = desk.link(photo), qr_pictures(context)

    try:
        context = play(experience, None, Unfolding(visit(Shopper(desk))), context)
        photo = taken(context)
        assert f"photos/{DEVICE}/{photo.photo_id}.jpg" in objects(s3), "uploaded once the storage was back"
        assert [event["photo_id"] for event in context.published("photo_shared")] == [photo.photo_id]
        assert not (tmp_path / "photos" / f"{photo.photo_id}.jpg").exists(), "deleted once uploaded and printed"
        # before: printed first, the photo was forgotten with its link as the upload ended: the QR never came
        assert str(seen["link"]).startswith(f"http://127.0.0.1:{port}/")
        assert seen["qr"] and decoded(seen["qr"][-1]) == seen["link"]
    finally:
        desk.stop()
        proxy.close()


def test_a_paused_printer_is_not_offered_nothing_is_sent_to_it_and_the_alert_is_raised(
        s3: S3Server, cups: Cups, bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception],
        tmp_path: Path) -> None:
    """Before: the photo was sent to the paused queue though the prompt offered only the QR, and would have come
    out of the printer once someone enabled it, after the shopper had gone."""
    alerts = Alerts()
    cups.run("cupsdisable", "-r", "paper out: load 4x6 media", cups.queue)
    desk = kiosk_desk(config(tmp_path, s3, cups), alerts, photo_desk, shopper, tmp_path)
    context = booth_context(desk, bundle)

    def visit(shopper: Shopper) -> Iterator[Moment]:
        yield moment(0.0)
        yield from shopper.photo(context)
        yield from shopper.until(lambda: alerts.current() and desk.can_share(), "no alert, or no storage", 10)
        assert not desk.can_print()
        yield shopper.frame()
        assert "Thumbs up: take it home by QR · swipe: try again" in context.texts(-1)
        assert "Your photo is uploaded for 24 h for your QR link, then deleted" in context.texts(-1)
        yield from shopper.consent()
        yield from shopper.until(lambda: qr_pictures(context), "no QR code offered")
        yield shopper.frame()
        assert not any("print" in line for line in context.texts(-1)), "no print line: nothing was printed"

    try:
        context = play(experience, None, Unfolding(visit(Shopper(desk))), context)
        [alert] = alerts.current()
        assert (alert.code, alert.reason) == ("printer", f"printer {cups.queue} stopped: paused "
                                                         "(paper out: load 4x6 media)")
        assert cups.run("lpstat", "-o", cups.queue).strip() == "", "nothing waits in the paused queue"
        assert context.published("photo_printed") == [] and context.published("print_failed") == []
    finally:
        desk.stop()
        cups.run("cancel", "-a", cups.queue)
        cups.run("cupsenable", cups.queue)


def test_the_photo_leaves_the_device_after_retention_even_on_screen(
        bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception], tmp_path: Path) -> None:
    clock = [0.0]
    desk = kiosk_desk(None, Alerts(), photo_desk, shopper, tmp_path, clock=lambda: clock[0])
    context = booth_context(desk, bundle)

    def visit(shopper: Shopper) -> Iterator[Moment]:
        yield moment(0.0)
        yield from shopper.photo(context)
        path = tmp_path / "photos" / f"{taken(context).photo_id}.jpg"
        assert path.is_file() and desk.private_on
        yield shopper.frame()
        assert path.is_file()
        clock[0] += desk.retention_s
        yield shopper.frame()
        assert not path.exists() and desk.private_on, "retention deletes the file; the screen stays private"
        yield shopper.frame(actions=(Action.BACK,))

    context = play(experience, None, Unfolding(visit(Shopper(desk))), context)
    assert context.target == MENU and not desk.private_on and list((tmp_path / "photos").iterdir()) == []


def test_with_a_still_mode_the_photo_is_the_sharpest_of_a_full_resolution_burst(
        bundle: Bundle, astronaut: np.ndarray, photo_desk: PhotoDesk, tmp_path: Path) -> None:
    live = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(photo_desk.matte.matte(astronaut), (256, 256))
    seen = [Perception(Frame(live, 0), alpha, float(alpha.mean() / 255))]
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 3)
    burst = [Frame(image, index) for index, image in enumerate((blurred, astronaut, blurred))]
    composed: list[np.ndarray] = []
    desk = kiosk_desk(None, Alerts(), photo_desk, seen, tmp_path, stills=lambda count: burst[:count])
    desk.compose = lambda bundle, world, frame, pose, style: (composed.append(frame)
                                                              or compose_photo(frame, photo_desk, pose))
    keepsake = desk.make(list(desk._recent), (bundle, bundle.scenes[0].id))
    assert composed[0] is astronaut, "the sharp full-resolution still, not the live frame or a blurred one"
    assert keepsake.timings_ms["still"] >= 0 and keepsake.timings_ms["total"] >= keepsake.timings_ms["still"]


def test_a_burst_the_camera_fails_leaves_the_live_frame(
        bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    def unplugged(count: int) -> list[Frame]:
        raise ApplianceError("camera:0 gave no photo within 5 s")

    composed: list[np.ndarray] = []
    desk = kiosk_desk(None, Alerts(), photo_desk, shopper, tmp_path, stills=unplugged)
    desk.compose = lambda bundle, world, frame, pose, style: (composed.append(frame)
                                                              or compose_photo(frame, photo_desk, pose))
    desk.make(list(desk._recent), (bundle, bundle.scenes[0].id))
    assert composed[0] is shopper[1].frame.image, "the sharp live frame"
    assert "no full-resolution photo (camera:0 gave no photo within 5 s): the photo is the live frame" in caplog.text


def test_an_upload_that_ends_after_a_restart_is_still_announced_with_its_campaign_and_session(
        s3: S3Server, bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception], tmp_path: Path) -> None:
    down = config(tmp_path, s3, None, f"http://127.0.0.1:{closed_port()}")
    before = kiosk_desk(down, Alerts(), photo_desk, shopper, tmp_path)
    before.attach(lambda type, data: None, lambda: VISIT, lambda: (bundle, bundle.scenes[0].id))
    before.start()
    keepsake = before.make(list(before._recent), before.place())
    before.keep(keepsake, share=True, print=False)
    before.stop()   # the kiosk restarts before the storage answers

    events: list[tuple[str, dict]] = []
    up = config(tmp_path, s3, None)
    after = kiosk_desk(up, Alerts(), photo_desk, [], tmp_path)
    after.attach(lambda type, data: events.append((type, data)), lambda: "a-later-visit", lambda: (bundle, ""))
    after.start()
    try:
        assert wait_for(lambda: after.tick() or events, 20), "the upload was never announced"
        assert events == [("photo_shared", {"session": VISIT, "campaign": bundle.name, "photo_id": keepsake.photo_id})]
        assert f"photos/{DEVICE}/{keepsake.photo_id}.jpg" in objects(s3)
        after.tick()
        assert len(events) == 1, "announced once"
        assert after.share.to_announce() == []
    finally:
        after.stop()


def test_the_notice_says_what_this_screen_does_with_the_photo(
        s3: S3Server, bundle: Bundle, photo_desk: PhotoDesk, tmp_path: Path) -> None:
    alone = kiosk_desk(None, Alerts(), photo_desk, [], tmp_path)
    assert alone.notice(None) == "Your photo stays on this screen and is deleted within 10 min"
    assert alone.notice("Uploaded for {hours} h") == alone.notice(None), "a campaign's notice only where it is true"
    cfg = config(tmp_path, s3, None)
    cfg = cfg.model_copy(update={"share": cfg.share.model_copy(update={"link_expiry_h": 48})})
    sharing = kiosk_desk(cfg, Alerts(), photo_desk, [], tmp_path)
    sharing.start()
    try:
        assert sharing.notice(None) == "Your photo is uploaded for 48 h for your QR link, then deleted"
        assert sharing.notice("Foto {hours} h online, {minutes} min hier") == "Foto 48 h online, 10 min hier"
    finally:
        sharing.stop()
    with pytest.raises(ValueError, match=r"only \{hours\} and \{minutes\} may be filled in"):
        PhotoConfig.model_validate({"star": "star.png", "notice": "kept {days} days"})


class ParkedPrinter:
    """A test double for the print desk whose printer needs attention (its real statuses are in test_printing)."""

    printer_ok = True

    def submit(self, photo_id: str, path: Path, labels: dict[str, str | None]) -> None:
        self.photo_id = photo_id

    def status(self, photo_id: str) -> PrintStatus | None:
        return PrintStatus("waiting", ATTENTION) if photo_id == self.photo_id else None

    def forget(self, photo_id: str) -> None:
        """Nothing kept."""

    def stop(self) -> None:
        """Nothing running."""


def test_the_printer_sends_the_shopper_to_the_qr_only_for_a_photo_being_shared(
        bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception], tmp_path: Path) -> None:
    desk = kiosk_desk(None, Alerts(), photo_desk, shopper, tmp_path)
    desk.attach(lambda type, data: None, lambda: VISIT, lambda: (bundle, bundle.scenes[0].id))
    desk.start()
    desk.printer = ParkedPrinter()
    keepsake = desk.make(list(desk._recent), desk.place())
    desk.keep(keepsake, share=True, print=True)   # sharing is off on this screen: only printed
    assert desk.print_status(keepsake) == "printer needs attention"
    desk.stop()


def test_a_shopper_who_leaves_while_the_photo_is_made_leaves_no_photo_behind(
        bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception], tmp_path: Path) -> None:
    desk = kiosk_desk(None, Alerts(), photo_desk, shopper, tmp_path)
    context = booth_context(desk, bundle)
    context.jobs.run_at_once = False   # the photo is still being composed when the shopper goes back

    def visit(shopper: Shopper) -> Iterator[Moment]:
        yield moment(0.0)
        yield from shopper.hold("thumb_up", 0.8)
        yield from shopper.hold(None, 3.2)
        (job,) = photo_jobs(context)
        assert not job.outcome
        yield shopper.frame(actions=(Action.BACK,))

    context = play(experience, None, Unfolding(visit(Shopper(desk))), context)
    assert context.target == MENU
    made = photo_jobs(context)[0].function()   # the job, started before the exit, ends on its thread
    assert made.photo_id and desk._kept == {}, "the photo was made, and forgotten at once"
    assert list((tmp_path / "photos").iterdir()) == [], "its file deleted, not kept until the retention"


def test_with_sharing_off_the_kiosk_start_deletes_what_an_earlier_run_queued(
        inference: Inference, tmp_path: Path) -> None:
    cfg = Config.model_validate({"share": {"enabled": False}, "paths": {"state_dir": str(tmp_path / "state")}})
    queued = queue_directory(cfg.paths.state_dir)
    queued.mkdir(parents=True)
    for name in ("AAAAAAAAAAAAAAAAAAAAAA.jpg", "AAAAAAAAAAAAAAAAAAAAAA.json"):
        (queued / name).write_bytes(b"left by a run that shared")
    desk = kiosk_photo_desk(cfg, inference, Alerts())
    desk.start()   # as the kiosk does at its start
    try:
        assert desk.share is None and list(queued.iterdir()) == []
    finally:
        desk.stop()


def test_a_print_that_ends_after_a_restart_is_still_announced_with_its_campaign_and_session(
        s3: S3Server, cups: Cups, bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception],
        tmp_path: Path) -> None:
    cfg = config(tmp_path, s3, cups)
    cups.run("cupsdisable", "-r", "paper out", cups.queue)
    try:
        before = kiosk_desk(cfg, Alerts(), photo_desk, shopper, tmp_path)
        before.attach(lambda type, data: None, lambda: VISIT, lambda: (bundle, bundle.scenes[0].id))
        before.start()
        keepsake = before.make(list(before._recent), before.place())
        before.keep(keepsake, share=False, print=True)
        assert wait_for(lambda: cups.run("lpstat", "-o", cups.queue).strip(), 20), "the job never reached CUPS"
        before.stop()   # the kiosk restarts while the photo waits in the paused queue
        cups.run("cupsenable", cups.queue)
        events: list[tuple[str, dict]] = []
        after = kiosk_desk(cfg, Alerts(), photo_desk, [], tmp_path)
        after.attach(lambda type, data: events.append((type, data)), lambda: "a-later-visit", lambda: (bundle, ""))
        after.start()
        try:
            assert wait_for(lambda: after.tick() or events, 60), "the print was never announced"
            assert events == [("photo_printed", {"session": VISIT, "campaign": bundle.name,
                                                 "photo_id": keepsake.photo_id})]
        finally:
            after.stop()
    finally:
        cups.run("cancel", "-a", cups.queue)
        cups.run("cupsenable", cups.queue)


def test_a_print_that_fails_is_announced_with_its_reason_campaign_and_session(
        s3: S3Server, cups: Cups, bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception],
        tmp_path: Path) -> None:
    cfg = config(tmp_path, s3, cups)
    cfg = cfg.model_copy(update={"printing": cfg.printing.model_copy(update={"job_timeout_s": 1.0})})
    events: list[tuple[str, dict]] = []
    desk = kiosk_desk(cfg, Alerts(), photo_desk, shopper, tmp_path)
    desk.attach(lambda type, data: events.append((type, data)), lambda: VISIT, lambda: (bundle, ""))
    desk.start()
    try:
        keepsake = desk.make(list(desk._recent), desk.place())
        cups.run("cupsdisable", "-r", "paper jam", cups.queue)   # after the offer: the job waits, then its deadline
        desk.keep(keepsake, share=False, print=True)
        assert wait_for(lambda: desk.tick() or events, 30), "the failed print was never announced"
        [(kind, data)] = events
        assert kind == "print_failed" and data["reason"], events
        assert {key: data[key] for key in ("session", "campaign", "photo_id")} == {
            "session": VISIT, "campaign": bundle.name, "photo_id": keepsake.photo_id}
        assert cups.run("lpstat", "-o", cups.queue).strip() == "", "cancelled and purged from CUPS at its deadline"
    finally:
        desk.stop()
        cups.run("cancel", "-a", cups.queue)
        cups.run("cupsenable", cups.queue)


def test_the_shopper_swipes_through_the_styles_in_the_preview_and_the_photo_is_painted_in_the_one_chosen(
        bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception], tmp_path: Path) -> None:
    config: PhotoConfig = bundle.configs["photo"]
    assert [style.name for style in config.styles] == ["Van Gogh", "Sunset oils", "Sepia"], "the default campaign's"
    styler = Styler(config.styles, bundle.directory, Inference(), find_faces=StillFaces(Inference()))
    desk = kiosk_desk(None, Alerts(), photo_desk, shopper, tmp_path, styler=styler)
    context = booth_context(desk, bundle)
    sample_px = (round(1080 * 0.2), round(1080 * 0.2 * 1.5))

    def samples_shown() -> list[np.ndarray]:
        return [call.args["image"] for call in context.named("picture", -1)
                if call.args["image"].shape[:2] == sample_px]

    def visit(shopper: Shopper) -> Iterator[Moment]:
        yield moment(0.0)
        yield shopper.frame()
        assert "Style: Original" in context.texts(-1) and "Swipe: change style" in context.texts(-1)
        original = samples_shown()
        assert len(original) == 1, "the original's sample beside the shopper"
        for action, expected in ((Action.NEXT, "Van Gogh"), (Action.NEXT, "Sunset oils"),
                                 (Action.PREVIOUS, "Van Gogh")):
            yield shopper.frame(actions=(action,))
            assert f"Style: {expected}" in context.texts(-1)
        (painted,) = samples_shown()
        assert np.abs(painted.astype(np.int16) - original[0]).mean() > 20, "the style's own sample"
        yield from shopper.photo(context)
        assert "Painting…" in context.texts() and "Developing…" not in context.texts()
        yield from shopper.hold(None, 0.5)
        yield shopper.frame(actions=(Action.BACK,))

    context = play(experience, None, Unfolding(visit(Shopper(desk))), context)
    assert [job.name for job in context.jobs.submitted] == ["style samples", "photo"]
    styled = taken(context)
    assert styled.style == "Van Gogh" and "style" in styled.timings_ms
    (event,) = context.published("photo_taken")
    assert event["style"] == "Van Gogh" and event["photo_id"] == styled.photo_id
    plain = desk.make(list(desk._recent), (bundle, bundle.scenes[0].id))
    assert plain.style is None and "style" not in plain.timings_ms
    assert styled.screen.shape == plain.screen.shape
    assert np.abs(styled.screen.astype(np.int16) - plain.screen).mean() > 20, "the photo was painted"


def test_styles_this_kiosk_cannot_paint_are_not_offered_and_the_original_photo_is_still_taken(
        bundle: Bundle, photo_desk: PhotoDesk, shopper: list[Perception], tmp_path: Path) -> None:
    desk = kiosk_desk(None, Alerts(), photo_desk, shopper, tmp_path)

    def unpaintable(bundle: Bundle, world: str) -> dict[str, np.ndarray]:
        raise ApplianceError("backend 'litert' cannot run model multistyle26")

    desk.samples = unpaintable
    context = booth_context(desk, bundle)

    def visit(shopper: Shopper) -> Iterator[Moment]:
        yield moment(0.0)
        yield shopper.frame(actions=(Action.NEXT,))
        assert not any(line.startswith("Style") or "change style" in line for line in context.texts(-1))
        yield from shopper.photo(context)
        yield shopper.frame(actions=(Action.BACK,))

    context = play(experience, None, Unfolding(visit(Shopper(desk))), context)
    assert taken(context).style is None and context.published("photo_taken")[0]["style"] == "Original"
