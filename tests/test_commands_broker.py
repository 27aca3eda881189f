"""Commands across the device's absence: the whole fleet side (FleetRuntime) against the real broker.

The broker keeps a device's session (clean_start=False, its ``cmd/+`` subscription,
its queued QoS 1 messages) while it is away and hands the queue over right after
the CONNACK — before the kiosk is up.  These tests take the device through that:
a first start creates the session, the device goes away, the operator publishes
commands with an expiry, the device starts again and its kiosk attaches a while
later.  Waits are on conditions; the fixed waits prove something did NOT happen.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from broker import (  # noqa: F401 - fixtures
    Broker,
    Operator,
    broker_fixture,
    operator_fixture,
    pki_fixture,
    wait_for,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.config import Config, PathsConfig
from appliance.events import EventBus
from appliance.fleet.link import RECEIVE_MAXIMUM
from appliance.fleet.runtime import FleetRuntime
from appliance.stats import RateMeter, StageStats

DEVICE = "screen-a"
COMMANDS = f"oivis/v1/{DEVICE}/cmd"
REPLIES = f"oivis/v1/{DEVICE}/cmd-res"
#: Long enough for a message the broker hands over at connect to have reached a handler.
SETTLE_S = 1.5


@dataclass
class ScreenSide:
    """What FleetRuntime.attach takes from the kiosk, with the effects the commands have recorded."""

    events: EventBus = field(default_factory=EventBus)
    stats: StageStats = field(default_factory=StageStats)
    shown: RateMeter = field(default_factory=RateMeter)
    backend: str = "litert"
    reloads: int = 0
    stopped: list[int] = field(default_factory=list)

    def grab_screen(self) -> np.ndarray:
        return np.zeros((72, 128, 3), np.uint8)

    def request_reload(self) -> None:
        self.reloads += 1

    def stop(self, exit_status: int = 0) -> None:
        self.stopped.append(exit_status)


class Fleet:
    """Starts FleetRuntimes for one device the way ``kiosk_session`` does, and stops them all at the end."""

    def __init__(self, broker: Broker, tmp_path: Path) -> None:
        self.config = Config(device_id=DEVICE, fleet=broker.fleet_config(broker.pki.client(DEVICE)),
                             paths=PathsConfig(state_dir=tmp_path / "state"))
        self.config_path = tmp_path / "appliance.toml"
        self.running: list[FleetRuntime] = []

    def start(self) -> FleetRuntime:
        """The fleet side up (its link connects at once), the kiosk not attached yet."""
        runtime = FleetRuntime(self.config, self.config_path).start()
        self.running.append(runtime)
        assert runtime.link.wait_connected(10)
        return runtime

    def attach(self, runtime: FleetRuntime) -> ScreenSide:
        screen = ScreenSide()
        runtime.attach(screen)
        return screen

    def stop(self, runtime: FleetRuntime) -> None:
        self.running.remove(runtime)
        runtime.stop()

    def stop_all(self) -> None:
        for runtime in list(self.running):
            self.stop(runtime)


@pytest.fixture(name="fleet")
def fleet_fixture(broker: Broker, tmp_path: Path) -> Iterator[Fleet]:
    devices = Fleet(broker, tmp_path)
    try:
        yield devices
    finally:
        devices.stop_all()


def publish_command(operator: Operator, name: str, payload: dict, expiry_s: int = 60) -> None:
    """As ``appliance.ops command send`` publishes: QoS 1, not retained, with a message expiry."""
    properties = Properties(PacketTypes.PUBLISH)
    properties.MessageExpiryInterval = expiry_s
    operator.client.publish(f"{COMMANDS}/{name}", json.dumps(payload), qos=1,
                            properties=properties).wait_for_publish(5)


def replies(operator: Operator, cmd_id: str) -> list[dict]:
    return [reply for reply in operator.payloads(REPLIES) if reply.get("cmd_id") == cmd_id]


def away(fleet: Fleet) -> None:
    """The device has been here once (its session and subscription exist on the broker), and is gone."""
    first = fleet.start()
    fleet.attach(first)
    fleet.stop(first)


def test_a_command_sent_while_the_device_was_away_runs_once_after_it_comes_back(
        fleet: Fleet, operator: Operator) -> None:
    away(fleet)
    cmd_id = str(uuid.uuid4())
    publish_command(operator, "reload", {"cmd_id": cmd_id})

    runtime = fleet.start()
    time.sleep(SETTLE_S)  # the queue was handed over at connect; the kiosk is still loading its models
    screen = fleet.attach(runtime)
    assert wait_for(lambda: replies(operator, cmd_id), what="the reply") == [{"cmd_id": cmd_id, "ok": True}]
    assert screen.reloads == 1

    fleet.stop(runtime)
    again = fleet.start()
    later = fleet.attach(again)
    time.sleep(SETTLE_S)
    assert later.reloads == 0 and screen.reloads == 1
    assert len(replies(operator, cmd_id)) == 1


def test_commands_queued_while_away_all_run_in_order_none_refused_as_busy(fleet: Fleet, operator: Operator) -> None:
    """The broker sends at most Receive Maximum unacknowledged; the others wait on it, not in the device."""
    away(fleet)
    ids = [str(uuid.uuid4()) for _ in range(RECEIVE_MAXIMUM + 9)]
    for cmd_id in ids:
        publish_command(operator, "reload", {"cmd_id": cmd_id})

    runtime = fleet.start()
    wait_for(lambda: runtime.commands.waiting == RECEIVE_MAXIMUM, what="the first commands to arrive")
    time.sleep(SETTLE_S)
    assert runtime.commands.waiting == RECEIVE_MAXIMUM  # held, not acknowledged: the broker sends no more
    screen = fleet.attach(runtime)
    wait_for(lambda: all(replies(operator, cmd_id) for cmd_id in ids), what="every reply")
    answered = [reply["cmd_id"] for reply in operator.payloads(REPLIES)]
    assert answered == ids and screen.reloads == len(ids)


def test_a_command_held_when_the_device_stops_before_its_kiosk_is_up_runs_at_the_next_start(
        fleet: Fleet, operator: Operator) -> None:
    away(fleet)
    cmd_id = str(uuid.uuid4())
    publish_command(operator, "reload", {"cmd_id": cmd_id})
    runtime = fleet.start()
    wait_for(lambda: runtime.commands.waiting == 1, what="the command to arrive")
    fleet.stop(runtime)  # the kiosk never came up: the command was never acknowledged
    assert replies(operator, cmd_id) == []

    again = fleet.start()
    screen = fleet.attach(again)
    assert wait_for(lambda: replies(operator, cmd_id), what="the reply") == [{"cmd_id": cmd_id, "ok": True}]
    assert screen.reloads == 1


def test_a_command_that_expires_while_held_is_answered_not_run(fleet: Fleet, operator: Operator) -> None:
    away(fleet)
    cmd_id = str(uuid.uuid4())
    publish_command(operator, "reload", {"cmd_id": cmd_id}, expiry_s=2)
    runtime = fleet.start()
    wait_for(lambda: runtime.commands.waiting == 1, what="the command to arrive")
    time.sleep(2.5)
    screen = fleet.attach(runtime)
    reply = wait_for(lambda: replies(operator, cmd_id), what="the refusal")[0]
    assert reply["ok"] is False and "expired" in reply["error"] and screen.reloads == 0
