"""Printing the photo booth's photos: the page layout, the page counter, and the print desk against a real
CUPS scheduler of the test's own (tests/cupsd.py) with a cups-pdf queue — the PDF that comes out is read back
and its page and image checked — and the failures mall printers have: a paused queue, a job that never
prints, a queue that vanishes.
"""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import cups
import numpy as np
import pytest
from cupsd import Cups, pdf_queue
from PIL import Image, ImageDraw

from appliance.alerts import Alerts
from appliance.config import Config
from appliance.digest import photo_tag
from appliance.errors import ApplianceError
from appliance.printing import PrintService, PrintStatus
from appliance.printing.counter import PageCounter
from appliance.printing.layout import PrintLayout, parse_media
from appliance.printing.service import ATTENTION, LIMIT_REACHED, PRINTED, RESTARTED

POINTS_4X6 = (288.0, 432.0)
LABELS = {"campaign": "spring", "session": "s-1"}


def make_photo(path: Path, size: tuple[int, int] = (1800, 1200)) -> Path:
    """A photo whose every region differs: a gradient, a red block top-left, a blue disc right of centre."""
    width, height = size
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    pixels = np.stack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)),
                       np.full((height, width), 90, np.float32)], axis=-1).astype(np.uint8)
    photo = Image.fromarray(pixels)
    draw = ImageDraw.Draw(photo)
    draw.rectangle((60, 60, 360, 300), fill=(230, 20, 20))
    draw.ellipse((width * 0.6, height * 0.4, width * 0.6 + 240, height * 0.4 + 240), fill=(20, 30, 220))
    photo.save(path, quality=95)
    return path


# --- layout --------------------------------------------------------------------------------------------

def test_media_names_give_their_sizes_and_an_unknown_name_is_refused() -> None:
    for name in ("4x6", "na_index-4x6_4x6in", "Custom.4x6in", "w288h432"):
        media = parse_media(name)
        assert (round(media.short_mm, 2), round(media.long_mm, 2)) == (101.6, 152.4), name
    assert (parse_media("iso_a6_105x148mm").short_mm, parse_media("iso_a6_105x148mm").long_mm) == (105, 148)
    with pytest.raises(ValueError, match="'9x9 please'"):
        parse_media("9x9 please")


def test_the_page_is_the_media_in_the_photos_orientation_with_the_bleed_cut_off(tmp_path: Path) -> None:
    layout = PrintLayout(parse_media("4x6"), bleed_mm=2.0, dpi=300)
    landscape = Image.open(make_photo(tmp_path / "wide.jpg"))
    portrait = Image.open(make_photo(tmp_path / "tall.jpg", (1200, 1800)))
    assert layout.page_px(landscape.size) == (1800, 1200)
    assert layout.page_px(portrait.size) == (1200, 1800)
    page = np.asarray(layout.raster(landscape), dtype=np.int16)
    assert page.shape == (1200, 1800, 3)
    bleed = round(2.0 / 25.4 * 300)            # 24 px beyond every edge: the photo covers 1848 x 1248
    scale = max((1800 + 2 * bleed) / 1800, (1200 + 2 * bleed) / 1200)
    # the photo is scaled about its centre: the red block's left edge (x = 60) lands at (60 - 900) * scale + 900
    red_from = int(np.argmax(page[150, :, 0] > 200))
    assert abs(red_from - ((60 - 900) * scale + 900)) <= 2
    layout.write_pdf(tmp_path / "wide.jpg", tmp_path / "page.pdf")
    width, height = media_box(read_pdf(tmp_path / "page.pdf"))
    assert (round(width, 3), round(height, 3)) == (432.0, 288.0)


