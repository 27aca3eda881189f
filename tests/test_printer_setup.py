"""The technician's printer setup (``python -m appliance.printing setup``) and doctor's printer check,
against a private CUPS scheduler (tests/cupsd.py): never the machine's own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cups
import pytest
from cupsd import CUPS_PDF_PPD, Cups, pdf_queue
from PIL import Image

from appliance.config import Config
from appliance.doctor import FAIL, PASS, SKIP, check_printer
from appliance.printing.__main__ import main
from appliance.printing.layout import PrintLayout, parse_media
from appliance.printing.printer import Printer
from appliance.printing.setup import DEFAULT_JOB_FILES, Scheduler

QUEUE = "booth"
MACHINE_CUPSD_CONF = Path("/etc/cups/cupsd.conf")


@pytest.fixture
def cups_server() -> Iterator[Cups]:
    yield from pdf_queue()


def setup_args(server: Cups, *extra: str) -> list[str]:
    return ["setup", "--queue", QUEUE, "--uri", f"cups-pdf:/{server.instance}", "--driver", CUPS_PDF_PPD,
            "--server", server.server, *extra]


def printing(server: str, **settings: object) -> Config:
    return Config.model_validate({"printing": {"enabled": True, "queue": QUEUE, "server": server, **settings}})


def machine_conf() -> bytes | None:
    return MACHINE_CUPSD_CONF.read_bytes() if MACHINE_CUPSD_CONF.is_file() else None


def print_and_wait(server: Cups, tmp_path: Path) -> int:
    Image.new("RGB", (600, 400), (200, 40, 40)).save(tmp_path / "photo.jpg")
    page = PrintLayout(parse_media("4x6"), dpi=100).write_pdf(tmp_path / "photo.jpg", tmp_path / "page.pdf")
    connection = cups.Connection(host=server.server)
    job = connection.printFile(QUEUE, str(page), "photo", {})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = connection.getJobAttributes(job, requested_attributes=["job-state"])["job-state"]
        if state == cups.IPP_JOB_COMPLETED:
            return job
        assert state not in (cups.IPP_JOB_CANCELED, cups.IPP_JOB_ABORTED), f"job {job} ended {state}"
        time.sleep(0.2)
    raise AssertionError(f"job {job} not printed within 60 s{server.log_tail(15)}")


def test_setup_makes_the_queue_and_keeps_no_photo_in_the_spool_twice_alike(
        cups_server: Cups, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    private_conf = cups_server.root / "etc" / "cupsd.conf"
    before = machine_conf()
    assert Scheduler(cups_server.server).job_files_kept() == DEFAULT_JOB_FILES  # cupsd's own default: a day

    assert main(setup_args(cups_server, "--media", "4x6", "--default")) == 0
    first = capsys.readouterr().out
    assert "PreserveJobFiles No, PreserveJobHistory 3600 (set, cupsd reloaded)" in first
    assert f"{QUEUE}: created: cups-pdf:/{cups_server.instance}" in first

    connection = cups.Connection(host=cups_server.server)
    attributes = connection.getPrinterAttributes(QUEUE)
    assert attributes["printer-is-accepting-jobs"] and attributes["printer-state"] != cups.IPP_PRINTER_STOPPED
    assert attributes["device-uri"] == f"cups-pdf:/{cups_server.instance}"
    assert connection.getDefault() == QUEUE
    assert Printer(QUEUE, cups_server.server).media_default() == "4x6"
    assert Printer(QUEUE, cups_server.server).state().problem is None
    conf = private_conf.read_text()
    assert "\nPreserveJobFiles No\n" in conf and "\nPreserveJobHistory 3600\n" in conf
    assert f"Listen {cups_server.server}\n" in conf  # the scheduler's own file edited, not the machine's uploaded
    assert Scheduler(cups_server.server).job_files_kept() is None
    assert machine_conf() == before

    job = print_and_wait(cups_server, tmp_path)  # the reloaded scheduler applies it: the document is gone
    documents = cups_server.root / "spool"
    deadline = time.monotonic() + 10  # (a scheduler with its default keeps d00001-001 a day)
    while list(documents.glob(f"d{job:05d}-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(documents.glob(f"d{job:05d}-*"))
    assert connection.getJobAttributes(job)["job-state"] == cups.IPP_JOB_COMPLETED  # its record is kept

    written = private_conf.stat().st_mtime_ns
    assert main(setup_args(cups_server, "--media", "4x6", "--default")) == 0
    second = capsys.readouterr().out
    assert "(already set)" in second and f"{QUEUE}: changed" in second
    assert private_conf.stat().st_mtime_ns == written
    assert Printer(QUEUE, cups_server.server).media_default() == "4x6"
    assert Printer(QUEUE, cups_server.server).state().problem is None
    assert machine_conf() == before


def test_an_unknown_driver_or_scheduler_is_one_line_naming_the_queue(
        cups_server: Cups, capsys: pytest.CaptureFixture[str]) -> None:
    args = setup_args(cups_server)
    args[args.index("--driver") + 1] = "nowhere/none.ppd"
    assert main(args) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(f"error: printer {QUEUE}: CUPS has no driver 'nowhere/none.ppd' (lpinfo -m")
    assert QUEUE not in cups.Connection(host=cups_server.server).getPrinters()

    assert main(["setup", "--queue", QUEUE, "--uri", "cups-pdf:/", "--driver", CUPS_PDF_PPD,
                 "--server", "/nonexistent/cups.sock"]) == 1
    error = capsys.readouterr().err
    assert error == (f"error: printer {QUEUE}: CUPS cannot be reached at /nonexistent/cups.sock: "
                     "failed to connect to server (systemctl start cups)\n")


def test_doctor_passes_a_set_up_queue_and_fails_a_paused_one_with_the_reason(
        cups_server: Cups, capsys: pytest.CaptureFixture[str]) -> None:
    config = printing(cups_server.server)
    gone = check_printer(config)
    assert gone.status == FAIL and f"printer {QUEUE} is gone" in gone.detail
    assert gone.fix.startswith(f"python -m appliance.printing setup --queue {QUEUE} ")

    kept = check_printer(printing(cups_server.server, queue=cups_server.queue))  # made by lpadmin alone
    assert kept.status == FAIL and f"PreserveJobFiles {DEFAULT_JOB_FILES}" in kept.detail
    assert "PreserveJobFiles=No" in kept.fix

    assert main(setup_args(cups_server)) == 0
    capsys.readouterr()
    ready = check_printer(config)
    assert ready.status == PASS, ready
    assert ready.detail == f"{QUEUE}: enabled and accepting jobs, media default 4x6, no job files kept"

    cups_server.run("cupsdisable", "-r", "paper out", QUEUE)
    paused = check_printer(config)
    assert paused.status == FAIL and "paper out" in paused.detail
    assert paused.fix == f"load paper / clear the jam, then cupsenable {QUEUE}"


def test_doctor_skips_printing_off_and_fails_an_unreachable_scheduler() -> None:
    off = check_printer(Config())
    assert off.status == SKIP and off.detail == "printing off ([printing] enabled = false)"
    unreachable = check_printer(printing("/nonexistent/cups.sock"))
    assert unreachable.status == FAIL and "CUPS cannot be reached" in unreachable.detail
    assert unreachable.fix.startswith("systemctl start cups")
