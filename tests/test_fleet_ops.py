"""The operator's fleet tools against a real mosquitto (tests/broker.py): ``fleet status``, ``events tail``.

``ingest`` has its own tests (tests/test_ingest.py), which use the helpers here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

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

from appliance.events import EventBus
from appliance.fleet.link import Link
from appliance.fleet.shipper import EventShipper
from appliance.ops.cli import main
from appliance.ops.eventbatch import EventBatch
from appliance.ops.tail import event_line

EVENTS = "oivis/v1/screen-a/events"


def tls(broker: Broker) -> list[str]:
    return broker.operator_options()


class Device:
    """A device's link and event worker, as the kiosk runs them."""

    def __init__(self, broker: Broker, state_dir: Path, device: str = "screen-a") -> None:
        self.bus = EventBus()
        self.link = Link(device, broker.fleet_config(broker.pki.client(device)), state_dir,
                         campaign_version=lambda: 3).start()
        self.shipper = EventShipper(self.bus, self.link, self.link.fleet, state_dir).start()
        assert self.link.wait_connected(10)

    def ticks(self, numbers: range) -> None:
        for n in numbers:
            self.bus.publish("tick", {"n": n})

    def stop(self) -> None:
        self.shipper.stop()
        self.link.stop(timeout=2)


@pytest.fixture
def devices() -> Iterator[list[Device]]:
    started: list[Device] = []
    yield started
    for device in started:
        device.stop()


class Process:
    """``python -m appliance.ops ...`` in the background, its output lines collected by threads."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "appliance.ops", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=python_env())
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: TextIO, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    def said(self, pattern: str) -> re.Match | None:
        return next((m for m in map(re.compile(pattern).search, list(self.err)) if m), None)

    def finish(self, timeout: float = 30) -> int:
        """The exit status, once the process ended and its output is read."""
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


def test_fleet_status_lists_a_connected_device_with_its_session_and_a_stopped_one_offline(
        broker: Broker, operator: Operator, devices: list[Device], tmp_path: Path, capsys) -> None:
    gone = Device(broker, tmp_path / "b", "screen-b")
    gone.stop()
    device = Device(broker, tmp_path / "a")
    devices.append(device)
    report = {"applied_version": 3, "pending_version": 4, "phase": "failed", "progress": 0.5,
              "errors": ["bg.png: sha256 mismatch"]}
    assert device.link.publish(device.link.topics.reported, report, retain=True).wait(5)
    wait_for(lambda: operator.on("oivis/v1/screen-b/status"), what="screen-b's status")

    assert main(["fleet", "status", *tls(broker), "--window", "0.5", "--json"]) == 0
    views = {view["device"]: view for view in json.loads(capsys.readouterr().out)}
    assert views["screen-a"]["status"] == {"state": "ready", "session": 1, "app": "0.1.0", "campaign_version": 3,
                                         "alerts": []}
    assert views["screen-a"]["reported"] == report
    assert views["screen-b"]["status"]["state"] == "offline" and views["screen-b"]["reported"] is None

    assert main(["fleet", "status", *tls(broker), "--window", "0.5"]) == 0
    header, first, second = capsys.readouterr().out.splitlines()
    assert header.split() == ["DEVICE", "STATE", "SESSION", "APP", "CAMPAIGN", "APPLIED", "PENDING", "PHASE", "ERRORS"]
    assert first.split() == ["screen-a", "ready", "1", "0.1.0", "3", "3", "4", "failed", "bg.png:", "sha256", "mismatch"]
    assert second.split() == ["screen-b", "offline", "1", "0.1.0", "3", "-", "-", "-", "-"]


def test_events_tail_prints_the_published_events_and_stops_after_count(
        broker: Broker, devices: list[Device], tmp_path: Path) -> None:
    tail = Process("events", "tail", *tls(broker), "--device", "screen-a", "--json", "--count", "3")
    try:
        wait_for(lambda: tail.said("following oivis/v1/screen-a/events"), 20, "tail to subscribe")
        device = Device(broker, tmp_path)
        devices.append(device)
        device.ticks(range(5))
        assert tail.finish() == 0, tail.err
    finally:
        tail.kill()
    lines = [json.loads(line) for line in tail.out]
    assert [(e["device"], e["seq"], e["type"]) for e in lines] == [
        ("screen-a", 1, "boot"), ("screen-a", 2, "tick"), ("screen-a", 3, "tick")]
    assert lines[1]["historical"] is False  # the boot event predates the connection, so it may be historical
    assert lines[1]["data"] == {"n": 0} and uuid.UUID(lines[1]["id"]) and lines[1]["ts"]


def test_an_event_line_marks_historical_replays() -> None:
    batch = EventBatch.parse(EVENTS, json.dumps({"device": "screen-a", "historical": True, "events": [
        {"id": str(uuid.uuid4()), "seq": 7, "ts": "2024-12-01T10:00:00.000+00:00", "type": "tick",
         "data": {"n": 1}}]}).encode())
    assert event_line(batch, batch.events[0], as_json=False) == (
        'screen-a #7 2024-12-01T10:00:00.000+00:00 tick {"n":1} (historical)')


def test_operator_tools_follow_a_custom_topic_prefix() -> None:
    from appliance.errors import ApplianceError
    from appliance.fleet.topics import Topics, check_template, device_of
    from appliance.ops.eventbatch import EventBatch, events_filter

    template = "acme/screens/{device_id}"
    assert events_filter(None, template) == "acme/screens/+/events"
    assert events_filter("lobby-2", template) == "acme/screens/lobby-2/events"
    assert Topics.for_device("+", template).reported == "acme/screens/+/state/reported"
    assert device_of("acme/screens/lobby-2/state/reported", template) == "lobby-2"
    assert device_of("oivis/v1/lobby-2/status", template) is None
    assert device_of("oivis/v1/lobby-2/status") == "lobby-2"
    batch = EventBatch.parse("acme/screens/lobby-2/events", b'{"device": "lobby-2", "historical": true, "events": []}',
                             template)
    assert (batch.device, batch.historical) == ("lobby-2", True)
    for broken in ("acme/{device_id}-x", "acme/screens", "{device_id}/{device_id}"):
        with pytest.raises(ApplianceError, match="must be one whole level"):
            check_template(broken)
