"""Materialised campaigns on disk and the pointers that say which one is showing.

Layout under ``<state_dir>/campaigns``::

    store/<sha256>             the content-addressed blobs
    releases/v<N>/             one applied document: document.json + bundles/<campaign id>/
    active -> releases/v<N>    what the scheduler picks from (absent: the bundled default)
    previous -> releases/v<M>  what rollback returns to
    accepted.json              the newest version ever activated (a rolled-back one is not re-applied)
    showing                    the bundle last put on screen (kept across restarts on an unsynced clock)

A release is built complete in a staging directory and renamed into place, and a
pointer changes by renaming a new symlink over the old one, so a power cut at any
moment leaves either the old or the new campaign, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from appliance.atomicfile import write_atomically
from appliance.campaigns.document import Document, Schedule
from appliance.campaigns.store import BlobStore
from appliance.content import CAMPAIGN_FILE, load_bundle
from appliance.errors import ApplianceError

DOCUMENT_FILE = "document.json"
ACTIVE, PREVIOUS = "active", "previous"


@dataclass(frozen=True)
class ScheduledCampaign:
    id: str
    priority: int
    schedule: Schedule
    bundle_dir: Path


@dataclass(frozen=True)
class Release:
    """An applied document as the scheduler needs it; version 0 is the bundled default alone."""

    version: int = 0
    signature: str = ""
    directory: Path | None = None
    campaigns: tuple[ScheduledCampaign, ...] = ()
    blobs: frozenset[str] = frozenset()


def safe_relative(path: str) -> PurePosixPath:
    """``path`` as a path that stays inside the bundle directory, or ApplianceError."""
    candidate = PurePosixPath(path)
    if "\\" in path or "\0" in path or candidate.is_absolute() or ".." in candidate.parts or not candidate.parts:
        raise ApplianceError(f"asset path {path!r} would escape the bundle directory")
    return candidate


def _load_release(directory: Path) -> Release:
    try:
        document = Document.model_validate_json((directory / DOCUMENT_FILE).read_bytes())
    except OSError as exc:
        raise ApplianceError(f"the applied campaign in {directory} cannot be read: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(error["msg"] for error in exc.errors())
        raise ApplianceError(f"the applied campaign in {directory} cannot be read: {problems}") from exc
    campaigns = tuple(
        ScheduledCampaign(entry.id, entry.priority, entry.schedule, directory / "bundles" / entry.id)
        for entry in document.campaigns
    )
    return Release(document.version, document.signature, directory, campaigns, frozenset(document.blobs()))


class Releases:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.releases = self.root / "releases"
        try:
            self.releases.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ApplianceError(f"cannot create {self.releases}: {exc}") from exc
        for leftover in self.releases.glob(".*.staging"):
            shutil.rmtree(leftover, ignore_errors=True)

    def _pointed(self, name: str) -> Release:
        link = self.root / name
        if not link.is_symlink():
            return Release()
        return _load_release(self.root / os.readlink(link))

    def active(self) -> Release:
        return self._pointed(ACTIVE)

    def previous(self) -> Release:
        return self._pointed(PREVIOUS)

    def _point(self, name: str, target: Path | None) -> None:
        link = self.root / name
        if target is None:
            link.unlink(missing_ok=True)
            return
        staging = self.root / f".{name}.tmp"
        staging.unlink(missing_ok=True)
        os.symlink(target.relative_to(self.root), staging)
        os.replace(staging, link)

    def accepted(self) -> tuple[int, str]:
        """(version, signature) of the newest document ever activated; (0, "") before the first."""
        try:
            data = json.loads((self.root / "accepted.json").read_text())
            return int(data["version"]), str(data["signature"])
        except FileNotFoundError:
            return 0, ""
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ApplianceError(f"{self.root / 'accepted.json'} is damaged: {exc}") from exc

    def materialise(self, document: Document, store: BlobStore) -> Path:
        """Build the release directory of ``document`` from blobs already in ``store`` and validate every bundle."""
        staging = self.releases / f".v{document.version}.staging"
        final = self.releases / f"v{document.version}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            for entry in document.campaigns:
                bundle_dir = staging / "bundles" / entry.id
                bundle_dir.mkdir(parents=True)
                (bundle_dir / CAMPAIGN_FILE).write_text(entry.bundle, encoding="utf-8")
                for asset in entry.assets:
                    target = bundle_dir / safe_relative(asset.path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(store.path(asset.sha256), target)
                    except OSError:
                        shutil.copyfile(store.path(asset.sha256), target)
                try:
                    load_bundle(bundle_dir)
                except ApplianceError as exc:
                    raise ApplianceError(f"campaign {entry.id}: {exc}") from exc
            write_atomically(staging / DOCUMENT_FILE, document.model_dump_json().encode("utf-8"))
            shutil.rmtree(final, ignore_errors=True)
            os.rename(staging, final)
        except OSError as exc:
            raise ApplianceError(f"cannot build the campaign directory {final}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

    def activate(self, directory: Path) -> Release:
        """Make ``directory`` the active release; the one it replaces becomes the rollback target."""
        release = _load_release(directory)
        current = self.root / ACTIVE
        if current.is_symlink():
            self._point(PREVIOUS, self.root / os.readlink(current))
        self._point(ACTIVE, directory)
        write_atomically(
            self.root / "accepted.json",
            json.dumps({"version": release.version, "signature": release.signature}).encode("utf-8"),
        )
        return release

    def rollback(self) -> Release:
        """Swap active and previous (no previous: back to the bundled default); the new active release."""
        active, previous = self.root / ACTIVE, self.root / PREVIOUS
        if not active.is_symlink() and not previous.is_symlink():
            raise ApplianceError("nothing to roll back: the bundled default is already active")
        active_target = self.root / os.readlink(active) if active.is_symlink() else None
        previous_target = self.root / os.readlink(previous) if previous.is_symlink() else None
        release = _load_release(previous_target) if previous_target else Release()  # unreadable: nothing moves
        self._point(ACTIVE, previous_target)
        self._point(PREVIOUS, active_target)
        return release

    def prune(self, keep: set[Path]) -> None:
        """Delete the release directories not in ``keep`` (active, previous, and what is on screen)."""
        kept = {path.resolve() for path in keep}
        for directory in self.releases.iterdir():
            if directory.is_dir() and not directory.name.startswith(".") and directory.resolve() not in kept:
                shutil.rmtree(directory, ignore_errors=True)

    def showing(self) -> Path | None:
        try:
            return Path((self.root / "showing").read_text(encoding="utf-8"))
        except OSError:
            return None

    def remember_showing(self, bundle_dir: Path) -> None:
        write_atomically(self.root / "showing", str(bundle_dir).encode("utf-8"))
