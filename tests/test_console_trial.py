"""The console's trial parts: the private PostgreSQL cluster, the simulated screen, and the trial that joins them.

The cluster runs from Debian's binaries in a directory of the test's (the tests skip, naming the package, where
they are not installed).  The simulated screen runs as its own process against a real mosquitto (tests/broker.py):
it registers, its shopper's events arrive, a campaign signed and pushed with the operator CLI (ops campaign push)
is downloaded from a real HTTP server and applied, a screenshot comes back as a PNG of the campaign's world, and
the simulated reboot ends the process with the restart status.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest
from broker import (  # noqa: F401 - fixtures
    Broker,
    Operator,
    broker_fixture,
    operator_fixture,
    pki_fixture,
    python_env,
    wait_for,
)
from console_server import ConsoleServer

from appliance.campaigns.signing import write_keypair
from appliance.console import pgserver
from appliance.console.pgserver import PrivateCluster, find_binaries
from appliance.console.simscreen import Shopper, write_config
from appliance.console.trial import SCREENS, Trial
from appliance.errors import ApplianceError
from appliance.ops.build import build
from appliance.ops.cli import main as ops_main
from appliance.ops.serve import make_server
from appliance.ops.testbroker import MOSQUITTO, free_port
from appliance.service.status import RESTART_STATUS

DEVICE = "demo-mall-screen-1"
PREFIX = f"oivis/v1/{DEVICE}"


# -- the private PostgreSQL ---------------------------------------------------------------------


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """A directory the server may enter when it runs as the postgres user (pytest's own is root's, 0700)."""
    try:
        find_binaries()
    except ApplianceError as exc:
        pytest.skip(str(exc))
    directory = Path(tempfile.mkdtemp(prefix="oivis-pg-"))
    directory.chmod(0o755)
    try:
        yield directory / "cluster"
    finally:
        PrivateCluster(directory / "cluster").stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_the_private_cluster_starts_serves_stops_and_keeps_its_data(cluster_dir: Path) -> None:
    cluster = PrivateCluster(cluster_dir)
    url = cluster.start()
    assert cluster.running
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('before the restart')")
    assert cluster.start() == url  # already running: nothing changes
    cluster.stop()
    assert not cluster.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    again = PrivateCluster(cluster_dir)
    assert again.start() == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT value FROM kept").fetchall() == [("before the restart",)]
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)  # the unix socket only
    again.stop()
    assert "database system is shut down" in cluster.log.read_text()


def test_missing_binaries_are_one_line_naming_the_package(tmp_path: Path) -> None:
    with pytest.raises(ApplianceError, match=r"apt-get install postgresql$"):
        find_binaries(tmp_path / "nothing")


@pytest.mark.skipif(not hasattr(pgserver.os, "geteuid") or pgserver.os.geteuid() != 0, reason="runs as root only")
def test_as_root_a_directory_the_postgres_user_cannot_reach_is_refused_in_one_line(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(ApplianceError, match=r"cannot enter .*closed.* chmod o\+x"):
        PrivateCluster(closed / "cluster").start()


# -- the simulated screen -----------------------------------------------------------------------


def test_the_shopper_plays_whole_visits_with_the_kiosks_fields() -> None:
    import random

    shopper = Shopper(random.Random(7))
    visits = [shopper.visit(("mirror", "rps", "pose", "photo", "fusion", "age")) for _ in range(200)]
    types = [step[1] for visit in visits for step in visit.steps]
    assert types.count("session_start") == types.count("session_end") == 200
    for needed in ("experience_chosen", "rps_round", "rps_result", "pose_final", "photo_taken", "photo_shared",
                   "photo_printed", "age_played", "fusion_made"):
        assert needed in types, needed
    for visit in visits:
        assert visit.steps[0][1] == "session_start" and visit.steps[-1][1] == "session_end"
        assert visit.steps[-1][2]["dwell_s"] >= sum(gap for gap, _, _ in visit.steps[:-1])
        for _, kind, data in visit.steps:
            if kind == "rps_result":
                assert data["winner"] in ("shopper", "star") and max(data["score"].values()) == 2
    shared = {data["photo_id"] for visit in visits for _, kind, data in visit.steps if kind == "photo_shared"}
    taken = {data["photo_id"] for visit in visits for _, kind, data in visit.steps if kind == "photo_taken"}
    assert shared and shared <= taken


def bundle(directory: Path, name: str, colour: tuple[int, int, int]) -> Path:
    """A one-world campaign whose world is one colour (BGR), to recognise it in a screenshot."""
    directory.mkdir(parents=True)
    (directory / "campaign.toml").write_text(
        f'name = "{name}"\nexperiences = ["mirror"]\n[[scenes]]\nid = "main"\ntitle = "{name}"\n'
        'background = "world.png"\n')
    cv2.imwrite(str(directory / "world.png"), np.full((360, 640, 3), colour, np.uint8))
    return directory


class ScreenProcess:
    """``python -m appliance.console.simscreen`` with its log, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "appliance.console.simscreen", "--config", str(config),
                 "--sessions-per-minute", "240", "--speed", "200", "--seed", "3"],
                stdout=out, stderr=subprocess.STDOUT, env=python_env())

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def screen(tmp_path: Path, broker: Broker) -> Iterator[tuple[ScreenProcess, Path]]:
    """A simulated screen on the test broker, showing a blue default; the operator's private key."""
    private, public, _ = write_keypair(tmp_path / "keys")
    identity = broker.pki.client(DEVICE)
    fleet = broker.fleet_config(identity).model_dump(exclude_defaults=True)
    config = write_config(tmp_path / "screen.toml", DEVICE, fleet, public, tmp_path / "state",
                          bundle(tmp_path / "default", "Blue default", (200, 60, 20)))
    process = ScreenProcess(config, tmp_path / "screen.log")
    try:
        yield process, private
    finally:
        process.stop()


