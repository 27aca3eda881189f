"""The device's MQTT 5 connection to the fleet broker: presence, publishing with acknowledgements, dispatch.

paho's network thread owns the socket, the reconnects (with doubling backoff) and
every callback; nothing here runs on the render loop and nothing the kiosk
calls waits for the network.  Presence follows the contract on ``{p}/status``:
the broker holds a ``lost`` will with a Will Delay Interval, so a drop shorter
than the delay publishes nothing; each successful connect publishes a retained
``ready`` with a session number that increases forever; a clean stop publishes
``offline`` and waits for its PUBACK before disconnecting (which discards the
will).  A connection is ``connected`` only after a CONNACK that says so: a
refusal (certificate, ACL) is a state of its own, logged once with the reason.

Nothing that arrives is acknowledged before it is handled.  The session is
persistent, so the broker hands over what it queued for the device right after
the CONNACK: every handler is registered before ``start``, and a message is
acknowledged (PUBACK) when its handler returns — or, for a handler that takes
the acknowledgement on itself (commands), when it calls ``Incoming.acknowledge``
after doing the work.  Until then the broker counts the message as in flight and
sends it again on the next connection; the CONNECT's Receive Maximum caps how
many it sends unacknowledged, so the rest wait on the broker, not in memory here.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from appliance import __version__, boundedjson
from appliance.alerts import Alerts
from appliance.config import FleetConfig
from appliance.errors import ApplianceError
from appliance.fleet.connect_failure import TlsFiles, connack_refusal, connect_failure
from appliance.fleet.counter import PersistentCounter
from appliance.fleet.topics import Topics

log = logging.getLogger(__name__)

LinkState = Literal["idle", "connecting", "connected", "disconnected", "refused", "unreachable", "stopped"]

#: Receive Maximum sent in the CONNECT: QoS 1 messages the broker may have in flight to the device, unacknowledged.
RECEIVE_MAXIMUM = 16


def parse_broker(address: str) -> tuple[str, int]:
    """``host:port`` (the last colon splits, so an IPv6 host works) → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ApplianceError(f"[fleet] broker = {address!r} is not host:port")
    return host, int(port)


def _nothing() -> None:
    """The acknowledgement of a message that needs none (QoS 0, or one made up by a test)."""


@dataclass(frozen=True)
class Incoming:
    """A message from the fleet, as a handler receives it.

    ``retain`` is the flag as published for subscriptions made with ``retain_as_published``
    (else only messages sent at subscribe time carry it); ``acknowledge()`` sends the PUBACK
    for handlers subscribed with ``acknowledges=True``.
    """

    topic: str
    payload: bytes
    retain: bool
    properties: Properties | None = None
    acknowledge: Callable[[], None] = field(default=_nothing, repr=False, compare=False)
    received_at: float = field(default_factory=time.monotonic, compare=False)

    def json(self, max_bytes: int, max_depth: int = boundedjson.DEFAULT_MAX_DEPTH) -> dict[str, Any]:
        """The payload as a JSON object; TooBig over ``max_bytes`` or ``max_depth``, ApplianceError if not one."""
        return boundedjson.loads_object(self.payload, f"message on {self.topic}", max_bytes, max_depth)

    @property
    def expired(self) -> bool:
        """Past the Message Expiry Interval it came with (counted from its arrival): it was held too long."""
        expiry = getattr(self.properties, "MessageExpiryInterval", None)
        return expiry is not None and time.monotonic() - self.received_at > expiry


Handler = Callable[[Incoming], None]


