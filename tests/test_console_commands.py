"""Commands from the console to a real device side: the console server process with its operator certificate, the
real broker (the shipped ACL), and the device's own FleetRuntime answering; the replies land on the screen's page.
"""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from broker import Broker, broker_fixture, pki_fixture, wait_for  # noqa: F401 - fixtures
from console_server import ConsoleServer, console_db

from appliance.config import Config, PathsConfig
from appliance.events import EventBus
from appliance.fleet.runtime import FleetRuntime
from appliance.ops.eventstore import PostgresStore
from appliance.ops.registry import DeviceReport
from appliance.ops.testbroker import OPERATOR
from appliance.stats import RateMeter, StageStats

DEVICE = "mall-07-screen-2"


class ScreenSide:
    """What FleetRuntime.attach takes from the kiosk; the screen shows a gradient that a screenshot must carry."""

    def __init__(self) -> None:
        self.events, self.stats, self.shown, self.backend = EventBus(), StageStats(), RateMeter(), "litert"
        self.reloads = 0

    def grab_screen(self) -> np.ndarray:
        picture = np.zeros((180, 320, 3), np.uint8)
        picture[:, :, 2] = np.linspace(0, 255, 320, dtype=np.uint8)[None, :]
        return picture

    def request_reload(self) -> None:
        self.reloads += 1

    def stop(self, exit_status: int = 0) -> None:
        pass


@pytest.fixture
def device(broker: Broker, tmp_path: Path):
    config = Config(device_id=DEVICE, fleet=broker.fleet_config(broker.pki.client(DEVICE)),
                    paths=PathsConfig(state_dir=tmp_path / "state"))
    runtime = FleetRuntime(config, tmp_path / "appliance.toml").start()
    screen = ScreenSide()
    runtime.attach(screen)
    assert runtime.link.wait_connected(10)
    try:
        yield screen
    finally:
        runtime.stop()


@pytest.fixture
def console(broker: Broker, tmp_path: Path):
    identity = broker.pki.service(OPERATOR)
    with console_db() as url:
        server = ConsoleServer(url, tmp_path / "console", "--broker", f"{broker.host}:{broker.operator_port}",
                               "--ca", str(identity.ca), "--cert", str(identity.cert), "--key-file",
                               str(identity.key)).start()
        store = PostgresStore(url)  # the screen in the registry, as ingest would have it
        store.write_devices([DeviceReport.parse(f"oivis/v1/{DEVICE}/status", b'{"state": "ready", "session": 1}',
                                                datetime.now(timezone.utc))])
        store.close()
        try:
            yield server
        finally:
            server.stop()


def test_a_screenshot_reaches_the_page_and_a_reload_is_done(console: ConsoleServer, device: ScreenSide) -> None:
    client = console.client()
    wait_for(lambda: json.loads(client.get("/healthz").body)["fleet"], 20, "the console's link to the broker")
    client.get(f"/screens/{DEVICE}")  # the page with the buttons, and the session's CSRF token
    sent = client.post(f"/screens/{DEVICE}/commands", {"name": "screenshot"})
    assert sent.status == 200 and f"/screens/{DEVICE}" in sent.url
    fragment = wait_for(lambda: (lambda body: body if "screenshot.png" in body else None)(
        client.get(f"/screens/{DEVICE}/commands").body), 20, "the screenshot's reply")
    image_path = re.search(r'src="(/screens/[^"]+/screenshot\.png)"', fragment).group(1)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(client.jar))
    with opener.open(console.base + image_path, timeout=10) as answer:
        png = answer.read()
        assert answer.headers["content-type"] == "image/png"
    picture = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[1] == 320 and picture[:, -1, 2].mean() > 200 and picture[:, 0, 2].mean() < 30
    client.get(f"/screens/{DEVICE}")
    client.post(f"/screens/{DEVICE}/commands", {"name": "reload"})
    wait_for(lambda: device.reloads == 1, 20, "the reload")
    wait_for(lambda: client.get(f"/screens/{DEVICE}/commands").body.count('class="pill ok">done') == 2, 20,
             "both replies")
    audit = client.get("/audit").body
    assert "command.screenshot" in audit and "command.reload" in audit and DEVICE in audit


def test_a_set_config_the_device_refuses_shows_its_reason(console: ConsoleServer, device: ScreenSide) -> None:
    client = console.client()
    wait_for(lambda: json.loads(client.get("/healthz").body)["fleet"], 20, "the console's link to the broker")
    client.get(f"/screens/{DEVICE}")
    client.post(f"/screens/{DEVICE}/commands", {"name": "set-config", "setting": "kiosk.attract_after_s",
                                               "value": "-5"})
    fragment = wait_for(lambda: (lambda body: body if "failed" in body else None)(
        client.get(f"/screens/{DEVICE}/commands").body), 20, "the refusal")
    assert "attract_after_s" in fragment and "refused" in fragment


def test_a_command_the_broker_refuses_is_shown_not_sent_and_audited(broker: Broker, tmp_path: Path) -> None:
    """The console under another topic prefix, which the shipped ACL does not open to operators: the broker
    refuses the publish, and the command is recorded as not sent, never as waiting for a reply."""
    identity = broker.pki.service(OPERATOR)
    with console_db() as url:
        server = ConsoleServer(url, tmp_path / "console", "--broker", f"{broker.host}:{broker.operator_port}",
                               "--ca", str(identity.ca), "--cert", str(identity.cert), "--key-file",
                               str(identity.key), "--topic-prefix", "elsewhere/{device_id}").start()
        store = PostgresStore(url)
        store.write_devices([DeviceReport.parse(f"oivis/v1/{DEVICE}/status", b'{"state": "ready", "session": 1}',
                                                datetime.now(timezone.utc))])
        store.close()
        try:
            client = server.client()
            wait_for(lambda: json.loads(client.get("/healthz").body)["fleet"], 20, "the console's link to the broker")
            client.get(f"/screens/{DEVICE}")
            refused = client.post(f"/screens/{DEVICE}/commands", {"name": "reload"})
            assert refused.status == 400 and "reload was not sent to" in refused.body
            fragment = client.get(f"/screens/{DEVICE}/commands").body
            assert "not sent" in fragment and "waiting" not in fragment
            assert "command.reload.not_sent" in client.get("/audit").body
        finally:
            server.stop()
