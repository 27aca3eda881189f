"""The service's link to systemd through systemd-python itself: sd_notify (READY, WATCHDOG, STATUS,
STOPPING) into a real datagram socket named by NOTIFY_SOCKET, and JournalHandler records with the
device, campaign and session fields in a private systemd-journald, read back with journalctl."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest
from journald import run_with_journald
from systemd import daemon

from appliance.compose import kiosk_session
from appliance.config import Config
from appliance.kiosk.display import DisplayMode
from appliance.service.logging import JournalContext, configure_logging
from appliance.service.notify import ServiceNotifier, watchdog_interval

REPO = Path(__file__).resolve().parents[1]
NO_CAMERA = "no camera at /dev/video0 (unplugged or not detected)"


class NotifySocket:
    """The systemd side: a bound datagram socket; a reader thread stamps each message when it arrives."""

    MARK = b"oivis-test-mark"

    def __init__(self, address: str | bytes) -> None:
        self.address = address
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(address)
        self.socket.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self._marks = 0
        self._condition = threading.Condition()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.socket.recv(4096)
            except TimeoutError:
                continue
            with self._condition:
                if data == self.MARK:
                    self._marks += 1
                    self._condition.notify_all()
                else:
                    self.received.append((time.monotonic(), data.decode()))

    def drain(self) -> list[str]:
        """Everything received so far: a mark sent now comes after whatever the service sent before."""
        with self._condition:
            wanted = self._marks + 1
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as poke:
            poke.sendto(self.MARK, self.address)
        with self._condition:
            assert self._condition.wait_for(lambda: self._marks >= wanted, timeout=5)
            return [message for _, message in self.received]

    def fresh(self) -> list[str]:
        """What arrived since the previous call."""
        seen = len(self.received)
        return self.drain()[seen:]

    def close(self) -> None:
        self._closed.set()
        self._reader.join()
        self.socket.close()


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    """A socket bound where NOTIFY_SOCKET (in the real process environment, where libsystemd reads it) points."""
    path = tmp_path / "notify.sock"
    server = NotifySocket(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield server
    server.close()


def watchdog(monkeypatch: pytest.MonkeyPatch, usec: int) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", str(usec))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))


def test_no_notify_socket_means_no_notifier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert ServiceNotifier.from_environment() is None


def test_notify_socket_without_systemd_python_is_one_clear_error(
        notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """No hand-written fallback: the missing package is named once and the kiosk runs without a notifier."""
    monkeypatch.setitem(sys.modules, "systemd", None)
    monkeypatch.setitem(sys.modules, "systemd.daemon", None)
    with caplog.at_level(logging.INFO, logger="appliance.service.notify"):
        assert ServiceNotifier.from_environment() is None
    errors = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR
    assert "systemd-python" in errors[0].getMessage() and "python3-systemd" in errors[0].getMessage()
    assert notify_socket.drain() == []


def test_watchdog_environment() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # someone else's
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None


def test_ready_after_the_first_frame_then_paced_pings_and_status(
        notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    watchdog(monkeypatch, 1_000_000)
    notifier = ServiceNotifier.from_environment()
    notifier.frame_missed(0.0, None)                 # display and models up, no frame yet
    assert notify_socket.drain() == []
    for step in range(21):                            # 2 s of frames at 10 fps
        notifier.frame_shown(0.1 + step * 0.1, 10.0, "litert (2 threads)", "Winter")
    messages = notify_socket.drain()
    assert messages[0] == "READY=1"
    assert messages.count("READY=1") == 1
    assert 4 <= messages.count("WATCHDOG=1") <= 5     # every WatchdogSec/2 = 0.5 s, not every frame
    assert "STATUS=showing 10.0 fps · backend litert (2 threads) · campaign Winter" in messages
    notifier.stopping()
    assert notify_socket.drain()[-1] == "STOPPING=1\nSTATUS=stopping"


def test_pings_stop_when_progress_stops(notify_socket: NotifySocket) -> None:
    """After READY, a loop turning without new frames and without a reported problem is a freeze."""
    notifier = ServiceNotifier(daemon.notify, watchdog_s=1.0)
    for step in range(10):
        notifier.frame_shown(step * 0.1, 10.0, "litert", "Default")
    assert "WATCHDOG=1" in notify_socket.fresh()
    for step in range(10, 40):
        notifier.frame_missed(step * 0.1, None)
    assert notify_socket.fresh() == []
    notifier.frame_shown(4.0, 10.0, "litert", "Default")    # frames again: the pings resume
    assert "WATCHDOG=1" in notify_socket.fresh()


def test_abstract_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"oivis-test-{os.getpid()}-{time.monotonic_ns()}"
    server = NotifySocket(b"\0" + name.encode())
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        notifier = ServiceNotifier.from_environment()
        notifier.frame_shown(1.0, 30.0, "litert", "Default")
        assert server.drain()[0] == "READY=1"
    finally:
        server.close()


def test_a_missing_camera_is_degraded_not_frozen(notify_socket: NotifySocket) -> None:
    """A camera reported missing keeps the watchdog fed and becomes READY after the grace period."""
    notifier = ServiceNotifier(daemon.notify, watchdog_s=1.0, ready_grace_s=2.0)
    for step in range(19):
        notifier.frame_missed(step * 0.1, NO_CAMERA)
    early = notify_socket.fresh()
    assert early == [f"STATUS=degraded: {NO_CAMERA}"]  # not READY at once: the camera may still be enumerating
    for step in range(19, 40):
        notifier.frame_missed(step * 0.1, NO_CAMERA)
    late = notify_socket.fresh()
    assert late[0] == "READY=1"
    assert late.count("WATCHDOG=1") >= 3


def test_socket_gone_is_a_warning_not_a_crash(notify_socket: NotifySocket, caplog: pytest.LogCaptureFixture) -> None:
    notifier = ServiceNotifier(daemon.notify, watchdog_s=1.0)
    notify_socket.close()
    os.unlink(os.environ["NOTIFY_SOCKET"])
    with caplog.at_level(logging.WARNING, logger="appliance.service.notify"):
        for step in range(5):
            notifier.frame_shown(step * 1.0, 1.0, "litert", "Default")
    assert len(caplog.records) == 1 and "cannot notify systemd" in caplog.records[0].getMessage()


def test_the_kiosk_loop_pings_while_frames_flow_and_stops_when_the_pipeline_freezes(
        notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch, astronaut_file: Path,
        content_dir: Path) -> None:
    """The real render loop, models and threads against a real NOTIFY_SOCKET; then perception is
    frozen (its thread stopped: no new results, no problem reported) and the pings must stop."""
    watchdog(monkeypatch, 400_000)
    config = Config.model_validate({"source": {"uri": f"image:{astronaut_file}"},
                                    "display": {"width": 640, "height": 360},
                                    "kiosk": {"content": str(content_dir)}})
    with kiosk_session(config, DisplayMode.HEADLESS) as kiosk:
        assert kiosk.notifier is not None  # the session found NOTIFY_SOCKET itself
        kiosk.run(max_frames=15)
        flowing = notify_socket.drain()
        assert flowing[0] == "READY=1"
        assert "WATCHDOG=1" in flowing
        assert any(message.startswith("STATUS=showing") and "campaign" in message for message in flowing)

        kiosk.workers.perception.stop()
        frozen_at = time.monotonic()
        pygame.time.set_timer(pygame.QUIT, 2000, loops=1)
        kiosk.run(max_frames=None)
    notify_socket.drain()
    # A result perception left in the slot may still be shown first; after that, silence (pings were every 0.2 s).
    late_pings = [at for at, message in notify_socket.received if message == "WATCHDOG=1" and at > frozen_at + 0.6]
    assert late_pings == [], "a frozen pipeline must not keep the watchdog fed"
    assert notify_socket.received[-1][1] == "STOPPING=1\nSTATUS=stopping"


def test_the_kiosk_without_its_camera_is_ready_after_the_grace_and_keeps_pinging(
        notify_socket: NotifySocket, content_dir: Path) -> None:
    """camera:63 does not exist: the attract screen is the first frame; READY only after the grace."""
    config = Config.model_validate({"source": {"uri": "camera:63"}, "display": {"width": 640, "height": 360},
                                    "kiosk": {"content": str(content_dir)}})
    with kiosk_session(config, DisplayMode.HEADLESS) as kiosk:
        kiosk.notifier = ServiceNotifier(daemon.notify, watchdog_s=0.4, ready_grace_s=0.6)
        started = time.monotonic()
        pygame.time.set_timer(pygame.QUIT, 2000, loops=1)
        kiosk.run(max_frames=None)
        assert kiosk.frames_shown == 0
    notify_socket.drain()
    received = [(at - started, message) for at, message in notify_socket.received]
    ready = [at for at, message in received if message == "READY=1"]
    assert len(ready) == 1 and ready[0] >= 0.6
    assert any(message.startswith("STATUS=degraded") and "no camera at /dev/video63" in message
               for _, message in received)
    assert len([at for at, message in received if message == "WATCHDOG=1" and at > ready[0]]) >= 3


def test_stderr_logging_and_the_journal_fallback_without_systemd_python(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = (tmp_path / "stderr").open("w")
    info = os.fstat(stream.fileno())
    journal = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
    try:
        assert configure_logging(environ={}, stream=stream) == "stderr"
        monkeypatch.setitem(sys.modules, "systemd", None)  # systemd-python absent
        monkeypatch.setitem(sys.modules, "systemd.journal", None)
        assert configure_logging(environ=journal, stream=stream) == "stderr-journal"
        logging.getLogger("appliance.test").error("camera gone")
        stream.flush()
        lines = (tmp_path / "stderr").read_text().splitlines()
        assert "<3>appliance.test: camera gone" in lines
        missing = [line for line in lines if "python3-systemd" in line]
        assert len(missing) == 1 and missing[0].startswith("<3>")
    finally:
        configure_logging(environ={})
        stream.close()


def test_journal_context_stamps_records_and_refuses_unknown_fields() -> None:
    def stamped(context: JournalContext, **extra: str) -> dict[str, str]:
        record = logging.makeLogRecord({"msg": "hello", **extra})
        assert context.filter(record)
        return {name: value for name, value in vars(record).items() if name.startswith("OIVIS_")}

    context = JournalContext()
    context.update(device="mall-1", campaign="Winter", session=3)
    assert stamped(context) == {"OIVIS_DEVICE": "mall-1", "OIVIS_CAMPAIGN": "Winter", "OIVIS_SESSION": "3"}
    context.update(session=None)
    assert stamped(context) == {"OIVIS_DEVICE": "mall-1", "OIVIS_CAMPAIGN": "Winter"}
    assert stamped(context, OIVIS_CAMPAIGN="Spring")["OIVIS_CAMPAIGN"] == "Spring"  # an explicit extra= wins
    with pytest.raises(TypeError, match="sesion"):
        context.update(sesion=4)


CHILD = """
import logging, threading
from appliance.service.logging import configure_logging, journal_context

