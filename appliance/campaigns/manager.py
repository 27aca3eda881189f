"""The device side of campaign push: desired-state documents in, an applied campaign and reports out.

The link calls ``on_desired`` from its network thread, so that only drops the
payload in a latest-value slot (and, for a verified newer version, shuts the
download in flight down); this worker verifies, downloads, decodes every asset as
the kiosk will, and activates. A newer document arriving mid-download supersedes
the pending one at once, even while the server sends nothing (what it shares with
it is already in the store), and whatever goes wrong, the running campaign stays
on screen and the reason goes to ``{p}/state/reported``.

Rollback (the operator's, or the kiosk's when an active bundle fails to load)
pins the device to the older campaign: the version it left is reported as
``rolled_back_version`` and not applied again, across restarts, until a newer
version is pushed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from appliance.alerts import Alerts
from appliance.campaigns.clock import system_clock_synced
from appliance.campaigns.document import Asset, Document, claimed_version, decode_payload, parse_document
from appliance.campaigns.errors import Rejected, Unreachable
from appliance.campaigns.fetch import DownloadLimits, Interrupted, Transfer
from appliance.campaigns.releases import Accepted, Release, Releases, safe_relative
from appliance.campaigns.scheduler import Scheduler
from appliance.campaigns.signing import load_trusted_keys, verify_document
from appliance.campaigns.store import BlobStore
from appliance.config import Config
from appliance.content import DEFAULT_BUNDLE_DIR
from appliance.errors import ApplianceError
from appliance.media import DEFAULT_LIMITS, MediaLimits, verify_media
from appliance.slot import LatestSlot
from appliance.worker import Worker

log = logging.getLogger(__name__)

Payload = bytes | str | dict


class Delivered(Protocol):
    """A message as the fleet link hands it to a handler (fleet.link.Incoming): only its payload is
    read here, so campaigns never import the fleet side (which sits above them)."""

    @property
    def payload(self) -> bytes: ...


MB = 1024 * 1024
#: Seconds between progress reports while downloading (the first and the last always go out).
PROGRESS_EVERY_S = 0.5
#: How often the idle worker looks at retries, the clock verdict and what is on screen.
TICK_S = 0.2
#: The code of the alert raised while the screen cannot show the campaign it should.
ALERT = "campaign"


class _Superseded(Exception):
    """A newer document arrived (or the manager is stopping): drop the pending one quietly."""


class CampaignManager(Worker):
    def __init__(
        self,
        state_dir: Path,
        trusted_keys: Sequence[str | Path],
        report: Callable[[dict], None],
        *,
        disk_budget_bytes: int = 2048 * MB,
        max_asset_bytes: int = 1024 * MB,
        download_timeout_s: float = 30.0,
        download_deadline_s: float = 3600.0,
        low_speed_bytes_per_s: int = 1024,
        low_speed_window_s: float = 60.0,
        media_limits: MediaLimits = DEFAULT_LIMITS,
        alerts: Alerts | None = None,
        default_bundle: Path = DEFAULT_BUNDLE_DIR,
        clock_synced: Callable[[], bool] = system_clock_synced,
        require_synced_clock: bool = True,
        retry_s: tuple[float, float] = (5.0, 300.0),
    ) -> None:
        super().__init__("campaigns")
        self._keys = load_trusted_keys(trusted_keys)
        root = Path(state_dir) / "campaigns"
        self.store = BlobStore(root / "store")
        self.releases = Releases(root)
        self._report = report
        self._budget = disk_budget_bytes
        self._max_asset = max_asset_bytes
        self._download_limits = DownloadLimits(download_timeout_s, download_deadline_s, low_speed_bytes_per_s,
                                               low_speed_window_s)
        self._media_limits = media_limits
        self._alerts = alerts
        self._retry_s = retry_s
        self.scheduler = Scheduler(default_bundle, clock_synced, require_synced_clock, self.releases.showing())
        startup_errors: list[str] = []
        try:
            self.scheduler.release = self.releases.active()
        except ApplianceError as exc:  # a damaged disk must not keep the screen dark: show the default
            log.error("campaigns: %s; showing the bundled default", exc)
            startup_errors.append(f"{exc}; showing the bundled default")
            self._alert(startup_errors[-1])
        self._incoming: LatestSlot[Payload] = LatestSlot()
        self._bundle_failures: queue.SimpleQueue[tuple[Path, str]] = queue.SimpleQueue()
        #: (version, transfer) of the download in flight, for on_desired to interrupt.
        self._transfer: tuple[int, Transfer] | None = None
        self._seen = 0
        self._retry: tuple[float, Payload] | None = None
        self._failures = 0
        self._switching = threading.Lock()
        self._state_lock = threading.Lock()
        self._state: dict = {"phase": self._resting_phase(), "pending_version": None, "progress": 1.0,
                             "errors": startup_errors}
        self._published_note: str | None = None
        self._remembered = self.scheduler.showing

    @classmethod
    def from_config(cls, config: Config, report: Callable[[dict], None], **overrides) -> CampaignManager:
        settings = config.campaigns
        options = {
            "disk_budget_bytes": int(settings.disk_budget_mb * MB),
            "max_asset_bytes": int(settings.max_asset_mb * MB),
            "download_timeout_s": settings.download_timeout_s,
            "download_deadline_s": settings.download_deadline_s,
            "low_speed_bytes_per_s": settings.low_speed_bytes_per_s,
            "low_speed_window_s": settings.low_speed_window_s,
            "media_limits": config.media,
            "require_synced_clock": settings.require_synced_clock,
            "default_bundle": config.kiosk.content,
        } | overrides
        return cls(config.paths.state_dir, settings.trusted_keys, report, **options)

    @property
    def applied_version(self) -> int:
        """Version of the active document; 0 while only the bundled default is installed."""
        return self.scheduler.release.version

    def start(self) -> CampaignManager:
        self._publish()
        return super().start()

    def on_desired(self, message: Delivered | Payload) -> None:
        """Handler for ``{p}/state/desired`` (``link.subscribe(topics.desired, manager.on_desired)``).

        Returns at once: the worker does the rest (a verified newer version also shuts
        the download in flight down). An empty payload (the retained document cleared)
        changes nothing: the applied campaign stays.
        """
        payload = message if isinstance(message, Payload) else message.payload
        if payload in (b"", ""):
            return
        self._incoming.put(payload)
        self._preempt(payload)

    def stop(self) -> None:
        self._stopping.set()  # before the interrupt: the worker must see it when its read returns
        in_flight = self._transfer
        if in_flight is not None:
            in_flight[1].interrupt()
        super().stop()

    def _preempt(self, payload: Payload) -> None:
        """Shut the download in flight down when ``payload`` is a verified, newer document (a signature check)."""
        in_flight = self._transfer
        if in_flight is None:
            return
        try:
            raw = decode_payload(payload)
            verify_document(raw, self._keys)
        except ApplianceError:
            return  # the worker reports it; the download carries on until it sees the new payload
        version = claimed_version(raw)
        if version is not None and version > in_flight[0]:
            log.info("campaigns: version %d supersedes the download of version %d", version, in_flight[0])
            in_flight[1].interrupt()

    def rollback(self) -> int:
        """The operator's rollback: the previous campaign (the bundled default when there is none) becomes
        current, and the device is pinned to it (see the module); its version.

        A previous campaign that cannot be read or whose files are damaged changes nothing (ApplianceError).
        Rolling back again returns to the newer campaign and lifts the pin.
        """
        with self._switching:
            try:
                release = self.releases.rollback("by the operator")
            except OSError as exc:
                raise ApplianceError(f"cannot roll back: {exc}") from exc
            self.scheduler.release = release
        log.info("campaigns: rolled back to version %d", release.version)
        self._set(self._resting_phase(), None, 1.0, [])
        return release.version

    def bundle_failed(self, bundle_dir: Path, reason: str) -> str:
        """The kiosk cannot show ``bundle_dir`` (a world fails to load): fall back to the last good campaign.

        When the bundle belongs to the active campaign, the device goes back to the
        previous one (the bundled default when there is none, when it is damaged, or
        when it is the version the device was already rolled back from) and is pinned
        there as for a rollback. Returns what happened: the reason of the ``campaign``
        alert (cleared when a new campaign applies).

        Runs on this worker (the kiosk hands failures over with ``report_failed``); the
        previous release is not hashed (if it is damaged, the kiosk cannot load it either
        and reports again, which falls back to the bundled default).
        """
        bundle_dir = Path(bundle_dir)
        with self._switching:
            failed = self.scheduler.release
            active = failed.directory is not None and bundle_dir.resolve().parent.parent == failed.directory.resolve()
            if not active:
                note = f"campaign bundle {bundle_dir} cannot be shown: {reason}"
            else:
                why = f"campaign {bundle_dir.name} of version {failed.version} cannot be shown: {reason}"
                release = self._fall_back(why)
                self.scheduler.release = release
                target = f"version {release.version}" if release.version else "the bundled default"
                note = f"{why}; showing {target}"
        log.error("campaigns: %s", note)
        self._alert(note)
        self._set(self._resting_phase(), None, 1.0, [] if active else [note])  # a fall-back reports its pin
        return note

    def _fall_back(self, why: str) -> Release:
        """The previous campaign when it is good and not the one rolled back from, else the bundled default."""
        try:
            if self.releases.accepted().rolled_back is None:
                return self.releases.rollback(why, verify=False)
        except (ApplianceError, OSError) as exc:
            log.warning("campaigns: not falling back to the previous campaign: %s", exc)
        try:
            return self.releases.fall_back_to_default(why)
        except (ApplianceError, OSError) as exc:
            log.error("campaigns: showing the bundled default without recording it: %s", exc)
            return Release()

    def _alert(self, reason: str | None) -> None:
        if self._alerts is not None:
            self._alerts.set(ALERT, reason)

    def report_failed(self, bundle_dir: Path, reason: str) -> None:
        """From the render loop: the kiosk cannot show ``bundle_dir``.  Returns at once; this worker falls
        back (``bundle_failed``) within a tick, and the kiosk shows what the schedule then picks."""
        self._bundle_failures.put((Path(bundle_dir), reason))

    def step(self) -> None:
        while not self._bundle_failures.empty():
            self.bundle_failed(*self._bundle_failures.get_nowait())
        seen, payload = self._incoming.newer_than(self._seen, timeout=TICK_S)
        if seen != self._seen:
            self._seen, self._retry, self._failures = seen, None, 0
            self._process(payload)
        elif self._retry is not None and time.monotonic() >= self._retry[0]:
            self._process(self._retry[1])
        self._housekeeping()

    def _resting_phase(self) -> str:
        return "applied" if self.scheduler.release.version else "idle"

    def _process(self, payload: Payload) -> None:
        version = None
        try:
            raw = decode_payload(payload)
            version = claimed_version(raw)
            verify_document(raw, self._keys)
            document = parse_document(raw)
            if self._check_newer(document):
                self._install(document)
        except (_Superseded, Interrupted):
            return
        except Rejected as exc:
            log.warning("campaigns: version %s rejected: %s", version, exc)
            self._set("rejected", version, 0.0, [str(exc)])
        except Unreachable as exc:
            delay = min(self._retry_s[1], self._retry_s[0] * 2**self._failures)
            self._failures += 1
            self._retry = (time.monotonic() + delay, payload)
            log.warning("campaigns: version %s not downloaded yet: %s", version, exc)
            self._set("failed", version, self._state["progress"], [f"{exc}; retrying in {delay:.0f} s"])
        except ApplianceError as exc:
            log.warning("campaigns: version %s failed: %s", version, exc)
            self._set("failed", version, 0.0, [str(exc)])
        except Exception as exc:  # the worker must outlive a bug in one document's handling
            log.exception("campaigns: version %s failed unexpectedly", version)
            self._set("failed", version, 0.0, [f"internal error: {type(exc).__name__}: {exc}"])

    def _check_newer(self, document: Document) -> bool:
        """True when ``document`` should be installed: newer than the accepted one, or the accepted one
        itself when its release could not be read (installed again); False when it is already in place
        or the device was rolled back from it."""
        accepted = self.releases.accepted()
        if document.version == accepted.version and document.signature == accepted.signature:
            if self.applied_version == accepted.version or accepted.rolled_back is not None:
                self._set(self._resting_phase(), None, 1.0, [])
                return False
            return True
        if document.version <= accepted.version:
            raise Rejected(f"stale: version {document.version} is not newer than the applied version {accepted.version}")
        return True

    def _preflight(self, document: Document) -> dict[str, Asset]:
        """The assets to download (one per blob), after refusing what could never be installed."""
        missing: dict[str, Asset] = {}
        for entry in document.campaigns:
            for asset in entry.assets:
                try:
                    safe_relative(asset.path)
                except ApplianceError as exc:
                    raise ApplianceError(f"campaign {entry.id}: {exc}") from exc
                if asset.size > self._max_asset:
                    raise ApplianceError(
                        f"campaign {entry.id}: asset {asset.path} is {asset.size} bytes, "
                        f"over the {self._max_asset}-byte limit per asset"
                    )
                if asset.sha256 not in missing and not self.store.intact(asset.sha256):
                    missing[asset.sha256] = asset
        return missing

    def _install(self, document: Document) -> None:
        self._set("downloading", document.version, 0.0, [])
        missing = self._preflight(document)
        keep = self.scheduler.release.blobs | self._previous().blobs | document.blobs()
        resumed = sum(self.store.part_size(sha) for sha in missing)
        total = sum(asset.size for asset in missing.values())
        self.store.make_room(total - resumed, self._budget, keep)
        progress = _Progress(total, resumed, lambda fraction: self._set("downloading", document.version, fraction, []))
        transfer = Transfer(self._download_limits)
        self._transfer = (document.version, transfer)
        try:
            self._check_superseded()
            for asset in missing.values():
                self.store.fetch(asset, transfer, lambda count: progress.add(count, self._check_superseded))
        finally:
            self._transfer = None
        self._check_superseded()
        directory = self.releases.materialise(document, self.store, self._verify_asset)
        with self._switching:
            try:
                release = self.releases.activate(directory)
            except OSError as exc:
                raise ApplianceError(f"cannot switch to version {document.version}: {exc}") from exc
            self.scheduler.release = release
            self._prune()
        log.info("campaigns: version %d applied (%d campaigns)", document.version, len(document.campaigns))
        self._alert(None)
        self._set("applied", None, 1.0, [])

    def _verify_asset(self, path: Path) -> None:
        """Decode one asset of the release being built as the kiosk will; a newer document stops the checks."""
        self._check_superseded()
        verify_media(path, self._media_limits)

    def _check_superseded(self) -> None:
        if self.stopping or self._incoming.latest()[0] != self._seen:
            raise _Superseded

    def _previous(self) -> Release:
        """The rollback target; an unreadable one is as good as none and must not block a new campaign."""
        try:
            return self.releases.previous()
        except ApplianceError as exc:
            log.warning("campaigns: ignoring the previous campaign: %s", exc)
            return Release()

    def _prune(self) -> None:
        keep = {self.scheduler.release.directory, self._previous().directory}
        showing = self.scheduler.showing
        if showing is not None and showing.parent.name == "bundles":
            keep.add(showing.parent.parent)
        self.releases.prune({path for path in keep if path is not None})

    def _housekeeping(self) -> None:
        """Re-report when the clock verdict changes; remember what is on screen for a restart."""
        if self.scheduler.clock_note != self._published_note:
            self._publish()
        showing = self.scheduler.showing
        if showing is not None and showing != self._remembered:
            try:
                self.releases.remember_showing(showing)
                self._remembered = showing
            except (OSError, ApplianceError) as exc:
                log.warning("campaigns: cannot record the campaign on screen: %s", exc)

    def _set(self, phase: str, pending: int | None, progress: float, errors: list[str]) -> None:
        with self._state_lock:
            self._state = {"phase": phase, "pending_version": pending, "progress": progress, "errors": errors}
        self._publish()

    def _publish(self) -> None:
        with self._state_lock:
            note = self.scheduler.clock_note
            self._published_note = note
            payload = {"applied_version": self.applied_version, **self._state}
            payload["progress"] = round(min(1.0, max(0.0, payload["progress"])), 4)
            notes = [note] if note else []
            pin = self._pin()
            if pin is not None:
                payload["rolled_back_version"] = pin.version
                notes.insert(0, f"version {pin.version} was rolled back ({pin.rolled_back}); "
                                "push a newer version to apply it again")
            payload["errors"] = payload["errors"] + notes
            try:
                self._report(payload)
            except Exception as exc:  # reporting must never stop a campaign from applying
                log.warning("campaigns: cannot report %s: %s", payload["phase"], exc)

    def _pin(self) -> Accepted | None:
        """The version the device was rolled back from and is pinned off, if any."""
        try:
            accepted = self.releases.accepted()
        except ApplianceError:
            return None
        if accepted.rolled_back is None or accepted.version == self.applied_version:
            return None
        return accepted


class _Progress:
    """Download progress over every missing asset, reported at most every PROGRESS_EVERY_S."""

    def __init__(self, total: int, done: int, report: Callable[[float], None]) -> None:
        self.total, self.done, self._report = total, done, report
        self._last = 0.0

    def add(self, count: int, check: Callable[[], None]) -> None:
        check()
        self.done += count
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY_S or self.done >= self.total:
            self._last = now
            self._report(self.done / self.total if self.total else 1.0)
