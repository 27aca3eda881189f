"""Publishing signed desired state to devices over MQTT, and finding the devices to publish to.

Without ``--devices FILE``, ``--site``/``--all`` target the devices that have a
retained ``oivis/v1/<id>/status`` on the broker (every device that ever connected,
online or not: the retained document waits for the ones that are away). A site is
the device-id prefix before a dash: ``mall-01`` holds ``mall-01-screen-3``.
Devices named one by one must have such a status too (``never_seen``), so a typo
is refused instead of publishing to a topic no device will ever read; every id an
operator names is checked against the one device-id pattern (``appliance.identity``).
With ``--db`` the devices come from ingest's device registry instead (complete for
any fleet size, where the broker's window is not).

``push_to`` is pipelined: it publishes without waiting, keeping at most
``MAX_IN_FLIGHT`` publishes unacknowledged (and never more than the broker's Receive
Maximum), collects the PUBACKs as they come, and names every device whose publish
was refused or not acknowledged within ``ACK_TIMEOUT_S``.
"""

from __future__ import annotations

import argparse
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.errors import ApplianceError
from appliance.fleet.connect_failure import TlsFiles, connack_refusal, connect_failure
from appliance.fleet.link import parse_broker
from appliance.fleet.topics import DEFAULT_PREFIX, Topics, check_template, device_of
from appliance.identity import check_device_id

CONNECT_TIMEOUT_S = 10.0
ACK_TIMEOUT_S = 10.0
#: Publishes of one push waiting for their PUBACK at most (bounded further by the broker's Receive Maximum).
MAX_IN_FLIGHT = 100
#: A push's progress line at most this often.
PROGRESS_EVERY_S = 1.0
#: A push to at most this many devices also says each acknowledged topic (larger ones only count).
NAMED_PROGRESS = 50

MessageHandler = Callable[[mqtt.MQTTMessage], None]


@dataclass(frozen=True)
class BrokerOptions:
    address: str
    tls: bool = True
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    prefix: str = DEFAULT_PREFIX

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, broker_required: bool = True) -> None:
        """The options every broker command takes (``from_arguments`` reads them back)."""
        parser.add_argument("--broker", required=broker_required, metavar="HOST:PORT")
        parser.add_argument("--no-tls", action="store_true", help="plain TCP (development brokers only)")
        parser.add_argument("--ca", type=Path, metavar="FILE", help="CA of the broker's certificate (default: system CAs)")
        parser.add_argument("--cert", type=Path, metavar="FILE", help="operator client certificate")
        parser.add_argument("--key-file", type=Path, metavar="FILE", help="operator client certificate's key")
        parser.add_argument("--topic-prefix", default=DEFAULT_PREFIX, metavar="TEMPLATE",
                            help=f"the devices' [fleet] topic_prefix (default {DEFAULT_PREFIX})")

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> BrokerOptions:
        return cls(args.broker, not args.no_tls, args.ca, args.cert, args.key_file, check_template(args.topic_prefix))


def identity_name(cert: Path) -> str | None:
    """The common name of the certificate in ``cert`` (who the broker takes the client for), or None."""
    try:
        names = x509.load_pem_x509_certificate(Path(cert).read_bytes()).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME)
    except (OSError, ValueError) as exc:
        raise ApplianceError(f"cannot read the certificate {cert}: {exc}") from exc
    return str(names[0].value) if names else None


def delivered_filter(topic_filter: str) -> str:
    """The filter the topics of delivered messages match: a shared subscription's without ``$share/GROUP/``
    (the broker delivers ``oivis/v1/x/events``, never ``$share/...``)."""
    if not topic_filter.startswith("$share/"):
        return topic_filter
    parts = topic_filter.split("/", 2)
    if len(parts) < 3 or not parts[1] or not parts[2]:
        raise ApplianceError(f"{topic_filter!r} is not a shared subscription ($share/GROUP/FILTER)")
    return parts[2]