def command(operator: Operator, name: str, arguments: dict | None = None) -> dict:
    cmd_id = str(uuid.uuid4())
    operator.publish(f"{PREFIX}/cmd/{name}", {"cmd_id": cmd_id, **(arguments or {})})
    return wait_for(lambda: next((reply for reply in operator.payloads(f"{PREFIX}/cmd-res")
                                  if reply.get("cmd_id") == cmd_id), None), 20, f"the reply to {name}")


def screenshot_colour(reply: dict) -> tuple[int, int, int]:
    assert reply["ok"], reply
    image = cv2.imdecode(np.frombuffer(base64.b64decode(reply["png"]), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == reply["width"] and image.shape[0] == reply["height"]
    return tuple(int(value) for value in image[image.shape[0] // 4, image.shape[1] // 2])


def close(colour: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 3 for a, b in zip(colour, expected, strict=True))


def test_a_simulated_screen_registers_ships_events_applies_a_pushed_campaign_and_answers_commands(
        tmp_path: Path, broker: Broker, operator: Operator, screen: tuple[ScreenProcess, Path]) -> None:
    process, private = screen
    status = wait_for(lambda: [s for s in operator.payloads(f"{PREFIX}/status") if s["state"] == "ready"], 30,
                      "the screen's ready status")
    assert status[-1]["campaign_version"] == 0

    def events() -> list[dict]:
        return [event for batch in operator.payloads(f"{PREFIX}/events") for event in batch["events"]]

    wait_for(lambda: any(event["type"] == "session_end" for event in events()), 30, "a whole visit's events")
    visit = [event for event in events() if event["type"] != "boot"]
    assert visit[0]["type"] == "session_start" and visit[0]["data"] == {"session": visit[0]["data"]["session"],
                                                                  "campaign": "Blue default"}
    chosen = [event for event in visit if event["type"] == "experience_chosen"]
    assert chosen and all(event["data"]["campaign"] == "Blue default" for event in chosen)
    assert chosen[0]["data"]["session"] == visit[0]["data"]["session"]
    assert [event["seq"] for event in events()] == sorted(event["seq"] for event in events())

    assert close(screenshot_colour(command(operator, "screenshot")), (200, 60, 20))

    campaign = bundle(tmp_path / "sale", "Red sale", (30, 30, 220))
    server = make_server(build(campaign, "http://127.0.0.1").files, 0, "127.0.0.1")
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        assert ops_main(["campaign", "push", str(campaign), "--version", "1", "--key", str(private),
                         "--device", DEVICE, *broker.operator_options(),
                         "--asset-base-url", f"http://127.0.0.1:{server.server_address[1]}"]) == 0
        reported = wait_for(lambda: [r for r in operator.payloads(f"{PREFIX}/state/reported")
                                     if r["phase"] in ("applied", "failed", "rejected") and r.get("applied_version")
                                     or r["phase"] in ("failed", "rejected")], 30, "the campaign's outcome")
        assert reported[-1]["phase"] == "applied" and reported[-1]["applied_version"] == 1, reported
    finally:
        server.shutdown()
        server.server_close()
    wait_for(lambda: any(event["type"] == "experience_chosen" and event["data"]["campaign"] == "Red sale"
                         for event in events()), 30, "events of the pushed campaign")
    assert close(screenshot_colour(command(operator, "screenshot")), (30, 30, 220))
    wait_for(lambda: any(s["campaign_version"] == 1 for s in operator.payloads(f"{PREFIX}/status")), 10,
             "the status announcing version 1")

    refused = command(operator, "set-config", {"set": {"fleet": {"broker": "elsewhere:8883"}}})
    assert not refused["ok"] and "fleet.broker" in refused["error"]
    reply = command(operator, "set-config", {"set": {"fleet": {"health_period_s": 7}}})
    assert reply["ok"] and reply["changed"] == ["fleet.health_period_s"] and reply["restart_required"], reply
    assert process.process.wait(timeout=20) == RESTART_STATUS
    assert "health_period_s = 7" in (tmp_path / "screen.toml").read_text()

    again = ScreenProcess(tmp_path / "screen.toml", tmp_path / "screen-2.log")
    try:
        wait_for(lambda: operator.payloads(f"{PREFIX}/status")[-1]["state"] == "ready", 30, "ready again")
        wait_for(lambda: not (tmp_path / "screen.toml.trial.json").exists(), 10, "the new configuration confirmed")
        reply = command(operator, "reboot")
        assert reply["ok"] and reply["rebooting"] is True
        assert again.process.wait(timeout=20) == RESTART_STATUS
        assert "simulated: systemctl reboot" in again.text()
        assert operator.payloads(f"{PREFIX}/status")[-1]["state"] == "offline"
    finally:
        again.stop()


def test_a_simulated_screen_stops_cleanly_on_sigterm(broker: Broker, operator: Operator,
                                                     screen: tuple[ScreenProcess, Path]) -> None:
    process, _ = screen
    wait_for(lambda: any(s["state"] == "ready" for s in operator.payloads(f"{PREFIX}/status")), 30, "ready")
    assert process.stop() == 0
    assert operator.payloads(f"{PREFIX}/status")[-1]["state"] == "offline"
    assert json.loads(json.dumps(process.text())).count("Traceback") == 0


# -- the trial ----------------------------------------------------------------------------------


@pytest.fixture
def trial_root(cluster_dir: Path) -> Iterator[Path]:
    """The trial's directory, where the postgres user may enter when the test runs as root; stopped after."""
    yield cluster_dir.parent / "trial"
    PrivateCluster(cluster_dir.parent / "trial" / "postgres").stop()


def test_the_trials_parts_come_up_store_the_screens_events_and_keep_them_for_the_next_run(trial_root: Path) -> None:
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    out = io.StringIO()
    trial = Trial(trial_root, listen=f"127.0.0.1:{free_port()}", sessions_per_minute=240, out=out)
    try:
        url = trial.start_database()
        trial.start_broker()
        trial.start_ingest()
        trial.start_screens()
        assert trial.wait_registered() == sorted(SCREENS)

        def stored() -> set[str]:
            with psycopg.connect(url) as conn:
                return {row[0] for row in conn.execute(
                    "SELECT DISTINCT device FROM events WHERE type = 'experience_chosen' "
                    "AND data->>'campaign' = 'OIVIS winter demo'")}

        wait_for(lambda: stored() == set(SCREENS), 60, "both screens' experience events in the database")
        key = (trial_root / "keys" / "operator.key").read_bytes()
    finally:
        trial.stop()
    assert not any(child.running for child in [trial.ingest, *trial.screens])
    assert not trial.cluster.running
    assert "screen: demo-mall-screen-1 registered" in out.getvalue()

    again = Trial(trial_root, out=io.StringIO())
    try:
        with psycopg.connect(again.start_database()) as conn:
            assert conn.execute("SELECT count(*) FROM events WHERE type = 'session_start'").fetchone()[0] > 0
            offline = conn.execute("SELECT count(*) FROM devices WHERE status->>'state' = 'offline'").fetchone()[0]
        assert offline == len(SCREENS)  # stopped in order: each said offline while ingest still listened
        assert again.signing_keys()[0].read_bytes() == key
    finally:
        again.stop()


def test_the_whole_trial_serves_the_console_and_gives_the_first_run_credentials(trial_root: Path) -> None:
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    out = io.StringIO()
    trial = Trial(trial_root, listen=f"127.0.0.1:{free_port()}", screens=SCREENS[:1], out=out)
    try:
        credentials = trial.start()
        assert credentials.user == "admin" and credentials.password
        with urllib.request.urlopen(f"{credentials.address}/login", timeout=10) as response:
            assert response.status == 200
        assert trial.console is not None and trial.console.running
    finally:
        trial.stop()
    assert credentials.password not in trial.console.text()  # said where it is, never the password itself
    assert "stopping console" in out.getvalue()


def test_the_console_answers_a_database_outage_with_one_clear_page_and_recovers(cluster_dir: Path,
                                                                                 tmp_path: Path) -> None:
    cluster = PrivateCluster(cluster_dir)
    console = ConsoleServer(cluster.start(), tmp_path / "console").start()
    try:
        client = console.client()
        assert client.get("/fleet").status == 200
        cluster.stop()
        down = client.get("/fleet")
        assert down.status == 503 and "is not reachable right now" in down.body
        assert client.get("/healthz").status == 503
        assert "Traceback" not in console.log.read_text()
        cluster.start()
        wait_for(lambda: client.get("/fleet").status == 200, 30, "the console back on its database")
    finally:
        console.stop()
        cluster.stop()
