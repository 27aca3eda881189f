"""A real mosquitto for the fleet tests: the package's throw-away broker and PKI, as pytest fixtures.

The broker, the PKI and the config rendering live in ``appliance.ops.testbroker``
(the load tool uses them too); this module re-exports them and adds what only
tests need: ``wait_for``, the recording ``Operator`` and the fixtures.  The
broker runs the shipped config on free ports of 127.0.0.1 and is always
stopped when the fixture ends.  Never the machine's broker on 1883.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.ops.testbroker import (  # noqa: F401 - re-exported for the test modules
    MOSQUITTO,
    OPERATOR,
    PROVISIONING,
    Authority,
    Broker,
    Identity,
    Pki,
    free_port,
    render_config,
)


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll until ``condition()`` is truthy and return it; fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


class Operator:
    """An operator's MQTT client (CN ``operator``) that records what it hears, by topic.

    Its session is persistent, so messages published while it is cut off (broker
    restart) are queued for it, like the fleet's ingest service.
    """

    def __init__(self, broker: Broker, subscriptions: tuple[str, ...] = ("oivis/#",),
                 client_id: str = "operator-test") -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._subscriptions = subscriptions
        identity = broker.pki.service(OPERATOR)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(identity.ca), certfile=str(identity.cert), keyfile=str(identity.key))
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 300
        self.client.connect_async(broker.host, broker.operator_port, keepalive=5, clean_start=False,
                                  properties=properties)
        self.client.loop_start()
        wait_for(self._subscribed.is_set, what="the operator's subscription")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(topic, 1) for topic in self._subscriptions])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def payloads(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.on(topic)]

    def events(self, topic: str) -> dict[int, tuple[dict[str, Any], bool]]:
        """Every event heard on ``topic`` by seq (duplicates collapse), with its batch's historical flag."""
        heard: dict[int, tuple[dict[str, Any], bool]] = {}
        for batch in self.payloads(topic):
            for event in batch["events"]:
                heard.setdefault(event["seq"], (event, batch["historical"]))
        return heard

    def publish(self, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        self.client.publish(topic, json.dumps(payload), qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# Test modules import these three by their function names; tests ask for them by fixture name.

@pytest.fixture(name="pki", scope="session")
def pki_fixture(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(name="broker")
def broker_fixture(tmp_path: Path, pki: Pki) -> Iterator[Broker]:
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    running = Broker(tmp_path / "broker", pki).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(name="operator")
def operator_fixture(broker: Broker) -> Iterator[Operator]:
    client = Operator(broker)
    try:
        yield client
    finally:
        client.close()


def python_env() -> dict[str, str]:
    """The environment for a device subprocess: this interpreter, the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env
