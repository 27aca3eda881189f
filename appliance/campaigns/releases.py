"""Materialised campaigns on disk and the pointers that say which one is showing.

Layout under ``<state_dir>/campaigns``::

    store/<sha256>             the content-addressed blobs
    releases/v<N>/             one applied document: document.json + bundles/<campaign id>/
    active -> releases/v<N>    what the scheduler picks from (absent: the bundled default)
    previous -> releases/v<M>  what rollback returns to
    accepted.json              the newest version ever activated, and why the device left it if it did
                               (rolled back: pinned off it, not applied again until a newer one comes)
    showing                    the bundle last put on screen (kept across restarts on an unsynced clock)

A release is built complete in a staging directory and renamed into place, and a
pointer changes by renaming a new symlink over the old one, so a power cut at any
moment leaves either the old or the new campaign, never half of one. Every file of
a release is placed once and never written into (it may share its inode with a
store blob), and a release is checked against its sha256s before a rollback
returns to it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from appliance.atomicfile import write_atomically
from appliance.campaigns.document import Document, Schedule
from appliance.campaigns.store import BlobStore
from appliance.content import CAMPAIGN_FILE, load_bundle
from appliance.digest import sha256_of
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


@dataclass(frozen=True)
class Accepted:
    """The newest document ever activated (version 0: none yet).

    ``rolled_back`` says why the device left it (a rollback, a campaign that failed
    on screen) for an older campaign: it is pinned there and applies only a newer version.
    """

    version: int = 0
    signature: str = ""
    rolled_back: str | None = None


def safe_relative(path: str) -> PurePosixPath:
    """``path`` as a path that stays inside the bundle directory, or ApplianceError."""
    candidate = PurePosixPath(path)
    if "\\" in path or "\0" in path or candidate.is_absolute() or ".." in candidate.parts or not candidate.parts:
        raise ApplianceError(f"asset path {path!r} would escape the bundle directory")
    return candidate


def _read_document(directory: Path) -> Document:
    try:
        return Document.model_validate_json((directory / DOCUMENT_FILE).read_bytes())
    except OSError as exc:
        raise ApplianceError(f"the applied campaign in {directory} cannot be read: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(error["msg"] for error in exc.errors())
        raise ApplianceError(f"the applied campaign in {directory} cannot be read: {problems}") from exc


def check_intact(directory: Path) -> None:
    """ApplianceError naming the first file of the release in ``directory`` that no longer matches its sha256."""
    document = _read_document(directory)
    for entry in document.campaigns:
        for asset in entry.assets:
            file = directory / "bundles" / entry.id / safe_relative(asset.path)
            try:
                digest = sha256_of(file)
            except ApplianceError as exc:
                raise ApplianceError(f"version {document.version} is damaged: {exc}") from exc
            if digest != asset.sha256:
                raise ApplianceError(f"version {document.version} is damaged: {file} no longer matches its sha256")


def _load_release(directory: Path) -> Release:
    document = _read_document(directory)
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

    def _target(self, name: str) -> Path | None:
        link = self.root / name
        return self.root / os.readlink(link) if link.is_symlink() else None

    def _pointed(self, name: str) -> Release:
        target = self._target(name)
        return Release() if target is None else _load_release(target)

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

    def accepted(self) -> Accepted:
        """The newest document ever activated (``Accepted()`` before the first)."""
        try:
            data = json.loads((self.root / "accepted.json").read_text())
            rolled_back = data.get("rolled_back")
            return Accepted(int(data["version"]), str(data["signature"]),
                            None if rolled_back is None else str(rolled_back))
        except FileNotFoundError:
            return Accepted()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ApplianceError(f"{self.root / 'accepted.json'} is damaged: {exc}") from exc

    def _accept(self, accepted: Accepted) -> None:
        record = {"version": accepted.version, "signature": accepted.signature}
        if accepted.rolled_back is not None:
            record["rolled_back"] = accepted.rolled_back
        write_atomically(self.root / "accepted.json", json.dumps(record).encode("utf-8"))

    def materialise(self, document: Document, store: BlobStore, check_asset: Callable[[Path], None]) -> Path:
        """Build the release directory of ``document`` from blobs already in ``store`` and validate every bundle.

        ``check_asset(path)`` is called once per distinct asset (to decode it as the
        kiosk will) and raises ApplianceError for one that would not show.
        """
        staging = self.releases / f".v{document.version}.staging"
        final = self.releases / f"v{document.version}"
        shutil.rmtree(staging, ignore_errors=True)
        checked: set[tuple[str, str]] = set()
        try:
            for entry in document.campaigns:
                bundle_dir = staging / "bundles" / entry.id
                bundle_dir.mkdir(parents=True)
                (bundle_dir / CAMPAIGN_FILE).write_text(entry.bundle, encoding="utf-8")
                targets = [(asset.sha256, bundle_dir / safe_relative(asset.path)) for asset in entry.assets]
                for sha256, target in targets:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    store.place(sha256, target)
                try:
                    load_bundle(bundle_dir)
                    for sha256, target in targets:
                        if (sha256, target.suffix.lower()) not in checked:
                            check_asset(target)
                            checked.add((sha256, target.suffix.lower()))
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
        current = self._target(ACTIVE)
        if current is not None and current != directory:
            self._point(PREVIOUS, current)
        self._point(ACTIVE, directory)
        self._accept(Accepted(release.version, release.signature))
        return release

    def rollback(self, reason: str, verify: bool = True) -> Release:
        """Swap active and previous (no previous: back to the bundled default); the new active release.

        A previous release that is unreadable, or (``verify``: every file hashed) damaged,
        changes nothing (ApplianceError). Unless the swap returns to the accepted
        version, the device is pinned off it for ``reason``.
        """
        active_target, previous_target = self._target(ACTIVE), self._target(PREVIOUS)
        if active_target is None and previous_target is None:
            raise ApplianceError("nothing to roll back: the bundled default is already active")
        release = Release()
        if previous_target is not None:
            release = _load_release(previous_target)
            if verify:
                check_intact(previous_target)
        self._pin(release, reason)
        self._point(ACTIVE, previous_target)
        self._point(PREVIOUS, active_target)
        return release

    def fall_back_to_default(self, reason: str) -> Release:
        """Show the bundled default; the active release becomes the rollback target, and the device is pinned."""
        active_target = self._target(ACTIVE)
        self._pin(Release(), reason)
        if active_target is not None:
            self._point(PREVIOUS, active_target)
            self._point(ACTIVE, None)
        return Release()

    def _pin(self, active: Release, reason: str) -> None:
        """Record why the device leaves the accepted version for ``active`` (or that it is back on it).

        Written before the pointers move: a power cut in between leaves a pin that
        the active release contradicts (ignored), never a rollback without its pin.
        """
        accepted = self.accepted()
        rolled_back = None if active.version == accepted.version else reason
        if accepted.version and rolled_back != accepted.rolled_back:
            self._accept(Accepted(accepted.version, accepted.signature, rolled_back))

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
