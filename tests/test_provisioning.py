"""`make ca` / `make provision`: a CSR-signed device identity that a require_certificate mosquitto accepts,
a second run that refuses without FORCE=1, and the bundle's config and keys; `make flash` on a loop device."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from broker import MOSQUITTO, Broker, Identity
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from appliance.config import load_config
from appliance.doctor import PASS, check_broker
from appliance.errors import ApplianceError
from appliance.tomlfile import InvalidFile
from appliance.tools.flash import System, flash, refusal
from appliance.tools.provision import create_ca, request_identity, server_request, service_identity, sign_request

REPO = Path(__file__).resolve().parents[1]


def make(*args: str) -> subprocess.CompletedProcess:
    """The technician's make targets, whether or not the Makefile includes technician.mk yet."""
    included = "include provisioning/technician.mk" in (REPO / "Makefile").read_text()
    files = [] if included else ["-f", "Makefile", "-f", "provisioning/technician.mk"]
    return subprocess.run(["make", "--no-print-directory", *files, *args], cwd=REPO, capture_output=True, text=True)


@pytest.fixture
def operator_keys(tmp_path: Path) -> Path:
    keys = tmp_path / "operator-keys"
    keys.mkdir()
    public = Ed25519PrivateKey.generate().public_key()
    (keys / "operator.pub").write_bytes(public.public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    return keys


def provision(tmp_path: Path, keys: Path, *extra: str) -> subprocess.CompletedProcess:
    return make("provision", f"CA_DIR={tmp_path / 'ca'}", f"KEYS_DIR={keys}", f"DEVICES_DIR={tmp_path / 'devices'}",
                "DEVICE_ID=mall-01-screen-3", "SITE=mall-01", "BROKER=127.0.0.1:8883", *extra)


def test_make_provision_builds_a_signed_bundle_and_refuses_to_overwrite_it(tmp_path: Path,
                                                                          operator_keys: Path) -> None:
    first = provision(tmp_path, operator_keys)
    assert first.returncode == 0, first.stdout + first.stderr
    bundle = tmp_path / "devices/mall-01-screen-3"
    assert sorted(str(path.relative_to(bundle)) for path in bundle.rglob("*") if path.is_file()) == [
        "appliance.toml", "device.csr", "keys/operator.pub", "tls/ca.pem", "tls/device.key", "tls/device.pem"]
    assert (bundle / "tls/device.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca/ca.key").stat().st_mode & 0o777 == 0o600

    ca = x509.load_pem_x509_certificate((bundle / "tls/ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((bundle / "tls/device.pem").read_bytes())
    key = serialization.load_pem_private_key((bundle / "tls/device.key").read_bytes(), None)
    cert.verify_directly_issued_by(ca)
    assert cert.public_key() == key.public_key()
    assert cert.subject.rfc4514_string() == "O=OIVIS Edge,OU=mall-01,CN=mall-01-screen-3"

    config = load_config(bundle / "appliance.toml", environ={})
    assert config.device_id == "mall-01-screen-3"
    assert config.source.uri == "camera:0"  # a device waits for its camera; the demo is for laptops
    assert config.fleet.broker == "127.0.0.1:8883" and config.fleet.tls
    assert config.fleet.key_file == Path("/etc/oivis/tls/device.key")
    assert config.campaigns.trusted_keys == ["/etc/oivis/keys/operator.pub"]
    assert config.paths.state_dir == Path("/var/lib/oivis")

    again = provision(tmp_path, operator_keys)
    assert again.returncode != 0
    assert "FORCE=1" in again.stderr
    assert (bundle / "tls/device.key").read_bytes() == key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    forced = provision(tmp_path, operator_keys, "FORCE=1")
    assert forced.returncode == 0, forced.stderr
    assert x509.load_pem_x509_certificate((bundle / "tls/device.pem").read_bytes()).public_key() != key.public_key()
    assert (tmp_path / "ca/ca.pem").read_bytes() == (bundle / "tls/ca.pem").read_bytes()  # the CA was kept


def test_a_private_key_among_the_operator_keys_is_refused(tmp_path: Path, operator_keys: Path) -> None:
    (operator_keys / "oops.pub").write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ApplianceError, match="PRIVATE key"):
        request_identity("site-d1", "site", "h:1", tmp_path / "d1", operator_keys)
    assert not (tmp_path / "d1").exists()


def test_missing_operator_keys_and_bad_ids_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ApplianceError, match="appliance.ops keygen"):
        request_identity("site-d1", "site", "h:1", tmp_path / "d1", tmp_path / "none")
    with pytest.raises(ApplianceError, match="DEVICE_ID"):
        request_identity("Mall/1#", "site", "h:1", tmp_path / "x", tmp_path)
    with pytest.raises(ApplianceError, match="BROKER"):
        request_identity("site-d1", "site", "no-port", tmp_path / "x", tmp_path)


@pytest.mark.parametrize("device_id", ["operator", "operator-x", "ingest-1", "console-a", "oivis-ingest", "d1"])
def test_reserved_or_siteless_names_are_never_issued_to_a_device(tmp_path: Path, operator_keys: Path,
                                                                 device_id: str) -> None:
    """Before: `provision request --device-id operator` then `sign` succeeded, and the ACL gave that name
    the whole tree.  The request, the CA's signature and the device's configuration all refuse it."""
    with pytest.raises(ApplianceError, match="DEVICE_ID"):
        request_identity(device_id, device_id.split("-")[0], "h:1", tmp_path / "x", operator_keys)
    ca_dir = tmp_path / "ca"
    create_ca(ca_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = tmp_path / "forged.csr"
    csr.write_bytes(x509.CertificateSigningRequestBuilder()
                    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
                    .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ApplianceError, match="CN"):
        sign_request(csr, ca_dir, tmp_path / "forged.pem")
    assert not (tmp_path / "forged.pem").exists()
    config = tmp_path / "appliance.toml"
    config.write_text(f'device_id = "{device_id}"\n')
    with pytest.raises(InvalidFile, match="device_id"):
        load_config(config, environ={})


def test_a_device_id_must_start_with_its_site(tmp_path: Path, operator_keys: Path) -> None:
    with pytest.raises(ApplianceError, match="does not start with its SITE"):
        request_identity("mall-01-screen-3", "mall-02", "h:1", tmp_path / "x", operator_keys)


def test_operator_and_service_identities_come_from_the_operators_ca(tmp_path: Path) -> None:
    create_ca(tmp_path / "operators-ca", "OIVIS operators CA")
    cert_path = service_identity("operator-alice", tmp_path / "operators-ca", tmp_path / "out")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "operator-alice"
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate((tmp_path / "operators-ca/ca.pem").read_bytes()))
    assert (tmp_path / "out/operator-alice.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ApplianceError, match="FORCE=1"):
        service_identity("operator-alice", tmp_path / "operators-ca", tmp_path / "out")
    with pytest.raises(ApplianceError, match="not an operator or service name"):
        service_identity("mall-01-screen-3", tmp_path / "operators-ca", tmp_path / "out")


def bundle_config(bundle: Path, broker: Broker):
    config = load_config(bundle / "appliance.toml", environ={})
    fleet = config.fleet.model_copy(update={"broker": broker.address, "ca_file": bundle / "tls/ca.pem",
                                            "cert_file": bundle / "tls/device.pem",
                                            "key_file": bundle / "tls/device.key"})
    return config.model_copy(update={"fleet": fleet})


def test_mosquitto_with_require_certificate_accepts_the_provisioned_device(tmp_path: Path,
                                                                          operator_keys: Path) -> None:
    """The shipped broker config (require_certificate, use_identity_as_username) with a server certificate
    from the same CA; the device connects with its bundle through doctor's broker check."""
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    ca_dir = tmp_path / "ca"
    create_ca(ca_dir)
    server_dir = tmp_path / "server"
    sign_request(server_request("localhost", server_dir), ca_dir, server_dir / "server.pem",
                 server_names=["localhost", "127.0.0.1"])
    bundle = tmp_path / "devices/mall-01-screen-3"
    sign_request(request_identity("mall-01-screen-3", "mall-01", "127.0.0.1:8883", bundle, operator_keys),
                 ca_dir, bundle / "tls/device.pem")
    (bundle / "tls/ca.pem").write_bytes((ca_dir / "ca.pem").read_bytes())
    create_ca(tmp_path / "operators-ca", "OIVIS operators CA")

    pki = SimpleNamespace(ca=ca_dir / "ca.pem", operators_ca=tmp_path / "operators-ca/ca.pem",
                          server=Identity(ca_dir / "ca.pem", server_dir / "server.pem", server_dir / "server.key"))
    broker = Broker(tmp_path / "broker", pki).start()
    try:
        accepted = check_broker(bundle_config(bundle, broker))
        assert accepted.status == PASS, accepted

        stranger_ca = tmp_path / "stranger-ca"
        create_ca(stranger_ca, name="Someone else's CA")
        sign_request(bundle / "device.csr", stranger_ca, bundle / "tls/device.pem")
        refused = check_broker(bundle_config(bundle, broker), timeout=3)
        assert refused.status != PASS and refused.fix, refused
    finally:
        broker.stop()
    assert "mall-01-screen-3" in broker.log_text()


def test_ca_is_kept_when_it_exists(tmp_path: Path) -> None:
    assert create_ca(tmp_path / "ca")
    before = (tmp_path / "ca/ca.pem").read_bytes()
    assert not create_ca(tmp_path / "ca")
    assert (tmp_path / "ca/ca.pem").read_bytes() == before
    assert os.stat(tmp_path / "ca/ca.key").st_mode & 0o777 == 0o600


# --- make flash: on a real loop device (root in this sandbox); the refusal logic also on fixtures.

@pytest.fixture
def loop_device(tmp_path: Path):
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("loop devices need root and losetup")
    backing = tmp_path / "card.img"
    with backing.open("wb") as card:
        card.truncate(8 << 20)
    attached = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True)
    if attached.returncode != 0:
        pytest.skip(f"no loop device in this sandbox: {attached.stderr.strip()}")
    device = Path(attached.stdout.strip())
    try:
        yield device
    finally:
        subprocess.run(["umount", str(device)], capture_output=True)
        subprocess.run(["losetup", "--detach", str(device)], check=True)


def test_flash_writes_and_verifies_a_raw_and_an_xz_image(tmp_path: Path, loop_device: Path) -> None:
    payload = os.urandom(3 << 20)
    raw = tmp_path / "os.img"
    raw.write_bytes(payload)
    packed = tmp_path / "os.img.xz"
    packed.write_bytes(lzma.compress(payload[::-1], preset=0))
    progress: list[str] = []
    assert flash(raw, loop_device, say=progress.append) == hashlib.sha256(payload).hexdigest()
    assert "verified" in "".join(progress)
    with loop_device.open("rb") as card:
        assert card.read(len(payload)) == payload
    assert flash(packed, loop_device, say=progress.append) == hashlib.sha256(payload[::-1]).hexdigest()


def test_flash_refuses_a_mounted_device(tmp_path: Path, loop_device: Path) -> None:
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed")
    subprocess.run(["mkfs.ext4", "-q", str(loop_device)], check=True)
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", str(loop_device), str(mountpoint)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount in this sandbox: {mounted.stderr.strip()}")
    image = tmp_path / "os.img"
    image.write_bytes(b"\0" * 4096)
    with pytest.raises(ApplianceError, match=f"mounted .*{mountpoint}"):
        flash(image, loop_device)
    result = make("flash", f"IMAGE={image}", f"DEVICE={loop_device}", "YES=1")
    assert result.returncode != 0 and "refusing to flash" in result.stderr
    assert (mountpoint / "lost+found").is_dir()  # the filesystem is untouched


