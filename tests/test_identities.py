"""Who may be whom on the broker (the shipped provisioning/mosquitto config, real TLS): a device's client
id is its certificate's CN whatever it asks for, and devices cannot reach the operators' listener.

Before the identities were bound, a device certificate connecting as another device's client id kept
kicking that device off, and one connecting as ingest's id with clean start deleted ingest's persistent
session and every event queued in it.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from broker import (  # noqa: F401 - fixtures
    Broker,
    Identity,
    broker_fixture,
    operator_fixture,
    pki_fixture,
    wait_for,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.fleet.link import Link

DEVICE = "mall-01-screen-3"
OTHER = "mall-02-screen-1"
INGEST_ID = "oivis-ingest"


class Client:
    """A raw MQTT 5 client with a chosen identity, port and client id, recording what happens to it."""

    def __init__(self, identity: Identity, port: int, client_id: str, clean_start: bool = True,
                 session_expiry_s: int | None = None) -> None:
        self.connects: list[tuple[bool, Any]] = []
        self.disconnects: list[Any] = []
        self.messages: list[mqtt.MQTTMessage] = []
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(identity.ca), certfile=str(identity.cert), keyfile=str(identity.key),
                            cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda client, userdata, flags, reason, properties: self.disconnects.append(reason)
        self.client.on_message = lambda client, userdata, message: self.messages.append(message)
        properties = Properties(PacketTypes.CONNECT)
        if session_expiry_s is not None:
            properties.SessionExpiryInterval = session_expiry_s
        self.client.connect_async("127.0.0.1", port, keepalive=5, clean_start=clean_start, properties=properties)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connects.append((flags.session_present, reason))
        if not reason.is_failure:
            self.connected.set()

    def subscribe(self, topic: str) -> None:
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.subscribe(topic, qos=1)
        assert subscribed.wait(5), f"no SUBACK for {topic}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.close()


def test_a_device_asking_for_another_devices_client_id_does_not_take_its_session(
        broker: Broker, clients: list[Client], tmp_path: Path) -> None:
    device = Link(DEVICE, broker.fleet_config(broker.pki.client(DEVICE)), tmp_path / "device").start()
    try:
        assert device.wait_connected(10), device.problem
        impostor = Client(broker.pki.client(OTHER), broker.port, client_id=DEVICE)
        clients.append(impostor)
        assert impostor.connected.wait(10), "the impostor's own certificate is a valid device"
        time.sleep(1.5)   # a takeover disconnects the device at once, and paho's reconnect kicks back
        assert device.connected and device.session == 1, "the real device was kicked off"
        assert impostor.disconnects == [] and len(impostor.connects) == 1
        assert f"as {OTHER} " in broker.log_text(), "the broker did not force the client id to the certificate's CN"
    finally:
        device.stop(timeout=2)


def test_a_device_asking_for_ingests_client_id_leaves_ingests_queued_events_alone(
        broker: Broker, clients: list[Client], tmp_path: Path) -> None:
    ingest_identity = broker.pki.service("ingest")
    ingest = Client(ingest_identity, broker.operator_port, INGEST_ID, clean_start=False, session_expiry_s=300)
    assert ingest.connected.wait(10), ingest.connects
    ingest.subscribe("oivis/v1/+/events")
    ingest.close()                        # ingest is down: the broker queues events for its session

    publisher = Client(broker.pki.client(DEVICE), broker.port, DEVICE)
    clients.append(publisher)
    assert publisher.connected.wait(10)
    batch = {"device": DEVICE, "historical": False, "events": [{"id": "x", "seq": 1, "ts": "t", "type": "a"}]}
    publisher.client.publish(f"oivis/v1/{DEVICE}/events", json.dumps(batch), qos=1).wait_for_publish(5)

    impostor = Client(broker.pki.client(OTHER), broker.port, INGEST_ID, clean_start=True)
    clients.append(impostor)
    assert impostor.connected.wait(10)
    impostor.close()

    back = Client(ingest_identity, broker.operator_port, INGEST_ID, clean_start=False, session_expiry_s=300)
    clients.append(back)
    assert back.connected.wait(10)
    assert back.connects[0][0], "ingest's persistent session was deleted"
    wait_for(lambda: back.messages, what="the event queued for ingest while it was down")
    assert json.loads(back.messages[0].payload) == batch


def test_a_device_certificate_cannot_reach_the_operators_listener(broker: Broker, clients: list[Client]) -> None:
    impostor = Client(broker.pki.client(OTHER), broker.operator_port, INGEST_ID)
    clients.append(impostor)
    assert not impostor.connected.wait(3)
    assert "certificate" in broker.log_text().lower() or impostor.disconnects


def test_ingest_may_read_events_but_not_publish_campaigns(broker: Broker, clients: list[Client]) -> None:
    ingest = Client(broker.pki.service("ingest"), broker.operator_port, INGEST_ID)
    clients.append(ingest)
    assert ingest.connected.wait(10)
    info = ingest.client.publish(f"oivis/v1/{DEVICE}/state/desired", "{}", qos=1)
    info.wait_for_publish(5)
    operator = Client(broker.pki.service("operator"), broker.operator_port, "operator-check")
    clients.append(operator)
    assert operator.connected.wait(10)
    operator.subscribe(f"oivis/v1/{DEVICE}/state/desired")
    time.sleep(0.5)
    assert operator.messages == [], "ingest wrote a desired state"