assert configure_logging(fields={"OIVIS_BUILD": "test"}) == "journal"
journal_context.update(device="mall-01-screen-3")
log = logging.getLogger("appliance.kiosk.app")
log.info("attract, nobody in front")
journal_context.update(campaign="Winter Sale", session=7)
log.info("session starts")
thread = threading.Thread(target=log.warning, args=("camera hiccup",), name="capture")
thread.start()
thread.join()
journal_context.update(session=None)
log.info("session over")
log.debug("not verbose")
"""


def test_records_reach_journald_with_device_campaign_and_session(tmp_path: Path) -> None:
    """systemd-python's JournalHandler into a private systemd-journald; fields read back with journalctl."""
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "INVOCATION_ID": "0" * 32}
    run = run_with_journald(tmp_path / "journal", [sys.executable, "-c", CHILD], env, cwd=REPO)
    assert run.returncode == 0, run.stderr
    entries = {entry["MESSAGE"]: entry for entry in run.by("oivis-appliance")}
    assert list(entries) == ["attract, nobody in front", "session starts", "camera hiccup", "session over"]

    idle = entries["attract, nobody in front"]
    assert idle["OIVIS_DEVICE"] == "mall-01-screen-3" and idle["OIVIS_BUILD"] == "test"
    assert "OIVIS_CAMPAIGN" not in idle and "OIVIS_SESSION" not in idle
    assert idle["PRIORITY"] == "6" and idle["LOGGER"] == "appliance.kiosk.app" and idle["_TRANSPORT"] == "journal"

    for message in ("session starts", "camera hiccup"):
        assert entries[message]["OIVIS_CAMPAIGN"] == "Winter Sale"
        assert entries[message]["OIVIS_SESSION"] == "7"
        assert entries[message]["OIVIS_DEVICE"] == "mall-01-screen-3"
    assert entries["camera hiccup"]["THREAD_NAME"] == "capture" and entries["camera hiccup"]["PRIORITY"] == "4"

    over = entries["session over"]
    assert over["OIVIS_CAMPAIGN"] == "Winter Sale" and "OIVIS_SESSION" not in over


