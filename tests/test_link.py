"""The fleet link against a real mosquitto (tests/broker.py): TLS identities, presence, ACL, reconnects, health.

Waits are on conditions with timeouts; the only fixed waits are the ones that
prove something did NOT happen (no ``lost`` after a short drop), each the will
delay plus a margin.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker import (  # noqa: F401 - fixtures
    Broker,
    Identity,
    Operator,
    Pki,
    broker_fixture,
    free_port,
    operator_fixture,
    pki_fixture,
    python_env,
    wait_for,
)

from appliance.config import FleetConfig
from appliance.errors import ApplianceError
from appliance.events import EventBus
from appliance.fleet.health import HealthReporter
from appliance.fleet.link import Incoming, Link
from appliance.fleet.shipper import EventShipper
from appliance.stats import StageStats

DEVICE = "screen-a"
STATUS = f"oivis/v1/{DEVICE}/status"
EVENTS = f"oivis/v1/{DEVICE}/events"


@pytest.fixture
def links() -> Iterator[list[Link]]:
    """Links started by a test; stopped at the end whatever happened."""
    started: list[Link] = []
    yield started
    for link in started:
        link.stop(timeout=1)


def start_link(links: list[Link], broker: Broker, state_dir: Path, device: str = DEVICE,
               identity: Identity | None = None, **fleet: Any) -> Link:
    link = Link(device, broker.fleet_config(identity or broker.pki.client(device), **fleet), state_dir,
                campaign_version=lambda: 7)
    links.append(link.start())
    return link


def states(operator: Operator, topic: str = STATUS) -> list[tuple[str, int]]:
    return [(status["state"], status["session"]) for status in operator.payloads(topic)]


def contiguous(seqs: list[int]) -> bool:
    return seqs == list(range(1, len(seqs) + 1))


def of_type(operator: Operator, kind: str) -> list[dict[str, Any]]:
    return [event for event, _ in operator.events(EVENTS).values() if event["type"] == kind]


def test_connects_with_tls_and_a_client_certificate_announcing_ready_then_offline(
        broker: Broker, operator: Operator, links: list[Link], tmp_path: Path) -> None:
    link = start_link(links, broker, tmp_path)
    assert link.wait_connected(10), link.problem
    assert link.state == "connected" and link.problem is None
    wait_for(lambda: ("ready", 1) in states(operator), what="the birth")
    birth = operator.payloads(STATUS)[0]
    assert birth == {"state": "ready", "session": 1, "app": "0.1.0", "campaign_version": 7, "alerts": []}
    link.stop()
    assert link.state == "stopped" and not link.connected
    wait_for(lambda: ("offline", 1) in states(operator), what="offline")
    retained = Operator(broker, (STATUS,), client_id="operator-late")
    try:
        wait_for(lambda: retained.on(STATUS), what="the retained status")
        message = retained.on(STATUS)[0]
        assert message.retain and json.loads(message.payload)["state"] == "offline"
    finally:
        retained.close()
    again = start_link(links, broker, tmp_path)
    assert again.wait_connected(10)
    wait_for(lambda: ("ready", 2) in states(operator), what="the next session's birth")


def test_a_short_drop_reconnects_with_the_next_session_and_no_lost(
        broker: Broker, operator: Operator, links: list[Link], tmp_path: Path) -> None:
    link = start_link(links, broker, tmp_path, will_delay_s=2)
    assert link.wait_connected(10)
    link._client.socket().shutdown(socket.SHUT_RDWR)  # the network dies under the device
    wait_for(lambda: ("ready", 2) in states(operator), what="the birth after the drop")
    time.sleep(2.5)
    assert "lost" not in [state for state, _ in states(operator)]


def test_a_certificate_from_another_ca_is_refused_not_connected(
        broker: Broker, links: list[Link], tmp_path: Path) -> None:
    forged = Pki(tmp_path / "rogue").client(DEVICE)
    link = start_link(links, broker, tmp_path, identity=Identity(broker.pki.ca, forged.cert, forged.key))
    wait_for(lambda: link.state == "refused", what="the refusal")
    assert not link.connected and "certificate" in link.problem
    assert not link.wait_connected(0.5)


def test_a_broker_certificate_the_device_does_not_trust_is_refused(
        broker: Broker, links: list[Link], tmp_path: Path) -> None:
    own = broker.pki.client(DEVICE)
    other_ca = Pki(tmp_path / "other").ca
    link = start_link(links, broker, tmp_path, identity=Identity(other_ca, own.cert, own.key))
    wait_for(lambda: link.state == "refused", what="the refusal")
    assert not link.connected and "does not vouch" in link.problem


def test_a_device_reaching_outside_its_acl_is_refused_not_connected(
        broker: Broker, operator: Operator, links: list[Link], tmp_path: Path) -> None:
    impostor = start_link(links, broker, tmp_path, device=DEVICE, identity=broker.pki.client("screen-b"))
    wait_for(lambda: impostor.state == "refused", what="the refusal")
    assert not impostor.connected and "ACL" in impostor.problem
    assert operator.on(STATUS) == []


def test_a_refused_device_comes_up_once_the_broker_allows_it(
        broker: Broker, operator: Operator, links: list[Link], tmp_path: Path) -> None:
    """Fixing the ACL does not drop the connection: the device asks again and is then connected."""
    device = start_link(links, broker, tmp_path, device=DEVICE, identity=broker.pki.client("screen-b"))
    wait_for(lambda: device.state == "refused", what="the refusal")
    with (broker.directory / "devices.acl").open("a") as acl:
        acl.write(f"\nuser screen-b\ntopic readwrite oivis/v1/{DEVICE}/#\n")
    broker._process.send_signal(signal.SIGHUP)
    wait_for(lambda: device.connected, 15, "the device connected after the ACL was fixed")
    assert wait_for(lambda: [p for p in operator.payloads(STATUS) if p["state"] == "ready"], what="its birth")


def test_the_acl_keeps_a_device_out_of_other_devices_topics(
        broker: Broker, operator: Operator, links: list[Link], tmp_path: Path) -> None:
    """Asserted by non-delivery (mosquitto may acknowledge a denied publish): each denied message is
    followed by an allowed one on the same path, whose arrival proves the denied one had its chance."""
    other = start_link(links, broker, tmp_path, device="screen-b")
    assert other.wait_connected(10)
    heard: list[str] = []
    other.subscribe("oivis/v1/screen-a/cmd/+", lambda message: heard.append(message.topic))
    other.subscribe("oivis/v1/screen-b/cmd/+", lambda message: heard.append(message.topic))
    other.publish("oivis/v1/screen-a/events", {"device": "screen-b", "historical": False, "events": []})
    other.publish("oivis/v1/screen-a/status", {"state": "offline"}, retain=True)
    other.publish("oivis/v1/screen-b/events", {"marker": True}).wait(5)
    wait_for(lambda: operator.on("oivis/v1/screen-b/events"), what="the allowed marker")
    assert [m.topic for m in operator.messages if m.topic.startswith("oivis/v1/screen-a/")] == []
    operator.publish("oivis/v1/screen-a/cmd/reboot", {"cmd_id": "1"})
    operator.publish("oivis/v1/screen-b/cmd/reload", {"cmd_id": "2"})
    wait_for(lambda: heard, what="the device's own command")
    assert heard == ["oivis/v1/screen-b/cmd/reload"]


def test_handlers_get_their_messages_and_are_subscribed_again_after_a_reconnect(
        broker: Broker, operator: Operator, links: list[Link], tmp_path: Path) -> None:
    link = start_link(links, broker, tmp_path, session_expiry_s=0)  # the broker forgets the subscription
    received: list[Incoming] = []
    handled_on: list[str] = []

    def handler(message: Incoming) -> None:
        handled_on.append(threading.current_thread().name)
        received.append(message)

    link.subscribe(link.topics.commands, handler)
    assert link.wait_connected(10)
    wait_for(lambda: ("ready", 1) in states(operator), what="the birth")
    operator.publish(link.topics.command("reload"), {"cmd_id": "a"})
    wait_for(lambda: received, what="the first command")
    link._client.socket().shutdown(socket.SHUT_RDWR)
    wait_for(lambda: ("ready", 2) in states(operator), what="the birth after the drop")
    wait_for(lambda: link.connected, what="the reconnect")
    operator.publish(link.topics.command("screenshot"), {"cmd_id": "b"})
    wait_for(lambda: len(received) == 2, what="the command after the reconnect")
    assert [m.json(max_bytes=1024)["cmd_id"] for m in received] == ["a", "b"]
    assert received[1].topic == "oivis/v1/screen-a/cmd/screenshot"
    assert threading.main_thread().name not in handled_on


def test_broker_killed_and_restarted_loses_no_event_and_seq_stays_contiguous(
        broker: Broker, operator: Operator, links: list[Link], tmp_path: Path) -> None:
    bus = EventBus()
    link = start_link(links, broker, tmp_path)
    shipper = EventShipper(bus, link, link.fleet, tmp_path).start()
    try:
        assert link.wait_connected(10)
        for n in range(10):
            bus.publish("tick", {"n": n})
        wait_for(lambda: len(operator.events(EVENTS)) == 11, what="the live events")
        broker.kill()
        wait_for(lambda: not link.connected, what="the link to notice")
        for n in range(10, 25):
            bus.publish("tick", {"n": n})
        wait_for(lambda: shipper.status()["pending"] == 15, what="the offline events in the spool")
        broker.start()
        wait_for(lambda: len(operator.events(EVENTS)) == 26, timeout=20, what="the replay")
    finally:
        shipper.stop()
    heard = operator.events(EVENTS)
    assert contiguous(sorted(heard))
    assert heard[1][0]["type"] == "boot" and heard[1][0]["data"]["last_run"] == "first"
    ticks = {event["data"]["n"]: historical for event, historical in heard.values() if event["type"] == "tick"}
    assert sorted(ticks) == list(range(25))
    assert not any(ticks[n] for n in range(10)) and all(ticks[n] for n in range(10, 25))
    wait_for(lambda: ("ready", 2) in states(operator), what="the birth after the restart")
    wait_for(lambda: of_type(operator, "shutdown"), what="the shutdown event")


class DeviceProcess:
    """tests/fleet_device.py in a subprocess, its stdout lines collected by a thread."""

    def __init__(self, broker: Broker, state_dir: Path, events: int) -> None:
        fleet = broker.fleet_config(broker.pki.client(DEVICE)).model_dump(mode="json")
        script = Path(__file__).with_name("fleet_device.py")
        self.lines: list[str] = []
        self.process = subprocess.Popen([sys.executable, str(script), DEVICE, str(state_dir), json.dumps(fleet),
                                         str(events)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, env=python_env())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=5)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


def test_a_killed_device_is_lost_after_the_will_delay_and_comes_back_without_gaps(
        broker: Broker, operator: Operator, tmp_path: Path) -> None:
    first = DeviceProcess(broker, tmp_path, events=200)
    try:
        wait_for(lambda: len(operator.events(EVENTS)) > 20, timeout=20, what="events from the first run")
    finally:
        first.kill()
    killed = time.monotonic()
    wait_for(lambda: ("lost", 1) in states(operator), what="the will")
    assert time.monotonic() - killed >= 0.8  # the will delay (1 s) held it back
    second = DeviceProcess(broker, tmp_path, events=0)
    try:
        wait_for(lambda: "done" in second.lines, timeout=20, what="the second run")
        wait_for(lambda: ("ready", 2) in states(operator), what="the second run's birth")
        wait_for(lambda: len(of_type(operator, "boot")) == 2, what="the second boot event")
        assert [boot["data"]["last_run"] for boot in of_type(operator, "boot")] == ["first", "crash"]
    finally:
        second.terminate()
    assert "stopped" in second.lines
    wait_for(lambda: ("offline", 2) in states(operator), what="offline")
    wait_for(lambda: of_type(operator, "shutdown"), what="the shutdown event")
    heard = operator.events(EVENTS)
    assert contiguous(sorted(heard)), sorted(heard)
    ticks = sorted(e["data"]["n"] for e, _ in heard.values() if e["type"] == "tick")
    assert ticks == list(range(len(ticks)))  # what was spooled before the kill arrived, in order
    time.sleep(1.5)
    assert states(operator)[-1] == ("offline", 2)  # a clean stop leaves no will behind


def test_health_reports_carry_their_shape_and_expire_after_two_periods(
        broker: Broker, operator: Operator, links: list[Link], tmp_path: Path) -> None:
    link = start_link(links, broker, tmp_path)
    stats = StageStats()
    stats.add_all({"segmentation": 3.0, "composite": 5.0})
    reporter = HealthReporter(link, stats, fps=lambda: 29.97, backend="litert", campaign_version=lambda: 7,
                              state_dir=tmp_path, period_s=0.5, extras={"spool": lambda: {"pending": 0}}).start()
    try:
        assert link.wait_connected(10)
        wait_for(lambda: operator.on(link.topics.health), what="a health report")
    finally:
        reporter.stop()
    message = operator.on(link.topics.health)[0]
    assert message.qos == 0 and not message.retain
    assert message.properties.MessageExpiryInterval == 1
    report = json.loads(message.payload)
    assert report["fps"] == 29.97 and report["backend"] == "litert" and report["campaign_version"] == 7
    assert report["stages"]["segmentation"] == {"p50": 3.0, "p95": 3.0}
    assert set(report) >= {"temperature_c", "npu_load", "memory_mb", "disk_free_mb", "uptime_s", "spool"}
    assert report["memory_mb"]["rss"] > 0 and report["disk_free_mb"] > 0
    assert report["memory_mb"]["peak_rss"] >= report["memory_mb"]["rss"]


def test_missing_tls_files_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ApplianceError, match="device.pem"):
        Link(DEVICE, FleetConfig(broker="localhost:8883", cert_file=tmp_path / "device.pem"), tmp_path)


def test_plain_tcp_is_said_to_be_for_development(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    link = Link(DEVICE, FleetConfig(broker=f"127.0.0.1:{free_port()}", tls=False, reconnect_min_s=0.1), tmp_path)
    with caplog.at_level(logging.WARNING):
        link.start()
        wait_for(lambda: link.state == "unreachable", what="the unreachable state")
        link.stop(timeout=1)
    assert "WITHOUT TLS" in caplog.text and "cannot reach" in link.problem
