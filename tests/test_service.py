"""The daemon under systemd: the unit verifies, sd_notify over a real socket (READY, WATCHDOG, STATUS,
STOPPING), a frozen pipeline stops the pings, logging targets, signals, config errors with lines."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest

from appliance.config import Config, load_config
from appliance.kiosk.display import DisplayMode
from appliance.kiosk.launch import kiosk_session
from appliance.service.logging import configure_logging
from appliance.service.notify import DatagramSender, ServiceNotifier, socket_address, watchdog_interval
from appliance.service.signals import stop_on_signals

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "provisioning/systemd/oivis-appliance.service"


class NotifySocket:
    """The systemd side: a bound datagram socket that collects what the service sends."""

    def __init__(self, address: str | bytes) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(address)
        self.socket.settimeout(0.05)
        self.received: list[tuple[float, str]] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.received.append((time.monotonic(), self.socket.recv(4096).decode()))
            except (TimeoutError, BlockingIOError):
                return [message for _, message in self.received]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[NotifySocket, str]]:
    path = tmp_path / "notify.sock"
    server = NotifySocket(str(path))
    yield server, str(path)
    server.socket.close()


def environment(address: str, watchdog_usec: int | None = None) -> dict[str, str]:
    env = {"NOTIFY_SOCKET": address}
    if watchdog_usec:
        env.update(WATCHDOG_USEC=str(watchdog_usec), WATCHDOG_PID=str(os.getpid()))
    return env


def test_no_notify_socket_means_no_notifier() -> None:
    assert ServiceNotifier.from_environment({}) is None


def test_socket_addresses_and_watchdog_environment() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@sd-notify") == b"\0sd-notify"
    with pytest.raises(ValueError):
        socket_address("relative/path")
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None  # someone else's
    assert watchdog_interval({}) is None


def test_ready_after_the_first_frame_then_paced_pings_and_status(notify_socket) -> None:
    server, address = notify_socket
    notifier = ServiceNotifier.from_environment(environment(address, watchdog_usec=1_000_000))
    notifier.frame_missed(0.0, None)                 # display and models up, no frame yet
    assert server.drain() == []
    for step in range(21):                            # 2 s of frames at 10 fps
        notifier.frame_shown(0.1 + step * 0.1, 10.0, "litert (2 threads)", "Winter")
    messages = server.drain()
    assert messages[0] == "READY=1"
    assert messages.count("READY=1") == 1
    assert 4 <= messages.count("WATCHDOG=1") <= 5     # every WatchdogSec/2 = 0.5 s, not every frame
    assert "STATUS=showing 10.0 fps · backend litert (2 threads) · campaign Winter" in messages
    notifier.stopping()
    assert server.drain()[-1] == "STOPPING=1\nSTATUS=stopping"


def test_abstract_notify_socket(tmp_path: Path) -> None:
    name = f"oivis-test-{os.getpid()}-{time.monotonic_ns()}"
    server = NotifySocket(b"\0" + name.encode())
    try:
        notifier = ServiceNotifier.from_environment(environment("@" + name))
        notifier.frame_shown(1.0, 30.0, "litert", "Default")
        assert server.drain()[0] == "READY=1"
    finally:
        server.socket.close()


def test_a_missing_camera_is_degraded_not_frozen(notify_socket) -> None:
    """A camera reported missing keeps the watchdog fed and becomes READY after the grace period."""
    server, address = notify_socket
    notifier = ServiceNotifier(DatagramSender(address), watchdog_s=1.0, ready_grace_s=2.0)
    for step in range(40):
        notifier.frame_missed(step * 0.1, "no camera at /dev/video0 (unplugged or not detected)")
    messages = server.drain()
    assert messages[0].startswith("STATUS=degraded")  # not READY at once: the camera may still be enumerating
    assert messages.count("READY=1") == 1
    assert "STATUS=degraded: no camera at /dev/video0 (unplugged or not detected)" in messages
    assert messages.count("WATCHDOG=1") >= 3


def test_the_kiosk_loop_pings_while_frames_flow_and_stops_when_the_pipeline_freezes(
        notify_socket, astronaut_file: Path, content_dir: Path) -> None:
    """The real render loop, models and threads against a real NOTIFY_SOCKET; then perception is
    frozen (its thread stopped: no new results, no problem reported) and the pings must stop."""
    server, address = notify_socket
    config = Config.model_validate({"source": {"uri": f"image:{astronaut_file}"},
                                    "display": {"width": 640, "height": 360},
                                    "kiosk": {"content": str(content_dir)}})
    with kiosk_session(config, DisplayMode.HEADLESS) as kiosk:
        kiosk.notifier = ServiceNotifier.from_environment(environment(address, watchdog_usec=400_000))
        kiosk.run(max_frames=15)
        flowing = server.drain()
        assert flowing[0] == "READY=1"
        assert "WATCHDOG=1" in flowing
        assert any(message.startswith("STATUS=showing") and "campaign" in message for message in flowing)

        kiosk.workers.perception.stop()
        frozen_at = time.monotonic()
        pygame.time.set_timer(pygame.QUIT, 1500, loops=1)
        kiosk.run(max_frames=None)
        server.drain()
    late_pings = [at for at, message in server.received if message == "WATCHDOG=1" and at > frozen_at + 0.3]
    assert late_pings == [], "a frozen pipeline must not keep the watchdog fed"


def test_journal_logging_when_systemd_connected_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = (tmp_path / "stderr").open("w")
    info = os.fstat(stream.fileno())
    journal = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
    try:
        assert configure_logging(environ={}, stream=stream) == "stderr"
        monkeypatch.setitem(sys.modules, "systemd", None)  # systemd-python absent
        assert configure_logging(environ=journal, stream=stream) == "stderr-journal"
        logging.getLogger("appliance.test").error("camera gone")
        stream.flush()
        assert "<3>appliance.test: camera gone" in (tmp_path / "stderr").read_text()

        sent: list[dict] = []

        class JournalHandler(logging.Handler):
            """systemd-python's handler, as far as the service uses it: default fields, one send per record."""

            def __init__(self, **fields: str) -> None:
                super().__init__()
                self.fields = fields

            def emit(self, record: logging.LogRecord) -> None:
                sent.append({"MESSAGE": record.getMessage(), **self.fields})

        module = types.ModuleType("systemd.journal")
        module.JournalHandler = JournalHandler
        monkeypatch.setitem(sys.modules, "systemd", types.ModuleType("systemd"))
        monkeypatch.setitem(sys.modules, "systemd.journal", module)
        assert configure_logging(fields={"OIVIS_DEVICE_ID": "mall-1"}, environ={"INVOCATION_ID": "x"},
                                 stream=stream) == "journal"
        logging.getLogger("appliance.test").warning("hello")
        assert sent[-1] == {"MESSAGE": "hello", "SYSLOG_IDENTIFIER": "oivis-appliance", "OIVIS_DEVICE_ID": "mall-1"}
    finally:
        configure_logging(environ={})
        stream.close()