class Delivery:
    """What became of one publish: resolved by the PUBACK (QoS 1) or the socket write (QoS 0).

    A QoS 1 message published while the link is down is kept by paho and sent on
    reconnect, so its delivery stays pending rather than failing.
    """

    def __init__(self, mid: int) -> None:
        self.mid = mid
        self.ok = False
        self.reason: str | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Delivery], None]] = []

    def resolve(self, ok: bool, reason: str) -> None:
        with self._lock:
            self.ok, self.reason = ok, reason
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def on_done(self, callback: Callable[[Delivery], None]) -> None:
        """Call ``callback(self)`` once resolved (at once if it already is), on the resolving thread."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        """True when resolved within ``timeout`` (successfully or not: see ``ok``)."""
        return self._done.wait(timeout)


class Link:
    """One device's connection.  Thread-safe; ``start`` returns at once.

    ``state`` is idle → connecting → connected, or disconnected (lost, paho
    reconnects), unreachable (no TCP/TLS session), refused (certificate or ACL:
    retried, but a person has to act), stopped.  ``problem`` says why in one line
    for the health report and the doctor; None while connected.
    """

    def __init__(self, device_id: str, fleet: FleetConfig, state_dir: Path,
                 campaign_version: Callable[[], int | None] = lambda: None, app_version: str = __version__,
                 alerts: Alerts | None = None) -> None:
        if not fleet.broker:
            raise ApplianceError("the fleet link needs [fleet] broker = \"host:port\"")
        self.device_id = device_id
        self.topics = Topics.for_device(device_id, fleet.topic_prefix)
        self.address = fleet.broker
        self._host, self._port = parse_broker(fleet.broker)
        self.fleet = fleet
        self._campaign_version = campaign_version
        self._app_version = app_version
        self.alerts = alerts if alerts is not None else Alerts()
        self.alerts.subscribe(self._alerts_changed)
        self._counter = PersistentCounter(state_dir / "fleet" / "session")
        self._lock = threading.Lock()
        self._state: LinkState = "idle"
        self.problem: str | None = None
        self.session = self._counter.value
        self.connected_since: float | None = None
        self._connected = threading.Event()
        self._attempting = False
        self._last_error: str | None = None
        self._handlers: dict[str, SubscribeOptions] = {}
        self._connection = 0
        self._pending_subscriptions: dict[int, list[str]] = {}
        self._deliveries: dict[int, Delivery] = {}
        self._early: dict[int, tuple[bool, str]] = {}
        self._announcing = threading.Lock()
        self._tls = TlsFiles(fleet.ca_file, fleet.cert_file, fleet.key_file) if fleet.tls else None
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        if self._tls is not None:
            client.tls_set_context(self._tls.context())
        client.reconnect_delay_set(self.fleet.reconnect_min_s, self.fleet.reconnect_max_s)
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_unhandled
        client.on_log = self._on_log
        return client

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Link:
        if not self.fleet.tls:
            log.warning("fleet link to %s WITHOUT TLS: development only, never on a mall network", self.address)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.fleet.session_expiry_s
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client.connect_async(self._host, self._port, keepalive=self.fleet.keepalive_s,
                                   clean_start=False, properties=properties)
        self._client.loop_start()
        log.info("fleet link for %s to %s started (topics %s/…)", self.device_id, self.address, self.topics.prefix)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Say ``offline`` and wait for the broker to have it, then disconnect cleanly (the will is dropped)."""
        if self.connected:
            offline = self.announce("offline")
            if not offline.wait(timeout) or not offline.ok:
                log.warning("`offline` not acknowledged by %s (%s); disconnecting anyway", self.address,
                            offline.reason or "no PUBACK")
        with self._lock:
            self._state = "stopped"
            self._connected.clear()
        self._client.disconnect()
        self._client.loop_stop()
        log.info("fleet link stopped")

    @property
    def state(self) -> LinkState:
        with self._lock:
            return self._state

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, topic: str, payload: dict[str, Any], qos: int = 1, retain: bool = False,
                expiry_s: float | None = None) -> Delivery:
        """Queue ``payload`` as JSON; the returned Delivery resolves on PUBACK (QoS 1) or on send (QoS 0)."""
        try:
            data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            raise ApplianceError(f"payload for {topic} is not JSON-serialisable: {exc}") from exc
        properties = Properties(PacketTypes.PUBLISH)
        if expiry_s is not None:
            properties.MessageExpiryInterval = max(1, math.ceil(expiry_s))
        info = self._client.publish(topic, data, qos=qos, retain=retain, properties=properties)
        delivery = Delivery(info.mid)
        queued_offline = qos > 0 and info.rc == mqtt.MQTT_ERR_NO_CONN
        if info.rc != mqtt.MQTT_ERR_SUCCESS and not queued_offline:
            delivery.resolve(False, mqtt.error_string(info.rc))
            return delivery
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._deliveries[info.mid] = delivery
        if early is not None:
            delivery.resolve(*early)
        return delivery

    def forget(self, delivery: Delivery) -> None:
        """Stop waiting for ``delivery``'s PUBACK (its message was given up on and sent again)."""
        with self._lock:
            if self._deliveries.get(delivery.mid) is delivery:
                del self._deliveries[delivery.mid]

    def announce(self, state: Literal["ready", "offline"]) -> Delivery:
        """Publish the retained status (the birth when ``ready``); also to re-announce a new campaign version
        or a change of the alerts.  ``ready`` goes out as ``alert`` while any alert is up."""
        with self._announcing:  # the snapshot and its publish in one go: the newest status is queued last
            return self.publish(self.topics.status, self._status(state), qos=1, retain=True)

    def _status(self, state: str, session: int | None = None) -> dict[str, Any]:
        alerts = self.alerts.wire()
        if state == "ready" and alerts:
            state = "alert"
        return {"state": state, "session": self.session if session is None else session,
                "app": self._app_version, "campaign_version": self._current_campaign(), "alerts": alerts}

    def _alerts_changed(self) -> None:
        """A new or cleared alert is announced at once when the link is up (the next birth carries it otherwise)."""
        if self.connected:
            self.announce("ready")

    def _current_campaign(self) -> int | None:
        try:
            return self._campaign_version()
        except Exception:  # noqa: BLE001 - a broken provider must not take the network thread down
            log.exception("campaign version provider failed; status goes out without it")
            return None

    # -- subscriptions ---------------------------------------------------------------------------

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1, *, retain_as_published: bool = False,
                  acknowledges: bool = False) -> None:
        """Call ``handler`` (on the network thread: be quick or hand off) for each message matching the filter.

        Register before ``start``: the broker sends what it kept for the session right after the
        CONNACK.  The message is acknowledged when ``handler`` returns, unless ``acknowledges``:
        then the handler calls ``message.acknowledge()`` once it has done the work (until then the
        broker redelivers it on the next connection).  ``retain_as_published`` keeps the retain
        flag on live messages.  Subscriptions are made again on every connect, whether or not the
        broker kept the session.
        """
        def dispatch(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            incoming = Incoming(message.topic, bytes(message.payload), bool(message.retain),
                                getattr(message, "properties", None), self._acknowledger(message))
            taken = False
            try:
                handler(incoming)
                taken = acknowledges
            except Exception:  # noqa: BLE001 - one bad handler must not stop the network thread
                log.exception("handler for %s failed on a message on %s", topic_filter, message.topic)
            finally:
                if not taken:
                    incoming.acknowledge()

        with self._lock:
            self._handlers[topic_filter] = SubscribeOptions(qos=qos, retainAsPublished=retain_as_published)
        self._client.message_callback_add(topic_filter, dispatch)
        if self.connected:
            self._subscribe([topic_filter])

    def _acknowledger(self, message: mqtt.MQTTMessage) -> Callable[[], None]:
        """The PUBACK of ``message``, sent once, and only on the connection it came on: after a
        reconnect the broker has sent it again, and that copy is acknowledged when it is handled."""
        if message.qos == 0:
            return _nothing
        with self._lock:
            connection = self._connection
        sent = False

        def acknowledge() -> None:
            nonlocal sent
            with self._lock:
                due = not sent and connection == self._connection and self._client.is_connected()
                sent = True
            if due:
                self._client.ack(message.mid, message.qos)

        return acknowledge

    def _subscribe(self, filters: list[str]) -> None:
        with self._lock:
            wanted = [(topic, self._handlers[topic]) for topic in filters]
        if not wanted:
            return
        result, mid = self._client.subscribe(wanted)
        if result == mqtt.MQTT_ERR_SUCCESS and mid is not None:
            with self._lock:
                self._pending_subscriptions[mid] = filters

    # -- paho callbacks (network thread) -------------------------------------------------------

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        """Arm the will for the session this attempt would open: ``lost`` after the will delay."""
        with self._lock:
            if self._state in ("idle", "disconnected"):
                self._state = "connecting"
            self._attempting = True
            self._last_error = None
        properties = Properties(PacketTypes.WILLMESSAGE)
        properties.WillDelayInterval = self.fleet.will_delay_s
        will = json.dumps(self._status("lost", session=self._counter.value + 1), separators=(",", ":"))
        client.will_set(self.topics.status, will, qos=1, retain=True, properties=properties)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode,
                    properties: Properties | None) -> None:
        with self._lock:
            self._attempting = False
        if reason.is_failure:
            failure = connack_refusal(self.address, reason, f"check this device's certificate and that the "
                                                            f"broker's ACL lets {self.device_id} use {self.topics.prefix}/")
            self._trouble(failure.kind, failure.message)
            return
        session = self._counter.increment()
        with self._lock:
            self._connection += 1
            self.session = session
            self.connected_since = time.monotonic()
            self.problem = None
            filters = list(self._handlers)
        log.info("fleet link: %s accepted the connection, session %d (broker kept the session: %s)",
                 self.address, session, flags.session_present)
        self.announce("ready").on_done(self._on_birth)
        self._subscribe(filters)

    def _on_birth(self, delivery: Delivery) -> None:
        """The link counts as connected once the broker has taken the birth: a connection whose status
        publishes the ACL refuses is as good as refused, and events sent on it would vanish."""
        if not delivery.ok:
            self._trouble("refused", f"the broker {self.address} refuses this device's publishes on "
                                     f"{self.topics.status} ({delivery.reason}): its ACL does not let the "
                                     f"certificate use {self.topics.prefix}/")
            # An ACL fixed on the broker does not drop the connection: ask again, so the device
            # comes up without a restart once it is allowed.
            retry = threading.Timer(self.fleet.reconnect_max_s, self._retry_birth)
            retry.daemon = True
            retry.start()
            return
        with self._lock:
            if self._state == "stopped":
                return
            self._state = "connected"
        self._connected.set()
        log.info("fleet link connected to %s as %s, session %d", self.address, self.device_id, self.session)

    def _retry_birth(self) -> None:
        with self._lock:
            waiting = self._state == "refused" and self._client.is_connected()
        if waiting:
            self.announce("ready").on_done(self._on_birth)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        """paho calls this inside its ``except OSError``: the exception at hand is the reason."""
        error = sys.exc_info()[1]
        with self._lock:
            self._attempting = False
        failure = connect_failure(self.address, error, self._tls)
        self._trouble(failure.kind, failure.message)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode,
                       properties: Properties | None) -> None:
        with self._lock:
            state, attempting, last_error = self._state, self._attempting, self._last_error
            self._attempting = False
        self._connected.clear()
        if state == "stopped":
            return
        if attempting:
            failure = connect_failure(self.address, last_error or str(reason), self._tls)
            self._trouble(failure.kind, failure.message)
        elif state != "refused":
            self._trouble("disconnected", f"connection to {self.address} lost ({reason}); reconnecting")

    def _trouble(self, state: LinkState, problem: str) -> None:
        """Record why the link is not up; log each distinct reason once, not on every retry."""
        with self._lock:
            if self._state == "stopped":
                return
            repeated = problem == self.problem
            self._state, self.problem = state, problem
        self._connected.clear()
        if not repeated:
            (log.error if state == "refused" else log.warning)("fleet link: %s", problem)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode,
                    properties: Properties | None) -> None:
        outcome = (not reason.is_failure, str(reason))
        with self._lock:
            delivery = self._deliveries.pop(mid, None)
            if delivery is None:
                self._early[mid] = outcome
        if delivery is not None:
            delivery.resolve(*outcome)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode],
                      properties: Properties | None) -> None:
        with self._lock:
            filters = self._pending_subscriptions.pop(mid, [])
        for topic_filter, reason in zip(filters, reasons, strict=False):
            if reason.is_failure:
                problem = f"the broker refused the subscription to {topic_filter}: {reason}"
                log.error("fleet link: %s", problem)
                with self._lock:
                    self.problem = problem

    def _on_unhandled(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """A topic no handler covers (a subscription the broker kept from an older version): nobody here
        will ever handle it, so it is acknowledged, or it would hold one of the Receive Maximum slots."""
        log.warning("message on %s dropped: this device has no handler for it", message.topic)
        self._acknowledger(message)()

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        if level == mqtt.MQTT_LOG_ERR:
            with self._lock:
                self._last_error = text
        log.debug("paho: %s", text)
