"""A real mosquitto for the fleet tests: generated PKI, the shipped fleet config and ACL, a free port.

The broker runs from ``provisioning/mosquitto/fleet.conf`` with only its paths,
port and log destination replaced, so the tests exercise the configuration that
ships (mutual TLS, ``use_identity_as_username``, the ACL).  It can be killed
with SIGKILL and started again on the same port with its persistence intact,
and it is always stopped when the fixture ends.  Never the machine's broker on 1883.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from appliance.config import FleetConfig

MOSQUITTO = Path("/usr/sbin/mosquitto")
PROVISIONING = Path(__file__).resolve().parents[1] / "provisioning" / "mosquitto"
OPERATOR = "operator"


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


@dataclass(frozen=True)
class Identity:
    """The files a client presents: the CA it trusts, its certificate and key."""

    ca: Path
    cert: Path
    key: Path


class Authority:
    """One throw-away certificate authority: its certificate file and the certificates it issues."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self._cert = (
            _builder(subject, subject, self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.path = directory / "ca.pem"
        self.path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str | None, usage: x509.ObjectIdentifier, names: list[x509.GeneralName],
              trust: Path, expired: bool = False, file_name: str | None = None) -> Identity:
        """A certificate for ``common_name`` (None: a subject without one); ``trust`` is the CA file the holder
        verifies the broker with; ``expired`` makes one whose validity ended yesterday."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else
                            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "no common name")])
        cert = (_builder(subject, self._cert.subject, key.public_key(), expired)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .sign(self._key, hashes.SHA256()))
        name = file_name or common_name
        cert_file = self.directory / f"{name}.pem"
        key_file = self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return Identity(trust, cert_file, key_file)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any, expired: bool = False) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.timezone.utc)
    start, end = ((now - dt.timedelta(days=3), now - dt.timedelta(days=1)) if expired else
                  (now - dt.timedelta(minutes=5), now + dt.timedelta(days=2)))
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end))


class Pki:
    """The fleet's two authorities, as the shipped broker config expects them: the fleet CA signs the
    broker and the devices (``client``), the operators' CA signs operators and services (``service``)."""

    def __init__(self, directory: Path) -> None:
        self.fleet = Authority(directory / "fleet", "OIVIS test fleet CA")
        self.operators = Authority(directory / "operators", "OIVIS test operators CA")
        self.ca = self.fleet.path
        self.operators_ca = self.operators.path
        self.server = self.fleet.issue("server", ExtendedKeyUsageOID.SERVER_AUTH,
                                       [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                                       self.ca)

    def client(self, common_name: str) -> Identity:
        """A device certificate (fleet CA) whose CN is ``common_name``."""
        return self.fleet.issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName(common_name)], self.ca)

    def service(self, common_name: str = OPERATOR) -> Identity:
        """An operator's or a service's certificate (operators' CA) whose CN is ``common_name``."""
        return self.operators.issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName(common_name)],
                                    self.ca)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def render_config(template: str, replacements: dict[str, str]) -> str:
    """``template`` with each line named in ``replacements`` (the whole line) swapped for its value.

    Every line to replace must be there (a changed shipped config fails here, loudly).
    Everything is logged, and a broker started as root stays root (mosquitto
    otherwise switches to the ``mosquitto`` user, who cannot read the test's files).
    """
    lines, used = [], set()
    for line in template.splitlines():
        if line.startswith("log_type"):
            continue
        if line.strip() in replacements:
            used.add(line.strip())
            line = replacements[line.strip()]
        lines.append(line)
    missing = set(replacements) - used
    if missing:
        raise RuntimeError(f"the shipped broker config no longer has the lines {sorted(missing)}")
    lines.insert(0, "log_type all")
    if os.geteuid() == 0:
        lines.insert(0, "user root")
    return "\n".join(lines) + "\n"


class Broker:
    """One mosquitto process on 127.0.0.1:``port``, restartable with the same state."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, pki: Pki, overrides: dict[str, str] | None = None) -> None:
        """``overrides`` replaces more lines of the shipped config (whole line → new line), e.g. a tiny
        ``max_queued_messages`` to make the broker drop what it queues for a client that is away."""
        self.directory = directory
        self.pki = pki
        self.port = free_port()
        self.operator_port = free_port()
        self.log = directory / "mosquitto.log"
        state = directory / "state"
        state.mkdir(parents=True, exist_ok=True)
        acls = {}
        for name in ("devices.acl", "operators.acl"):
            acls[name] = directory / name
            shutil.copyfile(PROVISIONING / name, acls[name])
        self.config = directory / "mosquitto.conf"
        self.config.write_text(render_config((PROVISIONING / "fleet.conf").read_text(), {
            "listener 8883": f"listener {self.port} {self.host}",
            "listener 8884": f"listener {self.operator_port} {self.host}",
            "persistence_location /var/lib/mosquitto/": f"persistence_location {state}/",
            "cafile /etc/mosquitto/certs/ca.pem": f"cafile {pki.ca}",
            "cafile /etc/mosquitto/certs/operators-ca.pem": f"cafile {pki.operators_ca}",
            "certfile /etc/mosquitto/certs/server.pem": f"certfile {pki.server.cert}",
            "keyfile /etc/mosquitto/certs/server.key": f"keyfile {pki.server.key}",
            "acl_file /etc/mosquitto/devices.acl": f"acl_file {acls['devices.acl']}",
            "acl_file /etc/mosquitto/operators.acl": f"acl_file {acls['operators.acl']}",
            "log_dest syslog": f"log_dest file {self.log}",
            **(overrides or {}),
        }))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """The devices' listener."""
        return f"{self.host}:{self.port}"

    @property
    def operator_address(self) -> str:
        """The operators' and services' listener."""
        return f"{self.host}:{self.operator_port}"

    def operator_options(self, identity: Identity | None = None) -> list[str]:
        """The broker options of an operator command (``python -m appliance.ops``) for this broker."""
        identity = identity or self.pki.service(OPERATOR)
        return ["--broker", self.operator_address, "--ca", str(identity.ca), "--cert", str(identity.cert),
                "--key-file", str(identity.key)]

    def start(self, timeout: float = 10.0) -> Broker:
        self._process = subprocess.Popen([str(MOSQUITTO), "-c", str(self.config)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self._process.stderr.read().decode()}  log: {self.log_text()}")
            try:
                for port in (self.port, self.operator_port):
                    socket.create_connection((self.host, port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.address} within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final save of the persistence file."""
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=5)

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._process and self._process.stderr:
            self._process.stderr.close()

    def restart(self) -> Broker:
        self.kill()
        return self.start()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def fleet_config(self, identity: Identity, **overrides: Any) -> FleetConfig:
        """The device configuration for this broker, with the fast timings the tests need."""
        settings: dict[str, Any] = dict(
            broker=self.address, ca_file=identity.ca, cert_file=identity.cert, key_file=identity.key,
            keepalive_s=5, will_delay_s=1, session_expiry_s=60, reconnect_min_s=0.1, reconnect_max_s=0.5,
            health_period_s=0.5, ack_timeout_s=5.0)
        settings.update(overrides)
        return FleetConfig(**settings)


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