def test_flash_refusals_from_mounts_swaps_and_root_fixtures(loop_device: Path) -> None:
    number = os.stat(loop_device).st_rdev
    free = System(mounts="proc /proc proc rw 0 0\n", swaps="Filename Type Size Used Priority\n")
    assert refusal(loop_device, free) is None
    as_mounted = System(mounts=f"{loop_device} /media/card\\040one ext4 rw 0 0\n", swaps=free.swaps)
    assert "mounted" in refusal(loop_device, as_mounted) and "/media/card one" in refusal(loop_device, as_mounted)
    as_swap = System(mounts=free.mounts, swaps=f"{free.swaps}{loop_device} partition 1024 0 -2\n")
    assert "swap" in refusal(loop_device, as_swap)
    as_root = System(mounts=free.mounts, swaps=free.swaps, root_device=number)
    assert "root filesystem" in refusal(loop_device, as_root)


def test_flash_refuses_what_is_not_a_block_device(tmp_path: Path) -> None:
    image = tmp_path / "os.img"
    image.write_bytes(b"\0" * 512)
    with pytest.raises(ApplianceError, match="not a block device"):
        flash(image, tmp_path / "os.img")
    with pytest.raises(ApplianceError, match="does not exist"):
        flash(tmp_path / "absent.img", Path("/dev/null"))