def test_the_page_counter_limits_each_campaign_per_day_and_survives_a_restart(tmp_path: Path) -> None:
    today = [date(2026, 3, 1)]
    counter = PageCounter(tmp_path / "pages.json", daily_limit=2, today=lambda: today[0])
    assert counter.take("spring") and counter.take("spring")
    assert not counter.take("spring"), "the third page of the day went past the limit"
    day = counter.take("other")
    assert day == "2026-03-01", "another campaign has its own limit"
    counter.give_back("other", day)
    restarted = PageCounter(tmp_path / "pages.json", daily_limit=2, today=lambda: today[0])
    assert (restarted.printed("spring"), restarted.printed("other")) == (2, 0)
    assert not restarted.take("spring")
    today[0] = date(2026, 3, 2)
    assert restarted.take("spring"), "a new day starts from zero"
    restarted.give_back("spring", day)
    assert restarted.printed("spring") == 1, "a page of yesterday was given back out of today's count"
    (tmp_path / "pages.json").write_text("{not json")
    blocked = PageCounter(tmp_path / "in-the-way", daily_limit=2)
    (tmp_path / "in-the-way").mkdir()
    with pytest.raises(ApplianceError, match="cannot write"):
        blocked.take("spring")
    assert blocked.printed("spring") == 0, "a page the counter could not write stayed counted"
    assert PageCounter(tmp_path / "pages.json", daily_limit=2).printed("spring") == 0


# --- a PDF read back -------------------------------------------------------------------------------------

def read_pdf(path: Path) -> bytes:
    return path.read_bytes()


def media_box(pdf: bytes) -> tuple[float, float]:
    boxes = re.findall(rb"/MediaBox\s*\[\s*([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*\]", pdf)
    assert len(boxes) == 1, f"expected one page, found {len(boxes)} MediaBoxes"
    x0, y0, x1, y1 = (float(value) for value in boxes[0])
    return x1 - x0, y1 - y0


def streams(pdf: bytes) -> list[tuple[bytes, bytes]]:
    """(dictionary, raw data) of every stream object, its length taken from /Length (direct or indirect)."""
    found = []
    for match in re.finditer(rb"<<((?:(?!>>\s*stream).)*?)>>\s*stream\r?\n", pdf, re.S):
        header = match.group(1)
        length = re.search(rb"/Length\s+(\d+)(\s+0\s+R)?", header)
        assert length is not None, header
        size = int(length.group(1))
        if length.group(2):
            size = int(re.search(rb"\n%d 0 obj\s*(\d+)\s*endobj" % size, pdf).group(1))
        found.append((header, pdf[match.end():match.end() + size]))
    return found


def images(pdf: bytes) -> list[tuple[int, int, Image.Image]]:
    """Every image XObject, decoded: Flate with PNG predictors is a PNG's IDAT, so it is wrapped as one."""
    decoded = []
    for header, data in streams(pdf):
        if b"/Subtype/Image" not in header.replace(b" ", b""):
            continue
        width = int(re.search(rb"/Width\s+(\d+)", header).group(1))
        height = int(re.search(rb"/Height\s+(\d+)", header).group(1))
        compact = header.replace(b" ", b"")
        if b"/DCTDecode" in compact:
            image = Image.open(io.BytesIO(data))
        else:
            assert b"/FlateDecode" in compact and b"/Predictor15" in compact and b"/DeviceRGB" in compact, header
            image = Image.open(io.BytesIO(png(width, height, data)))
        image.load()
        decoded.append((width, height, image.convert("RGB")))
    return decoded


def png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def placement(pdf: bytes) -> tuple[float, ...]:
    """The matrix the page draws its image with: every ``cm`` before the ``Do`` composed, ``q``/``Q`` respected."""
    for header, data in streams(pdf):
        if b"/Subtype" in header:
            continue
        content = zlib.decompress(data) if b"/FlateDecode" in header.replace(b" ", b"") else data
        matrix, saved = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0), []
        for token in re.finditer(rb"((?:[-\d.]+\s+){6})cm|\bq\b|\bQ\b|/\w+\s+Do", content):
            text = token.group(0)
            if token.group(1):
                matrix = compose(tuple(float(value) for value in token.group(1).split()), matrix)
            elif text == b"q":
                saved.append(matrix)
            elif text == b"Q":
                matrix = saved.pop()
            else:
                return matrix
    raise AssertionError("no image drawn on the page")


