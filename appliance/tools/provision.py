"""`make ca` / `make provision`: a development fleet CA, and each device's identity bundle by a CSR flow.

Three separate steps, so that a production CA only ever sees certificate
signing requests and never holds a device's key:

- ``ca``: a development CA (key + self-signed certificate); kept if it exists.  The fleet
  has two: the fleet CA signs the broker and the devices, the operators' CA signs operators
  and services (ingest, the console), which connect on the broker's second listener.
- ``request``: for one device, a key generated here *for* the device, its CSR
  (CN = device id, OU = site), the operators' campaign-signing public keys and
  the device's ``appliance.toml`` — the bundle, laid out like ``/etc/oivis``.
  An existing identity is never replaced without ``--force``.
- ``sign``: the CA turns a CSR into a certificate (client or, with
  ``--server``, a broker's).  Against a production PKI this is the step the
  PKI runs; the key stays in the bundle.
- ``service``: an operator's or a service's key and certificate from the
  operators' CA, made where the operator works (``operator-alice``, ``ingest``).

Device ids follow the one pattern of ``appliance.identity`` (``<site>-<screen>``, no
reserved service name), checked at the request and again when the CA signs, so the
CA never issues a device certificate that the broker's ACL would treat as a service.

Bundle (``provisioning/out/devices/<id>/``, installed to ``/etc/oivis`` by
``make install``): ``appliance.toml``, ``tls/ca.pem``, ``tls/device.pem``,
``tls/device.key`` (0600), ``keys/*.pub``, and ``device.csr`` (not installed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import shutil
import sys
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.atomicfile import SECRET_MODE, write_atomically
from appliance.campaigns.signing import parse_public_key
from appliance.config import load_config
from appliance.errors import ApplianceError, command_line
from appliance.fleet.link import parse_broker
from appliance.identity import check_device_id, check_service_name, in_site

#: Where the bundle's files land on the device; the generated config names these paths.
ETC = Path("/etc/oivis")
CA_DAYS = 3650
DEVICE_DAYS = 1825


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_pem(path: Path, what: str):
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ApplianceError(f"cannot read the {what} {path}: {exc}") from exc
    try:
        if what == "CA key":
            return serialization.load_pem_private_key(data, password=None)
        if what == "CSR":
            return x509.load_pem_x509_csr(data)
        return x509.load_pem_x509_certificate(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ApplianceError(f"{path} is not a PEM {what}: {exc}") from exc


def create_ca(directory: Path, name: str = "OIVIS development fleet CA", force: bool = False) -> bool:
    """``directory/ca.key`` and ``ca.pem``; False (nothing done) when a CA is there and not ``force``d:
    a new CA would orphan every device certificate the old one signed."""
    key_path, cert_path = directory / "ca.key", directory / "ca.pem"
    if key_path.exists() and cert_path.exists() and not force:
        return False
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OIVIS Edge")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA384()))
    write_atomically(key_path, _private_pem(key), mode=SECRET_MODE)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def check_operator_key(path: Path) -> None:
    """An operator's Ed25519 *public* key (as the device will parse it); a private key is refused."""
    text = path.read_text(encoding="ascii", errors="replace")
    if "PRIVATE" in text:
        raise ApplianceError(f"{path} holds a PRIVATE key: only operators' public keys go onto devices")
    parse_public_key(text, str(path))


def operator_keys(keys_dir: Path) -> list[Path]:
    keys = sorted(keys_dir.glob("*.pub")) if keys_dir.is_dir() else []
    if not keys:
        raise ApplianceError(
            f"no operator public keys (*.pub) in {keys_dir}: create them with "
            f"`python -m appliance.ops keygen --out {keys_dir}` or point KEYS_DIR at the operators' keys")
    for key in keys:
        check_operator_key(key)
    return keys


def check_broker(broker: str) -> None:
    try:
        parse_broker(broker)
    except ApplianceError:
        raise ApplianceError(f"BROKER {broker!r}: use HOST:PORT, e.g. mqtt.example.net:8883") from None


