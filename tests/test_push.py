"""``campaign push`` against the shipped broker: named devices must exist, ids follow the one pattern, and an
operator command that cannot connect says why in one line (TLS refusal, unreachable, CONNACK refusal)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import (  # noqa: F401 - fixtures
    Authority,
    Broker,
    Identity,
    Operator,
    broker_fixture,
    free_port,
    operator_fixture,
    pki_fixture,
    wait_for,
)
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from test_campaigns_device import make_bundle

from appliance.fleet.link import Link
from appliance.fleet.topics import Topics
from appliance.ops.cli import main

DEVICE = "mall-01-screen-3"
GHOST = "mall-01-ghost"


@pytest.fixture
def campaign(tmp_path: Path) -> tuple[Path, Path]:
    """A campaign directory and the operator key that signs it."""
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 0
    return make_bundle(tmp_path / "campaign", "Push"), tmp_path / "keys" / "operator.key"


def push(campaign: tuple[Path, Path], *args: str | Path) -> list[str]:
    directory, key = campaign
    return ["campaign", "push", str(directory), "--version", "1", "--key", str(key),
            "--asset-base-url", "http://127.0.0.1:9", *map(str, args)]


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one ``error:`` line a failed command printed (the build's progress lines come before it)."""
    lines = capsys.readouterr().err.splitlines()
    assert lines and lines[-1].startswith("error: "), lines
    return lines[-1]


@pytest.fixture
def seen_device(broker: Broker, tmp_path: Path) -> Iterator[str]:
    """A device that connected once, so the broker holds its retained status."""
    link = Link(DEVICE, broker.fleet_config(broker.pki.client(DEVICE)), tmp_path / "device").start()
    try:
        assert link.wait_connected(10), link.problem
    finally:
        link.stop()
    yield DEVICE


def test_push_refuses_a_device_never_seen_naming_it_and_force_pushes_anyway(
        broker: Broker, operator: Operator, seen_device: str, campaign, capsys) -> None:
    wait_for(lambda: operator.on(Topics.for_device(seen_device).status), what="the device's retained status")
    ghost = Topics.for_device(GHOST).desired
    assert main(push(campaign, "--device", seen_device, "--device", GHOST, *broker.operator_options())) == 1
    line = error_line(capsys)
    assert f"never seen on {broker.operator_address}" in line and GHOST in line and seen_device not in line
    assert "--force" in line
    time.sleep(0.3)
    assert operator.on(Topics.for_device(seen_device).desired) == [] and operator.on(ghost) == []  # nothing went out

    assert main(push(campaign, "--device", seen_device, *broker.operator_options())) == 0
    assert main(push(campaign, "--device", GHOST, "--force", *broker.operator_options())) == 0
    wait_for(lambda: operator.on(ghost), what="the forced push")
    assert json.loads(operator.on(ghost)[0].payload)["version"] == 1


@pytest.mark.parametrize("device", ["ghost", "operator-1", "ingest-a", "Mall-01-x", "mall-01/x", "mall-01-+"])
def test_push_refuses_an_id_outside_the_device_id_pattern_before_connecting(campaign, capsys, device) -> None:
    started = time.monotonic()
    assert main(push(campaign, "--device", "mall-01-screen-1", "--device", device,
                     "--broker", f"127.0.0.1:{free_port()}")) == 1
    line = error_line(capsys)
    assert line.startswith(f"error: --device: {device!r}") and time.monotonic() - started < 5, line


def test_a_device_list_file_names_the_line_of_a_bad_id(campaign, capsys, tmp_path: Path) -> None:
    listed = tmp_path / "devices.txt"
    listed.write_text("# the mall\nmall-01-screen-1\n\nmall-01-screen-2  # entrance\nadmin-1\n")
    assert main(push(campaign, "--all", "--devices", listed, "--broker", f"127.0.0.1:{free_port()}", "--no-tls")) == 1
    line = error_line(capsys)
    assert f"{listed} line 5: 'admin-1' starts with 'admin'" in line, line


def certificate(authority: Authority, name: str, common_name: str | None = None, expired: bool = False) -> Identity:
    """A client certificate of ``authority`` that the fixtures do not hand out: expired, or without a CN."""
    return authority.issue(common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName(name)], authority.path,
                           expired=expired, file_name=f"{name}-{'expired' if expired else 'valid'}")


def tls_options(broker: Broker, identity: Identity | None) -> list[str]:
    files = ["--cert", str(identity.cert), "--key-file", str(identity.key)] if identity else []
    return ["--broker", broker.operator_address, "--ca", str(broker.pki.ca), *files]