def compose(first: tuple[float, ...], then: tuple[float, ...]) -> tuple[float, ...]:
    """``first`` followed by ``then`` (PDF matrices [a b c d e f], row vectors)."""
    a, b, c, d, e, f = first
    a2, b2, c2, d2, e2, f2 = then
    return (a * a2 + b * c2, a * b2 + b * d2, c * a2 + d * c2, c * b2 + d * d2,
            e * a2 + f * c2 + e2, e * b2 + f * d2 + f2)


def footprint(matrix: tuple[float, ...]) -> tuple[float, float, float, float]:
    a, b, c, d, e, f = matrix
    corners = [(e, f), (a + e, b + f), (c + e, d + f), (a + c + e, b + d + f)]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    return min(xs), min(ys), max(xs), max(ys)


# --- the desk against a real CUPS ----------------------------------------------------------------------

@pytest.fixture
def cups_server() -> Iterator[Cups]:
    yield from pdf_queue()


def desk_for(server: Cups, state_dir: Path, alerts: Alerts, outcomes: list, queue: str | None = None,
             **printing: object) -> PrintService:
    settings = {"enabled": True, "queue": queue or server.queue, "server": server.server, "poll_s": 0.2, **printing}
    config = Config.model_validate({"printing": settings})
    desk = PrintService.from_config(config, alerts, state_dir,
                                    lambda photo, status, labels: outcomes.append((photo, status, labels)))
    assert desk is not None
    return desk


def wait_for(condition: Callable[[], object], timeout: float, what: str, server: Cups) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout:.0f} s{server.log_tail(15)}")


def ended(desk: PrintService, photo_id: str, outcomes: list | None = None) -> Callable[[], bool]:
    """The request's status has ended and, given the listener's ``outcomes``, its outcome was handed over
    (the desk records the status first, then hands it over: a moment apart)."""
    def check() -> bool:
        status = desk.status(photo_id)
        told = outcomes is None or any(outcome[0] == photo_id for outcome in outcomes)
        return status is not None and status.ended and told
    return check


def test_a_photo_comes_out_of_cups_pdf_at_4x6_inches_and_300_dpi(cups_server: Cups, tmp_path: Path) -> None:
    alerts, outcomes = Alerts(), []
    photo = make_photo(tmp_path / "photo.jpg")
    desk = desk_for(cups_server, tmp_path / "state", alerts, outcomes)
    try:
        desk.submit("p1", photo, LABELS)
        wait_for(ended(desk, "p1", outcomes), 60, "the photo was not printed", cups_server)
        assert desk.status("p1") == PrintStatus("printed", PRINTED)
        assert outcomes == [("p1", PrintStatus("printed", PRINTED), LABELS)]
        assert desk.printer_ok and alerts.current() == []
        assert desk.counter.printed("spring") == 1
        assert list((tmp_path / "state" / "printing").glob("*.pdf")) == [], "the page file was not deleted"
        # the ended job is purged: its files are not kept in CUPS's spool (PreserveJobFiles' day by default)
        assert cups_server.run("lpstat", "-W", "completed", "-o").strip() == ""
    finally:
        desk.stop()
    wait_for(cups_server.pdfs, 10, "cups-pdf wrote no PDF", cups_server)
    [pdf_path] = cups_server.pdfs()
    pdf = read_pdf(pdf_path)
    # The page: 4x6 in, in the queue's own (portrait) orientation, as the driver turned the landscape page.
    assert sorted(round(side, 1) for side in media_box(pdf)) == list(POINTS_4X6)
    # The photo: one image of 1800 x 1200 pixels drawn over exactly the whole page: 6 in at 300 dpi.
    [(width, height, printed)] = images(pdf)
    assert (width, height) == (1800, 1200)
    x0, y0, x1, y1 = footprint(placement(pdf))
    page_width, page_height = media_box(pdf)
    assert max(abs(x0), abs(y0), abs(x1 - page_width), abs(y1 - page_height)) < 0.5, (x0, y0, x1, y1)
    # ...and it is the photo, laid out with its bleed: the pixels CUPS printed are the layout's (0.3 apart on
    # average here: JPEG decoded twice; a bleed 2 mm off is 3 apart).
    expected = PrintLayout(parse_media("4x6"), bleed_mm=1.0).raster(Image.open(photo))
    difference = np.abs(np.asarray(printed, np.int16) - np.asarray(expected, np.int16))
    assert difference.mean() < 1, f"printed image differs from the layout by {difference.mean():.1f} on average"


