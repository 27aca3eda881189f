"""Operator keys and the Ed25519 signature of campaign documents.

The signature covers the canonical JSON of the document as it travels (every key
but ``signature``: sorted keys, no whitespace, UTF-8), never a re-serialisation of
the parsed model, so the device checks exactly the bytes the operator signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.atomicfile import SECRET_MODE, write_atomically
from appliance.campaigns.errors import Rejected
from appliance.errors import ApplianceError

PRIVATE_KEY_FILE = "operator.key"
PUBLIC_KEY_FILE = "operator.pub"
PEM_MARKER = "-----BEGIN"


def canonical_json(document: Mapping) -> bytes:
    """The bytes that are signed: the document without its signature, sorted keys, no whitespace, UTF-8."""
    unsigned = {key: value for key, value in document.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short stable name of a public key, so a device with several trusted keys knows which to try."""
    return hashlib.sha256(raw_public_bytes(key)).hexdigest()[:16]


def parse_public_key(text: str, source: str) -> Ed25519PublicKey:
    """A PEM public key, or the 32 raw key bytes in base64 (the one-line form for a config file)."""
    text = text.strip()
    try:
        if text.startswith(PEM_MARKER):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise ApplianceError(f"{source}: not an Ed25519 public key (PEM or base64 of 32 bytes): {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ApplianceError(f"{source}: is a {type(key).__name__}, not an Ed25519 public key")
    return key


def load_trusted_keys(entries: Sequence[str | Path]) -> dict[str, Ed25519PublicKey]:
    """Key id → key for each configured entry: a key file, or a key written inline in the config."""
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in entries:
        text = str(entry).strip()
        inline = text.startswith(PEM_MARKER) or (len(text) == 44 and text.endswith("="))
        if inline:
            key = parse_public_key(text, "campaigns.trusted_keys (inline key)")
        else:
            try:
                content = Path(text).read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise ApplianceError(f"campaigns.trusted_keys: cannot read {text}: {exc}") from exc
            key = parse_public_key(content, text)
        keys[key_id(key)] = key
    return keys


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise ApplianceError(f"cannot read the signing key {path}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ApplianceError(f"{path}: not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ApplianceError(f"{path}: is a {type(key).__name__}, not an Ed25519 key (make one with keygen)")
    return key


def sign_document(document: Mapping, key: Ed25519PrivateKey) -> dict:
    """``document`` with ``key_id`` and ``signature`` set (any previous signature is replaced)."""
    signed = {name: value for name, value in document.items() if name != "signature"}
    signed["key_id"] = key_id(key.public_key())
    signed["signature"] = base64.b64encode(key.sign(canonical_json(signed))).decode("ascii")
    return signed


def verify_document(document: Mapping, trusted: Mapping[str, Ed25519PublicKey]) -> None:
    """Raise Rejected, with the reason, unless a trusted key signed exactly this document."""
    signature, signer = document.get("signature"), document.get("key_id")
    if not signature:
        raise Rejected("unsigned document (no signature)")
    if not trusted:
        raise Rejected("no trusted operator keys are configured ([campaigns] trusted_keys)")
    if not isinstance(signer, str) or signer not in trusted:
        raise Rejected(f"signed by an unknown key {signer!r} (trusted: {', '.join(sorted(trusted))})")
    try:
        signed_bytes = canonical_json(document)
    except UnicodeEncodeError as exc:  # a lone surrogate escape ("\ud800") parses but is not Unicode text
        raise Rejected(f"the document holds text that is not valid Unicode: {exc.reason}") from exc
    try:
        raw_signature = base64.b64decode(str(signature), validate=True)
        trusted[signer].verify(raw_signature, signed_bytes)
    except (InvalidSignature, binascii.Error) as exc:
        raise Rejected(f"bad signature: the document was altered or not signed by key {signer}") from exc


def write_keypair(out_dir: Path, force: bool = False) -> tuple[Path, Path, str]:
    """Write a new operator key pair; the private key is created 0600 and never overwritten unless ``force``."""
    out_dir = Path(out_dir)
    private_path, public_path = out_dir / PRIVATE_KEY_FILE, out_dir / PUBLIC_KEY_FILE
    if not force:
        existing = [str(path) for path in (private_path, public_path) if path.exists()]
        if existing:
            raise ApplianceError(f"{' and '.join(existing)} already exist; --force replaces them")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    write_atomically(private_path, private_pem, mode=SECRET_MODE)
    write_atomically(public_path, public_pem, mode=0o644)
    return private_path, public_path, key_id(key.public_key())