def config_text(device_id: str, site: str, broker: str, key_names: list[str]) -> str:
    """The device's /etc/oivis/appliance.toml.  JSON strings are valid TOML basic strings."""
    keys = ", ".join(json.dumps(str(ETC / "keys" / name)) for name in key_names)
    return (
        f"# OIVIS Edge device {device_id} at site {site}; written by `make provision`.\n"
        "# Every other key has a default: `python -m appliance config check FILE` lists problems.\n"
        f"device_id = {json.dumps(device_id)}\n\n"
        "# A screen in a mall waits for its camera (attract scene, retried) rather than showing a demo.\n"
        "[source]\nuri = \"camera:0\"\n\n"
        f"[fleet]\nbroker = {json.dumps(broker)}\ntls = true\n"
        f"ca_file = {json.dumps(str(ETC / 'tls/ca.pem'))}\n"
        f"cert_file = {json.dumps(str(ETC / 'tls/device.pem'))}\n"
        f"key_file = {json.dumps(str(ETC / 'tls/device.key'))}\n\n"
        f"[campaigns]\ntrusted_keys = [{keys}]\n\n"
        "[paths]\nstate_dir = \"/var/lib/oivis\"\n"
    )


def request_identity(device_id: str, site: str, broker: str, out: Path, keys_dir: Path,
                     force: bool = False) -> Path:
    """Write the device's bundle (key, CSR, operator keys, config) to ``out``; returns the CSR's path.

    Built beside ``out`` and moved into place at the end, so a failed run leaves nothing half-made.
    """
    check_device_id(device_id, "DEVICE_ID")
    if not site.strip():
        raise ApplianceError("SITE is empty: name the mall or site the device is installed at")
    if not in_site(device_id, site.strip()):
        raise ApplianceError(f"DEVICE_ID {device_id!r} does not start with its SITE {site.strip()!r} and a dash "
                             f"(e.g. {site.strip()}-screen-1): operators select a site's screens by that prefix")
    check_broker(broker)
    if (out / "tls/device.key").exists() and not force:
        raise ApplianceError(f"{out} already holds the identity of {device_id}; "
                             "FORCE=1 replaces it (the old certificate then stops being used)")
    keys = operator_keys(keys_dir)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    key = ec.generate_private_key(ec.SECP256R1())
    write_atomically(partial / "tls/device.key", _private_pem(key), mode=SECRET_MODE)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site.strip()),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OIVIS Edge")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    (partial / "device.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    (partial / "keys").mkdir()
    for public in keys:
        shutil.copy2(public, partial / "keys" / public.name)
    config = partial / "appliance.toml"
    config.write_text(config_text(device_id, site.strip(), broker, [public.name for public in keys]))
    load_config(config, environ={})  # what we wrote must pass the device's own validation
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return out / "device.csr"


def sign_request(csr_path: Path, ca_dir: Path, out: Path, days: int = DEVICE_DAYS,
                 server_names: list[str] | None = None, service: bool = False) -> x509.Certificate:
    """The CA's step: a certificate for the CSR's key and subject — a device's (client), a service's
    (client, ``service``: the name is checked as a service's) or, with ``server_names``, a broker's
    (server, with those DNS names / IP addresses)."""
    csr = _load_pem(csr_path, "CSR")
    if not csr.is_signature_valid:
        raise ApplianceError(f"{csr_path}: the CSR's signature does not verify (corrupt or tampered)")
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise ApplianceError(f"{csr_path}: the CSR has no common name")
    if service:
        check_service_name(str(names[0].value), f"{csr_path}: CN")
    elif server_names is None:
        check_device_id(str(names[0].value), f"{csr_path}: CN")
    ca_key = _load_pem(ca_dir / "ca.key", "CA key")
    ca_cert = _load_pem(ca_dir / "ca.pem", "CA certificate")
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if server_names:
        alternatives: list[x509.GeneralName] = []
        for name in server_names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        builder = (builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA384())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