def test_the_daily_limit_refuses_with_a_clear_status(cups_server: Cups, tmp_path: Path) -> None:
    alerts, outcomes = Alerts(), []
    photo = make_photo(tmp_path / "photo.jpg")
    desk = desk_for(cups_server, tmp_path / "state", alerts, outcomes, daily_limit=1)
    try:
        desk.submit("first", photo, LABELS)
        wait_for(ended(desk, "first", outcomes), 60, "the first photo was not printed", cups_server)
        desk.submit("second", photo, LABELS)
        wait_for(ended(desk, "second", outcomes), 10, "the second photo was not refused", cups_server)
    finally:
        desk.stop()
    assert desk.status("first").state == "printed"
    refused = desk.status("second")
    assert (refused.state, refused.screen) == ("failed", LIMIT_REACHED)
    assert "daily limit of 1 pages reached" in refused.reason
    assert [photo_id for photo_id, _, _ in outcomes] == ["first", "second"]
    wait_for(cups_server.pdfs, 10, "cups-pdf wrote no PDF", cups_server)
    time.sleep(1)
    assert len(cups_server.pdfs()) == 1
    assert desk.counter.printed("spring") == 1


def test_a_paused_queue_says_so_raises_the_alert_and_prints_once_enabled(cups_server: Cups, tmp_path: Path) -> None:
    alerts, outcomes = Alerts(), []
    cups_server.run("cupsdisable", "-r", "paper out: load 4x6 media", cups_server.queue)
    desk = desk_for(cups_server, tmp_path / "state", alerts, outcomes)
    try:
        wait_for(lambda: alerts.current(), 10, "no alert for the paused queue", cups_server)
        [alert] = alerts.current()
        assert alert.code == "printer"
        assert alert.reason == f"printer {cups_server.queue} stopped: paused (paper out: load 4x6 media)"
        assert not desk.printer_ok
        desk.submit("p1", make_photo(tmp_path / "photo.jpg"), LABELS)
        wait_for(lambda: desk.status("p1").state == "printing", 10, "the job was not handed to CUPS", cups_server)
        assert desk.status("p1").screen == ATTENTION
        time.sleep(1.5)
        assert cups_server.pdfs() == [] and desk.status("p1").screen == ATTENTION, "printed while paused"
        cups_server.run("cupsenable", cups_server.queue)
        wait_for(ended(desk, "p1", outcomes), 60, "the held job was not printed after cupsenable", cups_server)
        assert desk.status("p1").state == "printed"
        wait_for(lambda: alerts.current() == [], 5, "the alert stayed up", cups_server)
        assert desk.printer_ok
    finally:
        desk.stop()
    assert len(cups_server.pdfs()) == 1
    assert [status.state for _, status, _ in outcomes] == ["printed"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_job_that_never_prints_is_cancelled_at_the_deadline(cups_server: Cups, tmp_path: Path) -> None:
    # A network printer nobody answers for: the socket backend retries for ever, the queue looks busy and fine.
    cups_server.run("lpadmin", "-p", "unanswered", "-v", f"socket://127.0.0.1:{free_port()}",
                    "-m", "lsb/usr/cups-pdf/CUPS-PDF_opt.ppd", "-E")
    alerts, outcomes = Alerts(), []
    desk = desk_for(cups_server, tmp_path / "state", alerts, outcomes, queue="unanswered", job_timeout_s=4)
    try:
        desk.submit("p1", make_photo(tmp_path / "photo.jpg"), LABELS)
        wait_for(ended(desk, "p1", outcomes), 20, "the stuck job did not end", cups_server)
        status = desk.status("p1")
        assert (status.state, status.screen) == ("failed", ATTENTION)
        assert status.reason.startswith("a job was not printed within 4 s: ")
        [alert] = alerts.current()
        assert (alert.code, alert.reason) == ("printer", status.reason)
        assert not desk.printer_ok
        assert cups_server.run("lpstat", "-o", "unanswered").strip() == "", "the job is still queued in CUPS"
        assert outcomes == [("p1", status, LABELS)]
        assert desk.counter.printed("spring") == 0, "the cancelled job's page was not given back"
        # The queue looks idle now only because its job was cancelled: that proves nothing, the alert stays...
        time.sleep(1)
        assert not desk.printer_ok and [alert.reason for alert in alerts.current()] == [status.reason]
        # ...until the queue shows a problem and is dealt with (a technician pauses and resumes it).
        cups_server.run("cupsdisable", "-r", "checking the cable", "unanswered")
        wait_for(lambda: "paused" in alerts.current()[0].reason, 10, "the pause went unseen", cups_server)
        cups_server.run("cupsenable", "unanswered")
        wait_for(lambda: desk.printer_ok, 10, "printing was not offered again", cups_server)
        assert alerts.current() == []
    finally:
        desk.stop()


def test_a_vanished_printer_is_reported_and_nothing_crashes(cups_server: Cups, tmp_path: Path) -> None:
    alerts, outcomes = Alerts(), []
    desk = desk_for(cups_server, tmp_path / "state", alerts, outcomes, job_timeout_s=3)
    try:
        wait_for(lambda: desk.printer_ok, 10, "the printer never looked fine", cups_server)
        cups_server.run("lpadmin", "-x", cups_server.queue)
        wait_for(lambda: alerts.current(), 10, "no alert for the vanished printer", cups_server)
        assert [(alert.code, alert.reason) for alert in alerts.current()] == [
            ("printer", f"printer {cups_server.queue} is gone from CUPS")]
        desk.submit("p1", make_photo(tmp_path / "photo.jpg"), LABELS)
        assert desk.status("p1").screen == ATTENTION
        wait_for(ended(desk, "p1", outcomes), 15, "the photo for a missing printer never ended", cups_server)
        assert (desk.status("p1").state, desk.status("p1").screen) == ("failed", ATTENTION)
        assert desk.counter.printed("spring") == 0, "a page was counted that was never sent"
        cups_server.add_pdf_queue()
        wait_for(lambda: desk.printer_ok, 10, "the printer's return went unnoticed", cups_server)
        assert alerts.current() == []
        assert desk._thread.is_alive()
    finally:
        desk.stop()
    assert [status.state for _, status, _ in outcomes] == ["failed"]


# --- the desk's own failures, and a restart ----------------------------------------------------------------

def requests_on_disk(state_dir: Path) -> list[dict]:
    return json.loads((state_dir / "printing" / "requests.json").read_text())["requests"]


def test_a_request_whose_page_count_cannot_be_written_fails_once(cups_server: Cups, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    alerts, outcomes = Alerts(), []
    pages = tmp_path / "state" / "printing" / "pages.json"
    pages.mkdir(parents=True)   # the page count cannot be written (as on a full disk): a directory is in its way
    desk = desk_for(cups_server, tmp_path / "state", alerts, outcomes)
    try:
        desk.submit("p1", make_photo(tmp_path / "photo.jpg"), LABELS)
        wait_for(ended(desk, "p1", outcomes), 10, "the request did not end", cups_server)
        status = desk.status("p1")
        assert (status.state, status.screen) == ("failed", ATTENTION)
        assert status.reason.startswith(f"cannot write {pages}: ")
        assert desk.counter.printed("spring") == 0
        time.sleep(1)   # five more rounds: the outcome is not handed over again
        assert outcomes == [("p1", status, LABELS)]
        assert desk._thread.is_alive() and desk.printer_ok
        # A photo whose file is gone: its reason names the file, by the photo's tag rather than its id.
        pages.rmdir()
        photo_id = "Zq3-secret_photo_id_0123456789"
        desk.submit(photo_id, tmp_path / f"{photo_id}.jpg", LABELS)
        wait_for(ended(desk, photo_id), 10, "the request for a missing photo did not end", cups_server)
        status = desk.status(photo_id)
        assert status.state == "failed" and f"{photo_tag(photo_id)}.jpg" in status.reason
        assert photo_id not in status.reason and photo_id not in caplog.text
        assert desk.counter.printed("spring") == 0
    finally:
        desk.stop()
    assert requests_on_disk(tmp_path / "state") == []
    assert cups_server.pdfs() == []


def test_a_job_sent_before_a_stop_is_followed_after_the_restart(cups_server: Cups, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    photo_id = "Zq3-secret_photo_id_0123456789"
    state, work = tmp_path / "state", tmp_path / "state" / "printing"
    cups_server.run("cupsdisable", "-r", "paper out", cups_server.queue)
    before, after = [], []
    desk = desk_for(cups_server, state, Alerts(), before)
    try:
        desk.submit(photo_id, make_photo(tmp_path / "photo.jpg"), LABELS)
        wait_for(lambda: desk.status(photo_id).state == "printing", 10, "the job was not handed to CUPS", cups_server)
        # CUPS knows the page by a neutral file name (its document-name): nothing it holds names the photo.
        [job_id] = cups.Connection(host=cups_server.server).getJobs(which_jobs="all")
        job = cups.Connection(host=cups_server.server).getJobAttributes(job_id)
        assert job["document-name-supplied"].startswith("page-")
        assert photo_id not in repr(job)
    finally:
        desk.stop()
    assert before == []
    [record] = requests_on_disk(state)
    assert (record["photo_id"], record["labels"], record["job_id"]) == (photo_id, LABELS, job_id)
    assert oct(work.stat().st_mode & 0o777) == oct(0o700)
    # What a crash can leave: page files CUPS had (or never got).
    (work / "page-k2j4h1.pdf").write_bytes(b"%PDF-1.4")
    (work / "page-x9").write_bytes(b"")
    restarted = desk_for(cups_server, state, Alerts(), after)
    try:
        wait_for(lambda: not (work / "page-x9").exists(), 10, "the leftover page files were not deleted", cups_server)
        assert not (work / "page-k2j4h1.pdf").exists()
        assert restarted.status(photo_id) is None, "no screen waits for a photo from before the restart"
        cups_server.run("cupsenable", cups_server.queue)
        wait_for(lambda: after, 60, "the job from before the restart was not reported", cups_server)
        assert after == [(photo_id, PrintStatus("printed", PRINTED), LABELS)]
        # the request is forgotten after its outcome was told (a crash between them tells it again)
        wait_for(lambda: requests_on_disk(state) == [], 10, "the told request was not forgotten", cups_server)
    finally:
        restarted.stop()
    assert len(cups_server.pdfs()) == 1
    assert photo_id not in caplog.text and f"photo {photo_tag(photo_id)} sent to the printer" in caplog.text
    assert [path.name for path in work.iterdir() if path.name.startswith("page-")] == []


def test_a_deadline_counts_from_the_submission_across_a_restart(cups_server: Cups, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cups_server.run("cupsdisable", "-r", "paper out", cups_server.queue)
    before, after = [], []
    desk = desk_for(cups_server, state, Alerts(), before, job_timeout_s=600)
    try:
        desk.submit("p1", make_photo(tmp_path / "photo.jpg"), LABELS)
        wait_for(lambda: desk.status("p1").state == "printing", 10, "the job was not handed to CUPS", cups_server)
        assert desk.counter.printed("spring") == 1
    finally:
        desk.stop()
    # The kiosk was down for 11 minutes: the photo was asked for longer ago than its 10 minutes.
    requests = state / "printing" / "requests.json"
    document = json.loads(requests.read_text())
    document["requests"][0]["submitted"] -= 660
    requests.write_text(json.dumps(document))
    restarted = desk_for(cups_server, state, Alerts(), after, job_timeout_s=600)
    try:
        wait_for(lambda: after, 20, "the restart gave the late job a new deadline", cups_server)
        [(photo_id, status, labels)] = after
        assert (photo_id, status.state, labels) == ("p1", "failed", LABELS)
        assert status.reason.startswith("a job was not printed within 600 s: printer oivis-pdf stopped: paused")
        assert restarted.counter.printed("spring") == 0, "the cancelled job's page was not given back"
        assert cups_server.run("lpstat", "-o").strip() == "", "the job is still queued in CUPS"
    finally:
        restarted.stop()
    assert before == [] and cups_server.pdfs() == []


def test_a_missed_deadline_on_a_paused_queue_is_over_once_the_queue_is_resumed(cups_server: Cups,
                                                                               tmp_path: Path) -> None:
    alerts, outcomes = Alerts(), []
    cups_server.run("cupsdisable", "-r", "paper out", cups_server.queue)
    desk = desk_for(cups_server, tmp_path / "state", alerts, outcomes, job_timeout_s=3)
    try:
        desk.submit("p1", make_photo(tmp_path / "photo.jpg"), LABELS)
        wait_for(ended(desk, "p1"), 20, "the held job did not end at its deadline", cups_server)
        assert desk.status("p1").reason.startswith("a job was not printed within 3 s")
        assert not desk.printer_ok
        cups_server.run("cupsenable", cups_server.queue)
        wait_for(lambda: desk.printer_ok, 10, "printing was not offered again once the queue was fine", cups_server)
        assert alerts.current() == []
        assert desk.counter.printed("spring") == 0
    finally:
        desk.stop()
    time.sleep(1)
    assert cups_server.pdfs() == [], "the cancelled job was printed"


def test_a_request_not_sent_before_a_stop_fails_at_the_next_start_and_is_never_printed(cups_server: Cups,
                                                                                      tmp_path: Path) -> None:
    state, photo = tmp_path / "state", make_photo(tmp_path / "photo.jpg")
    cups_server.run("lpadmin", "-x", cups_server.queue)
    first, second, third = [], [], []
    # Accepted and kept on disk while the printer is gone.
    desk = desk_for(cups_server, state, Alerts(), first)
    try:
        desk.submit("p1", photo, LABELS)
        wait_for(lambda: (state / "printing" / "requests.json").is_file() and requests_on_disk(state),
                 10, "the request was not kept on disk", cups_server)
    finally:
        desk.stop()
    # Submitted while the worker waits between rounds: written by ``stop``.
    desk = desk_for(cups_server, state, Alerts(), second, poll_s=30)
    try:
        wait_for(lambda: second, 10, "the request from before the restart did not end", cups_server)
        desk.submit("p2", photo, {"campaign": "spring", "session": "s-2"})
    finally:
        desk.stop()
    assert [(record["photo_id"], record["job_id"]) for record in requests_on_disk(state)] == [("p2", None)]
    cups_server.add_pdf_queue()
    desk = desk_for(cups_server, state, Alerts(), third)
    try:
        wait_for(lambda: third, 10, "the request from before the restart did not end", cups_server)
    finally:
        desk.stop()
    assert first == []
    assert second == [("p1", PrintStatus("failed", ATTENTION, RESTARTED), LABELS)]
    assert third == [("p2", PrintStatus("failed", ATTENTION, RESTARTED), {"campaign": "spring", "session": "s-2"})]
    assert desk.counter.printed("spring") == 0 and requests_on_disk(state) == []
    time.sleep(1)
    assert cups_server.pdfs() == []
