"""The content-addressed store: every asset kept once, as a file named by its sha256.

Two campaigns sharing a logo share one file, a re-pushed campaign downloads
nothing it already has, and a blob is trusted only once its digest matched.
Blobs are read-only and never written after they are renamed into place: a
release gets them as hard links (or fresh copies), never by writing into an
existing path, and a cached blob is hashed again before it is used, so a damaged
one is downloaded again instead of spreading into a new campaign.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from appliance.campaigns.document import Asset
from appliance.campaigns.errors import Stalled, Unreachable
from appliance.campaigns.fetch import Transfer, download_part
from appliance.digest import sha256_of
from appliance.errors import ApplianceError

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
#: Blobs (and the hard links of releases, which share their inode) are read-only.
READ_ONLY = 0o444
#: Immediate resumes within one fetch while each attempt makes progress; after that the
#: asset is left for a later retry (with backoff) of the whole document.
RESUMES = 5


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ApplianceError(f"cannot create the content store {self.root}: {exc}") from exc

    def path(self, sha256: str) -> Path:
        return self.root / sha256

    def intact(self, sha256: str) -> bool:
        """Whether the blob is held and still matches its digest; a damaged one is deleted (to be fetched again)."""
        blob = self.path(sha256)
        if not blob.is_file():
            return False
        digest = sha256_of(blob)
        if digest == sha256:
            if blob.stat().st_mode & 0o222:  # kept by an older version of the store
                os.chmod(blob, READ_ONLY)
            return True
        log.warning("campaigns: store file %s is damaged (its sha256 is now %s); discarding it", blob, digest)
        blob.unlink(missing_ok=True)
        return False

    def place(self, sha256: str, target: Path) -> None:
        """The blob at the new path ``target``: a hard link, or a fresh copy where links are not supported.

        An existing ``target`` is an error (FileExistsError), never overwritten: writing
        into it could write into a blob through a hard link.
        """
        blob = self.path(sha256)
        try:
            os.link(blob, target)
        except FileExistsError:
            raise
        except OSError:
            with open(blob, "rb") as source, open(target, "xb") as out:
                shutil.copyfileobj(source, out)

    def part_size(self, sha256: str) -> int:
        part = self.root / f"{sha256}{PART_SUFFIX}"
        return part.stat().st_size if part.exists() else 0

    def usage(self) -> int:
        """Bytes held: complete blobs and partial downloads."""
        return sum(entry.stat().st_size for entry in self.root.iterdir() if entry.is_file())

    def make_room(self, needed: int, budget: int, keep: set[str]) -> list[str]:
        """Evict files not in ``keep`` (oldest first) until ``needed`` more bytes fit in ``budget``.

        Returns the evicted names; raises ApplianceError when even evicting everything
        else would not make the room, so nothing is downloaded that could not be kept.
        """
        used = self.usage()
        if used + needed <= budget:
            return []
        candidates = sorted(
            (entry for entry in self.root.iterdir() if entry.is_file() and entry.name.split(".")[0] not in keep),
            key=lambda entry: entry.stat().st_mtime,
        )
        evictable = sum(entry.stat().st_size for entry in candidates)
        if used - evictable + needed > budget:
            raise ApplianceError(
                f"the campaign needs {needed} more bytes but the disk budget is {budget} bytes and "
                f"{used - evictable} are held by the active, previous and new campaigns"
            )
        evicted = []
        for entry in candidates:
            if used + needed <= budget:
                break
            used -= entry.stat().st_size
            entry.unlink()
            evicted.append(entry.name)
        return evicted

    def fetch(self, asset: Asset, transfer: Transfer, on_bytes: Callable[[int], None]) -> Path:
        """The blob of ``asset``, downloaded (resuming a part file) and checked against its size and sha256.

        A connection cut while data flows is resumed at once (a few times); a download
        that is too slow or past its deadline (Stalled) is left for a later retry.
        """
        blob = self.path(asset.sha256)
        if blob.is_file():
            return blob
        part = self.root / f"{asset.sha256}{PART_SUFFIX}"
        part.touch()
        for attempt in range(RESUMES + 1):
            before = part.stat().st_size if part.exists() else 0
            try:
                download_part(asset.url, part, asset.size, transfer, on_bytes)
                break
            except Stalled:
                raise
            except Unreachable:
                after = part.stat().st_size if part.exists() else 0
                if attempt == RESUMES or after <= before:
                    raise
        digest = sha256_of(part)
        if digest != asset.sha256:
            part.unlink()
            on_bytes(-asset.size)
            raise ApplianceError(f"asset {asset.path}: sha256 mismatch (expected {asset.sha256}, got {digest})")
        os.chmod(part, READ_ONLY)
        os.replace(part, blob)
        return blob