class OperatorClient:
    """An operator's MQTT 5 connection that publishes with acknowledgements and reads retained topics.

    ``handlers`` (topic filter → callable, called on paho's thread) are in place before the
    connection and subscribed on every connect, so what a persistent session (a fixed
    ``client_id`` and ``session_expiry_s``) queued while away reaches them.  With
    ``manual_ack`` a received QoS 1 message is acknowledged only by ``ack``, and
    ``receive_maximum`` bounds how many the broker sends before those acknowledgements (the rest
    wait on the broker, not in this process); ``max_in_flight`` is how many of its own QoS 1 publishes
    it sends before their PUBACKs (paho's default otherwise, 20).  A shared subscription (``$share/GROUP/FILTER``)
    shares the messages of FILTER between the clients of GROUP; its handler gets them.
    """

    def __init__(self, options: BrokerOptions, handlers: Mapping[str, MessageHandler] | None = None,
                 client_id: str | None = None, session_expiry_s: int | None = None, manual_ack: bool = False,
                 receive_maximum: int | None = None, max_in_flight: int | None = None) -> None:
        self._address = options.address
        host, port = parse_broker(options.address)
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=client_id or f"oivis-ops-{uuid.uuid4().hex[:12]}",
                                   protocol=mqtt.MQTTv5, manual_ack=manual_ack)
        if max_in_flight is not None:
            self._client.max_inflight_messages_set(max_in_flight)
        self._tls = TlsFiles(options.ca, options.cert, options.key) if options.tls else None
        if self._tls is not None:
            self._client.tls_set_context(self._tls.context())
        self._condition = threading.Condition()
        self._connect_reason: Any = None
        self._closed: str | None = None
        self._last_error: str | None = None
        self._acks: dict[int, Any] = {}
        self.receive_maximum = 65535  # the broker's, from its CONNACK: publishes it takes before acknowledging
        self._retained: dict[str, bytes] = {}
        self._subscribed = threading.Event()
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_log = self._on_log
        self._client.on_publish = self._on_publish
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.on_message = self._on_message
        self._handlers = dict(handlers or {})
        for topic_filter, handler in self._handlers.items():
            self._client.message_callback_add(delivered_filter(topic_filter),
                                              lambda client, userdata, message, h=handler: h(message))
        properties = Properties(PacketTypes.CONNECT)
        if session_expiry_s is not None:
            properties.SessionExpiryInterval = session_expiry_s
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
        try:
            self._client.connect(host, port, keepalive=30, clean_start=session_expiry_s is None, properties=properties)
        except (OSError, ssl.SSLError) as exc:
            raise ApplianceError(self._failure(exc)) from exc
        self._client.loop_start()
        with self._condition:
            self._condition.wait_for(lambda: self._connect_reason is not None or self._closed is not None,
                                     CONNECT_TIMEOUT_S)
        if self._connect_reason is None or self._connect_reason.is_failure:
            self.close()
            raise ApplianceError(self._refusal())
        if self._handlers and not self._subscribed.wait(CONNECT_TIMEOUT_S):
            self.close()
            raise ApplianceError(f"{options.address} did not confirm the subscription to {', '.join(self._handlers)}")

    def _failure(self, error: BaseException | str | None) -> str:
        return connect_failure(self._address, error, self._tls).message

    def _refusal(self) -> str:
        """Why the connection did not come up: a CONNACK refusal, a close before it (TLS), or silence."""
        if self._connect_reason is not None:
            return connack_refusal(self._address, self._connect_reason,
                                   "check that the certificate's CN is an operator or service identity "
                                   "the broker's ACL names").message
        if self._closed is not None:
            return self._failure(self._closed or None)
        return (f"no answer from the broker {self._address} within {CONNECT_TIMEOUT_S:.0f} s "
                "(is HOST:PORT an MQTT broker?)")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure and self._handlers:
            client.subscribe([(topic_filter, 1) for topic_filter in self._handlers])
        with self._condition:
            self.receive_maximum = getattr(properties, "ReceiveMaximum", self.receive_maximum)
            self._connect_reason = reason
            self._condition.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        """A close before the CONNACK ends the wait at once, with what paho last logged as its cause."""
        with self._condition:
            if self._connect_reason is None and self._closed is None:
                self._closed = self._last_error or ""
                self._condition.notify_all()

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            with self._condition:
                self._last_error = text

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._condition:
            self._acks[mid] = reason
            self._condition.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.retain:
            with self._condition:
                self._retained[message.topic] = bytes(message.payload)

    def publish_retained(self, topic: str, payload: dict) -> None:
        """Publish at QoS 1, retained, and return once the broker acknowledged it."""
        self.publish(topic, payload, retain=True)

    def publish(self, topic: str, payload: dict, retain: bool = False, expiry_s: int | None = None) -> None:
        """Publish at QoS 1 (expiring after ``expiry_s`` when given) and return once the broker acknowledged it."""
        info = self._send(topic, payload, retain, expiry_s)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ApplianceError(f"cannot publish to {topic}: {mqtt.error_string(info.rc)}")
        with self._condition:
            self._condition.wait_for(lambda: info.mid in self._acks, ACK_TIMEOUT_S)
            reason = self._acks.pop(info.mid, None)
        if reason is None:
            raise ApplianceError(f"{self._address} did not acknowledge {topic} within {ACK_TIMEOUT_S:.0f} s")
        if reason.is_failure:
            raise ApplianceError(f"{self._address} refused {topic}: {reason}")

    def publish_nowait(self, topic: str, payload: dict, retain: bool = False) -> int | None:
        """Publish at QoS 1 without waiting: the message id to ask ``acknowledged`` about, or None when the
        client cannot send it now (not connected: paho would queue it unbounded until it is)."""
        if not self._client.is_connected():
            return None
        info = self._send(topic, payload, retain, None)
        return info.mid if info.rc == mqtt.MQTT_ERR_SUCCESS else None

    def is_connected(self) -> bool:
        """Connected now (paho reconnects by itself a client that was connected once)."""
        return self._client.is_connected()

    def acknowledged(self, mid: int) -> Any | None:
        """The broker's reason code for the publish ``mid`` once it acknowledged it (answered once), else None."""
        with self._condition:
            return self._acks.pop(mid, None)

    def wait_acknowledgements(self, timeout: float) -> None:
        """Return once an acknowledgement not yet asked about is in, or after ``timeout``."""
        with self._condition:
            self._condition.wait_for(lambda: bool(self._acks), timeout)

    def in_flight_bound(self, wanted: int) -> int:
        """How many publishes may wait for their PUBACK at once: ``wanted``, within the broker's Receive
        Maximum and this client's ``max_in_flight``."""
        return max(1, min(wanted, self.receive_maximum, self._client.max_inflight_messages))

    def _send(self, topic: str, payload: dict, retain: bool, expiry_s: int | None) -> mqtt.MQTTMessageInfo:
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        properties = Properties(PacketTypes.PUBLISH)
        if expiry_s is not None:
            properties.MessageExpiryInterval = expiry_s
        return self._client.publish(topic, data, qos=1, retain=retain, properties=properties)

    def retained(self, topic_filter: str, window_s: float) -> dict[str, bytes]:
        """The retained messages matching ``topic_filter``, collected for ``window_s`` after subscribing."""
        self._subscribed.clear()
        self._client.subscribe(topic_filter, qos=1)
        if not self._subscribed.wait(CONNECT_TIMEOUT_S):
            raise ApplianceError(f"{self._address} did not confirm the subscription to {topic_filter}")
        time.sleep(window_s)
        with self._condition:
            return dict(self._retained)

    def ack(self, message: mqtt.MQTTMessage) -> None:
        """Acknowledge a message received with ``manual_ack``: the broker forgets it only now."""
        self._client.ack(message.mid, message.qos)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def discover_devices(client: OperatorClient, window_s: float, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Ids of the devices with a retained status on the broker."""
    found = client.retained(Topics.for_device("+", prefix).status, window_s)
    return sorted(device for topic, payload in found.items() if payload and (device := device_of(topic, prefix)))


def never_seen(client: OperatorClient, device_ids: list[str], window_s: float, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The ids of ``device_ids`` that have no retained status on the broker: never connected, or mistyped."""
    known = set(discover_devices(client, window_s, prefix))
    return [device for device in device_ids if device not in known]


def read_device_list(path: Path) -> list[str]:
    """One device id per line; blank lines and ``#`` comments ignored; every id checked (naming its line)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ApplianceError(f"cannot read the device list {path}: {exc}") from exc
    return [check_device_id(line.split("#", 1)[0].strip(), f"{path} line {number}")
            for number, line in enumerate(lines, 1) if line.split("#", 1)[0].strip()]


@dataclass
class Pushed:
    """What a push got: the devices whose publish the broker acknowledged, and the others with why."""

    acknowledged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def push_to(client: OperatorClient, device_ids: list[str], document: dict,
            progress: Callable[[str], None] = lambda line: None, prefix: str = DEFAULT_PREFIX,
            in_flight: int = MAX_IN_FLIGHT, clock: Callable[[], float] = time.monotonic) -> Pushed:
    """Publish ``document`` as each device's retained desired state, pipelined (see the module's docstring)."""
    for device in device_ids:
        check_device_id(device, "device to push to")
    bound = client.in_flight_bound(in_flight)
    version, total = document["version"], len(device_ids)
    pushed = Pushed()
    waiting: dict[int, tuple[str, float]] = {}  # mid → device, sent at
    queue = iter(device_ids)
    more = True
    reported = clock()
    while more or waiting:
        while more and len(waiting) < bound:
            device = next(queue, None)
            if device is None:
                more = False
                break
            mid = client.publish_nowait(Topics.for_device(device, prefix).desired, document, retain=True)
            if mid is None:
                pushed.failed[device] = "not sent (the connection to the broker is down)"
            else:
                waiting[mid] = (device, clock())
        client.wait_acknowledgements(0.1)
        now = clock()
        for mid, (device, sent_at) in list(waiting.items()):
            reason = client.acknowledged(mid)
            if reason is None and now - sent_at < ACK_TIMEOUT_S:
                continue
            del waiting[mid]
            if reason is None:
                pushed.failed[device] = f"not acknowledged within {ACK_TIMEOUT_S:.0f} s"
            elif reason.is_failure:
                pushed.failed[device] = f"refused ({reason})"
            else:
                pushed.acknowledged.append(device)
                if total <= NAMED_PROGRESS:
                    progress(f"published version {version} to {Topics.for_device(device, prefix).desired}")
        if now - reported >= PROGRESS_EVERY_S or not (more or waiting):
            reported = now
            progress(f"version {version}: {len(pushed.acknowledged)} of {total} devices acknowledged, "
                     f"{len(waiting)} in flight (at most {bound}), {len(pushed.failed)} failed")
    return pushed
