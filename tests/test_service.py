"""The daemon under systemd: the unit verifies, signals, config errors with lines.

sd_notify and the journal (through systemd-python) are tested in test_systemd.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from broker import Pki

from appliance.config import Config, load_config
from appliance.service.signals import stop_on_signals

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "provisioning/systemd/oivis-appliance.service"


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
    fixed = BROKEN.replace("framerate = 30\n", "").replace('"yes please"', "true")
    path.write_text(fixed)
    result = subprocess.run([sys.executable, "-m", "appliance", "config", "check", str(path)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1 and "fleet.cert_file: TLS files (CA /etc/oivis/tls/ca.pem" in result.stderr, result.stderr
    identity = Pki(tmp_path / "pki").client("mall-01-screen-3")
    path.write_text(fixed + f'ca_file = "{identity.ca}"\ncert_file = "{identity.cert}"\nkey_file = "{identity.key}"\n')
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