def service_identity(name: str, ca_dir: Path, out: Path, days: int = DEVICE_DAYS, force: bool = False) -> Path:
    """An operator's or a service's key and certificate (CN ``name``) from the operators' CA in ``ca_dir``:
    ``out/<name>.key`` (0600) and ``out/<name>.pem``; returns the certificate's path."""
    check_service_name(name, "NAME")
    key_path, cert_path = out / f"{name}.key", out / f"{name}.pem"
    if key_path.exists() and not force:
        raise ApplianceError(f"{key_path} already exists; FORCE=1 replaces it (the old certificate stays valid "
                             "until it expires: remove its user stanza from operators.acl to shut it out)")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OIVIS Edge")]))
           .sign(key, hashes.SHA256()))
    request = out / f"{name}.csr"
    out.mkdir(parents=True, exist_ok=True)
    request.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    write_atomically(key_path, _private_pem(key), mode=SECRET_MODE)
    sign_request(request, ca_dir, cert_path, days, service=True)
    request.unlink()
    return cert_path


def server_request(name: str, out: Path) -> Path:
    """A broker's key and CSR (``out/server.key``, ``out/server.csr``), for a development broker."""
    key = ec.generate_private_key(ec.SECP256R1())
    write_atomically(out / "server.key", _private_pem(key), mode=SECRET_MODE)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])).sign(key, hashes.SHA256()))
    (out / "server.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return out / "server.csr"


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.tools.provision",
                                     description="fleet CA and device identities (CSR flow)")
    steps = parser.add_subparsers(dest="step", required=True)
    ca = steps.add_parser("ca", help="create a development CA: the fleet's or the operators' (kept when it exists)")
    ca.add_argument("--dir", type=Path, required=True)
    ca.add_argument("--name", default="OIVIS development fleet CA", help="the CA's common name")
    ca.add_argument("--force", action="store_true", help="replace an existing CA")
    request = steps.add_parser("request", help="a device's key, CSR, operator keys and config")
    request.add_argument("--device-id", required=True)
    request.add_argument("--site", required=True)
    request.add_argument("--broker", required=True, help="HOST:PORT of the fleet broker")
    request.add_argument("--out", type=Path, required=True, help="the device's bundle directory")
    request.add_argument("--keys-dir", type=Path, required=True, help="the operators' *.pub campaign-signing keys")
    request.add_argument("--force", action="store_true", help="replace an existing identity")
    sign = steps.add_parser("sign", help="the CA signs a CSR")
    sign.add_argument("--csr", type=Path, required=True)
    sign.add_argument("--ca-dir", type=Path, required=True)
    sign.add_argument("--out", type=Path, required=True, help="the certificate to write")
    sign.add_argument("--days", type=int, default=DEVICE_DAYS)
    sign.add_argument("--server", action="append", metavar="NAME", help="a broker certificate for NAME (repeatable)")
    service = steps.add_parser("service", help="an operator's or a service's key and certificate (operators' CA)")
    service.add_argument("--name", required=True, help="operator, operator-NAME, ingest, ingest-N or console")
    service.add_argument("--ca-dir", type=Path, required=True, help="the operators' CA")
    service.add_argument("--out", type=Path, required=True)
    service.add_argument("--days", type=int, default=DEVICE_DAYS)
    service.add_argument("--force", action="store_true", help="replace an existing key")
    server = steps.add_parser("server-request", help="a development broker's key and CSR")
    server.add_argument("--name", required=True)
    server.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.step == "ca":
        made = create_ca(args.dir, args.name, force=args.force)
        print(f"{'created' if made else 'kept the existing'} {args.name} in {args.dir} (ca.pem, ca.key)")
    elif args.step == "request":
        csr = request_identity(args.device_id, args.site, args.broker, args.out, args.keys_dir, args.force)
        print(f"identity of {args.device_id}: key and {csr} in {args.out}; the CA signs the CSR next")
    elif args.step == "service":
        cert = service_identity(args.name, args.ca_dir, args.out, args.days, args.force)
        print(f"{cert} and its key for {args.name}: give it a user stanza in the broker's operators.acl; it "
              f"connects on the operators' listener (8884)")
    elif args.step == "sign":
        cert = sign_request(args.csr, args.ca_dir, args.out, args.days, args.server)
        print(f"{args.out}: {cert.subject.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d}")
    else:
        print(server_request(args.name, args.out))


if __name__ == "__main__":
    sys.exit(main())
