"""The sha256 of a file, read in 1 MiB blocks (models, campaign assets and the content store use it)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from appliance.errors import ApplianceError


def sha256_of(path: Path) -> str:
    """Lower-case hex digest of ``path``; ApplianceError naming the file when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as source:
            while block := source.read(1024 * 1024):
                digest.update(block)
    except OSError as exc:
        raise ApplianceError(f"cannot read {path}: {exc}") from exc
    return digest.hexdigest()