def test_the_service_as_systemd_runs_it_notifies_and_logs_to_the_journal(
        tmp_path: Path, astronaut_file: Path) -> None:
    """``python -m appliance run`` with INVOCATION_ID and NOTIFY_SOCKET set, beside a private journald:
    READY through the notify socket, and the kiosk's own records in the journal with their fields."""
    server = NotifySocket(str(tmp_path / "notify.sock"))
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "INVOCATION_ID": "1" * 32,
           "NOTIFY_SOCKET": server.address, "SDL_VIDEODRIVER": "dummy"}
    argv = [sys.executable, "-m", "appliance", "run", "--headless", "--source", f"image:{astronaut_file}",
            "--frames", "20"]
    try:
        run = run_with_journald(tmp_path / "journal", argv, env, cwd=REPO)
        messages = server.drain()
    finally:
        server.close()
    assert run.returncode == 0, run.stderr
    assert messages[0] == "READY=1" and messages[-1] == "STOPPING=1\nSTATUS=stopping"
    assert any(message.startswith("STATUS=showing") for message in messages)
    entries = run.by("oivis-appliance")
    ready = [entry for entry in entries if entry["LOGGER"] == "appliance.service.notify"
             and entry["MESSAGE"] == "ready (first camera frame shown)"]
    assert len(ready) == 1 and ready[0]["PRIORITY"] == "6" and ready[0]["CODE_FUNC"] == "_mark_ready"
    assert any(entry["LOGGER"] == "appliance.kiosk.machine" and entry["MESSAGE"] == "scene menu" for entry in entries)
    assert "scene menu" not in run.stderr  # the journal has it, not stderr as well
    scene = next(entry for entry in entries if entry["MESSAGE"] == "scene menu")
    assert scene["OIVIS_DEVICE"] == "dev-unprovisioned" and scene["OIVIS_CAMPAIGN"] == "OIVIS winter demo"
    assert len(scene["OIVIS_SESSION"]) == 36   # the shopper's session (the astronaut stands in front)
