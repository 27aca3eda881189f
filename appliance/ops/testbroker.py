"""A throw-away mosquitto from the shipped fleet config, on 127.0.0.1: generated PKI, free ports, a directory.

Used by the tests (``tests/broker.py`` wraps it in fixtures) and by the load tool
(``ops fleet load``).  The broker runs from ``provisioning/mosquitto/fleet.conf``
with only its paths, ports and log destination replaced, so what runs is the
configuration that ships (mutual TLS, ``use_identity_as_username``, the ACL).
It listens on 127.0.0.1 only, never on the machine's 1883/8883; it can be killed
with SIGKILL and started again on the same ports with its persistence intact.
The PKI is two throw-away authorities as the shipped config expects them: the
fleet CA signs the broker and the devices, the operators' CA the operators and
services.  Development tooling: nothing on a device imports it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.config import FleetConfig

MOSQUITTO = Path("/usr/sbin/mosquitto")
PROVISIONING = Path(__file__).resolve().parents[2] / "provisioning" / "mosquitto"
OPERATOR = "operator"


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


def render_config(template: str, replacements: dict[str, str], log_all: bool = True) -> str:
    """``template`` with each line named in ``replacements`` (the whole line) swapped for its value.

    Every line to replace must be there (a changed shipped config fails here, loudly).
    With ``log_all`` everything is logged (else the shipped log types stay, as a load
    measurement needs), and a broker started as root stays root (mosquitto
    otherwise switches to the ``mosquitto`` user, who cannot read the test's files).
    """
    lines, used = [], set()
    for line in template.splitlines():
        if log_all and line.startswith("log_type"):
            continue
        if line.strip() in replacements:
            used.add(line.strip())
            line = replacements[line.strip()]
        lines.append(line)
    missing = set(replacements) - used
    if missing:
        raise RuntimeError(f"the shipped broker config no longer has the lines {sorted(missing)}")
    if log_all:
        lines.insert(0, "log_type all")
    if os.geteuid() == 0:
        lines.insert(0, "user root")
    return "\n".join(lines) + "\n"


class Broker:
    """One mosquitto process on 127.0.0.1:``port``, restartable with the same state."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, pki: Pki, overrides: dict[str, str] | None = None,
                 log_all: bool = True) -> None:
        """``overrides`` replaces more lines of the shipped config (whole line → new line), e.g. a tiny
        ``max_queued_messages`` to make the broker drop what it queues for a client that is away;
        ``log_all`` logs every packet (tests), else the shipped log types (load)."""
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
        }, log_all))
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

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 10.0) -> Broker:
        self._process = subprocess.Popen([str(MOSQUITTO), "-c", str(self.config)],  # its own session: a Ctrl+C or
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,  # a group's SIGTERM is
                                         start_new_session=True)  # for the owner, who stops the broker last
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