def test_sigterm_calls_stop_once_and_restores_the_handlers() -> None:
    stopped = threading.Event()
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(stopped.set):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 2
        while not stopped.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stopped.is_set()
        assert signal.getsignal(signal.SIGTERM) == before  # a second SIGTERM is not swallowed
    assert signal.getsignal(signal.SIGTERM) == before


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified inside a scratch root holding the machine's units plus ours and its ExecStart binary."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    root = tmp_path / "root"
    shutil.copytree("/lib/systemd/system", root / "lib/systemd/system", symlinks=True)
    shutil.copy(UNIT, root / "lib/systemd/system" / UNIT.name)
    python = root / "opt/oivis/venv/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    result = subprocess.run([analyze, "verify", f"--root={root}", UNIT.name], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_unit_declares_the_service_contract() -> None:
    directives = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            directives.setdefault(key, []).append(value)
    expected = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "User": "oivis",
        "ProtectSystem": "strict", "PrivateTmp": "yes", "NoNewPrivileges": "yes", "ProtectHome": "yes",
        "ReadWritePaths": "/var/lib/oivis /etc/oivis", "StateDirectory": "oivis",
        "ExecStart": "/opt/oivis/venv/bin/python -m appliance run --config /etc/oivis/appliance.toml",
        "LoadCredential": "device.key:/etc/oivis/tls/device.key",
    }
    for key, value in expected.items():
        assert directives[key] == [value], key
    assert {"WatchdogSec", "StartLimitIntervalSec", "StartLimitBurst"} <= directives.keys()
    assert directives["SupplementaryGroups"] == ["video render input"]
    assert "SDL_VIDEODRIVER=kmsdrm" in directives["Environment"][0]


BROKEN = """\
device_id = "mall-01-screen-3"

[source]
uri = "camera:0"
framerate = 30

[fleet]
broker = "mqtt.example.net:8883"
tls = "yes please"
"""


def test_config_check_names_each_key_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text(BROKEN)
    result = subprocess.run([sys.executable, "-m", "appliance", "config", "check", str(path)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1
    assert f"{path}: source.framerate: unknown key (line 5)" in result.stderr
    assert "fleet.tls: Input should be a valid boolean" in result.stderr and "(line 9)" in result.stderr
    path.write_text(BROKEN.replace("framerate = 30\n", "").replace('"yes please"', "true"))
    result = subprocess.run([sys.executable, "-m", "appliance", "config", "check", str(path)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "ok — device mall-01-screen-3" in result.stdout and "broker mqtt.example.net:8883 (TLS)" in result.stdout


def test_config_default_path_and_systemd_credentials(tmp_path: Path) -> None:
    assert load_config(None, default=tmp_path / "absent.toml", environ={}) == Config()
    default = tmp_path / "appliance.toml"
    default.write_text('device_id = "site-d1"\n[fleet]\nkey_file = "/etc/oivis/tls/device.key"\n')
    assert load_config(None, default=default, environ={}).device_id == "site-d1"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "device.key").write_text("unprovisioned")  # the unit's SetCredential fallback
    env = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert load_config(default, environ=env).fleet.key_file == Path("/etc/oivis/tls/device.key")
    (credentials / "device.key").write_text("-----BEGIN PRIVATE KEY-----\n...\n")
    assert load_config(default, environ=env).fleet.key_file == credentials / "device.key"
