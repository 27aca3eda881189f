"""Digests: the sha256 of a file, read in 1 MiB blocks (models, campaign assets and the content store use it),
and the tag log lines name a photo by (its id is the secret of its short link)."""

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


def photo_tag(photo_id: str) -> str:
    """What a log line calls a photo: the first 8 hex digits of the id's sha256, the same in every line and
    across restarts, and no way back to the id."""
    return hashlib.sha256(photo_id.encode()).hexdigest()[:8]