CASES = {
    "no certificate": (lambda broker, tmp: None, "(tlsv13 alert certificate required): it requires a client "
                       "certificate and none was presented"),
    "a device certificate": (lambda broker, tmp: broker.pki.client(DEVICE),
                             "(tlsv1 alert unknown ca): it does not know the CA that issued the client certificate"),
    "another CA": (lambda broker, tmp: Authority(tmp / "rogue", "Rogue CA").issue(
        "operator", ExtendedKeyUsageOID.CLIENT_AUTH, [], broker.pki.ca), "(tlsv1 alert unknown ca)"),
    "an expired certificate": (lambda broker, tmp: certificate(broker.pki.operators, "operator",
                                                               "operator", expired=True),
                               "(sslv3 alert certificate expired): the client certificate"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["push", "fleet status"])
def test_an_operator_command_refused_by_tls_says_why_in_one_line(
        broker: Broker, campaign, capsys, tmp_path: Path, case: str, command: str) -> None:
    make, expected = CASES[case]
    identity = make(broker, tmp_path)
    argv = push(campaign, "--device", DEVICE) if command == "push" else ["fleet", "status"]
    started = time.monotonic()
    assert main([*argv, *tls_options(broker, identity)]) == 1
    line = error_line(capsys)
    assert f"error: the broker {broker.operator_address} refused the TLS connection " in line and expected in line
    assert "no answer" not in line and time.monotonic() - started < 8, line
    if identity is not None:
        assert str(identity.cert) in line


def test_a_broker_certificate_the_operator_does_not_trust_is_named(broker: Broker, campaign, capsys,
                                                                  tmp_path: Path) -> None:
    rogue = Authority(tmp_path / "rogue", "Rogue CA")
    identity = broker.pki.service()
    assert main([*push(campaign, "--device", DEVICE), "--broker", broker.operator_address, "--ca", str(rogue.path),
                 "--cert", str(identity.cert), "--key-file", str(identity.key)]) == 1
    assert f"presented a certificate that {rogue.path} does not vouch for" in error_line(capsys)


def test_a_closed_port_and_a_connack_refusal_are_named(broker: Broker, campaign, capsys, tmp_path: Path) -> None:
    identity = broker.pki.service()
    port = free_port()
    assert main([*push(campaign, "--device", DEVICE), *tls_options(broker, identity)[2:],
                 "--broker", f"127.0.0.1:{port}"]) == 1
    assert error_line(capsys) == f"error: cannot reach the broker 127.0.0.1:{port}: Connection refused"
    # use_identity_as_username: a certificate without a CN passes TLS and is refused in the CONNACK
    nameless = certificate(broker.pki.operators, "nameless")
    assert main([*push(campaign, "--device", DEVICE), *tls_options(broker, nameless)]) == 1
    line = error_line(capsys)
    assert line.startswith(f"error: the broker {broker.operator_address} refused the connection: ") and \
        "ACL" in line, line


@pytest.mark.parametrize("version", ["0", str(2**63), str(2**70)])
def test_push_refuses_a_version_every_device_would_reject(campaign, capsys, version: str) -> None:
    """Devices take versions from 1 to 2**63-1; signing and pushing anything else only gets it rejected."""
    args = push(campaign, "--device", "mall-01-screen-1", "--broker", f"127.0.0.1:{free_port()}")
    args[args.index("--version") + 1] = version
    assert main(args) == 1
    assert error_line(capsys).startswith(f"error: --version {version}: a version is a whole number from 1 to ")


def test_a_connection_closed_during_the_handshake_without_an_alert_is_the_network_not_the_certificate(
        broker: Broker) -> None:
    """A proxy or captive portal that accepts the TCP connection and closes it says nothing about the
    certificate: before, this read as the broker refusing the client certificate."""
    from appliance.fleet.connect_failure import TlsFiles, connect_failure

    closer = socket.socket()
    closer.bind(("127.0.0.1", 0))
    closer.listen(8)
    stop = threading.Event()

    def close_every_connection() -> None:
        while not stop.is_set():
            try:
                connection, _ = closer.accept()
            except OSError:
                return
            connection.close()

    thread = threading.Thread(target=close_every_connection, daemon=True)
    thread.start()
    identity = broker.pki.service("operator")
    address = f"127.0.0.1:{closer.getsockname()[1]}"
    try:
        failure = connect_failure(address, "EOF occurred in violation of protocol (_ssl.c:992)",
                                  TlsFiles(identity.ca, identity.cert, identity.key))
    finally:
        stop.set()
        closer.close()
    assert failure.kind == "unreachable"
    assert "closed during the TLS handshake without an alert" in failure.message
    assert "not the certificate" in failure.message
