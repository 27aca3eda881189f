"""The device side: verification, downloads from a real HTTP server, the store, activation, rollback, restart."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from broker import wait_for
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.campaigns import CampaignManager, sign_document
from appliance.campaigns.scheduler import Scheduler
from appliance.campaigns.signing import load_private_key, write_keypair
from appliance.content import load_bundle
from appliance.errors import ApplianceError
from appliance.ops.build import build
from appliance.ops.serve import AssetHandler, AssetServer


def show_now(scheduler: Scheduler, now: datetime | None = None) -> Path:
    """What a screen does with the schedule: show the bundle it picks (and say so)."""
    bundle = scheduler.pick(now)
    scheduler.shown(bundle)
    return bundle


def make_bundle(directory: Path, name: str, video_bytes: int = 0) -> Path:
    """A small valid content bundle whose media differ from every other bundle's (random pixels)."""
    rng = np.random.default_rng()
    (directory / "art").mkdir(parents=True, exist_ok=True)
    background = "clip.mp4" if video_bytes else "bg.png"
    (directory / "campaign.toml").write_text(
        f'name = "{name}"\n[[scenes]]\nid = "main"\ntitle = "{name}"\nbackground = "{background}"\n'
        '[[scenes.overlays]]\nimage = "art/logo.png"\n'
    )
    if video_bytes:
        (directory / "clip.mp4").write_bytes(os.urandom(video_bytes))
    else:
        cv2.imwrite(str(directory / "bg.png"), rng.integers(0, 255, (8, 8, 3), np.uint8))
    cv2.imwrite(str(directory / "art" / "logo.png"), rng.integers(0, 255, (8, 8, 4), np.uint8))
    return directory


class TroubleHandler(AssetHandler):
    """Serves like ``campaign serve``, with the faults a mall network produces, on request."""

    server: TroubleServer

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read ``server.requests`` instead."""

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        if self.server.unavailable > 0:
            self.server.unavailable -= 1
            self.send_error(503)
            return
        super().do_GET()

    def copy_range(self, file: Path, offset: int, length: int) -> None:
        if file.name in self.server.cut:
            self.server.cut.discard(file.name)
            with open(file, "rb") as source:
                source.seek(offset)
                self.wfile.write(source.read(length // 2))
            self.wfile.flush()
            self.close_connection = True
            return
        if file.name in self.server.slow:
            with open(file, "rb") as source:
                source.seek(offset)
                while block := source.read(min(8192, length)):
                    self.wfile.write(block)
                    length -= len(block)
                    time.sleep(0.05)
            return
        super().copy_range(file, offset, length)


class TroubleServer(AssetServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), {}, TroubleHandler)
        self.requests: list[tuple[str, str | None]] = []
        self.cut: set[str] = set()
        self.slow: set[str] = set()
        self.unavailable = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[TroubleServer]:
    running = TroubleServer()
    thread = threading.Thread(target=running.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.shutdown()
        running.server_close()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ed25519PrivateKey, Path]:
    private, public, _ = write_keypair(tmp_path_factory.mktemp("keys"))
    return load_private_key(private), public


class Device:
    """A CampaignManager with its reports collected."""

    def __init__(self, state_dir: Path, trusted: Path, default: Path, **options) -> None:
        self.reports: list[dict] = []
        options.setdefault("clock_synced", lambda: True)
        self.manager = CampaignManager(state_dir, [trusted], self.reports.append, default_bundle=default,
                                       download_timeout_s=5.0, **options).start()

    def send(self, document: dict | bytes) -> int:
        """Hand a payload over as the link would; the number of reports before it."""
        before = len(self.reports)
        self.manager.on_desired(document if isinstance(document, bytes) else json.dumps(document).encode())
        return before

    def outcome(self, before: int, timeout: float = 10.0) -> dict:
        """The first report after ``before`` that ends the handling of a document."""
        def settled() -> dict | None:
            return next((report for report in self.reports[before:] if report["phase"] != "downloading"), None)

        return wait_for(settled, timeout, what=f"an outcome report (so far {self.reports[before:]})")

    def apply(self, document: dict) -> dict:
        report = self.outcome(self.send(document))
        assert report["phase"] == "applied", report
        return report


@pytest.fixture
def device_factory(tmp_path: Path, keys) -> Iterator[Callable[..., Device]]:
    default = make_bundle(tmp_path / "default", "Default")
    devices: list[Device] = []

    def make(**options) -> Device:
        devices.append(Device(tmp_path / "state", keys[1], default, **options))
        return devices[-1]

    yield make
    for device in devices:
        device.manager.stop()


def signed(campaign_dir: Path, version: int, server: TroubleServer, key: Ed25519PrivateKey,
           edit: Callable[[dict], None] = lambda body: None) -> dict:
    """The signed document of ``campaign_dir``, its assets served by ``server``."""
    built = build(campaign_dir, server.url)
    server.files.update(built.files)
    body = built.unsigned()
    edit(body)
    return sign_document({"version": version, **body}, key)


def test_a_signed_campaign_is_downloaded_activated_and_scheduled(tmp_path, server, keys, device_factory) -> None:
    source = make_bundle(tmp_path / "src" / "winter", "Winter")
    device = device_factory()
    assert device.reports[0] == {"applied_version": 0, "pending_version": None, "phase": "idle", "progress": 1.0,
                                 "errors": []}
    report = device.apply(signed(tmp_path / "src", 1, server, keys[0]))
    assert report == {"applied_version": 1, "pending_version": None, "phase": "applied", "progress": 1.0,
                      "errors": []}
    downloading = [r for r in device.reports if r["phase"] == "downloading"]
    assert downloading[0]["pending_version"] == 1 and downloading[0]["progress"] == 0.0
    assert downloading[-1]["progress"] == 1.0
    bundle_dir = show_now(device.manager.scheduler)
    assert bundle_dir == tmp_path / "state" / "campaigns" / "releases" / "v1" / "bundles" / "winter"
    assert load_bundle(bundle_dir).name == "Winter"
    assert (bundle_dir / "art" / "logo.png").read_bytes() == (source / "art" / "logo.png").read_bytes()
    assert (tmp_path / "state" / "campaigns" / "active").resolve() == bundle_dir.parents[1]
    blobs = sorted(p.name for p in (tmp_path / "state" / "campaigns" / "store").iterdir())
    assert len(blobs) == 2 and all(len(name) == 64 for name in blobs)


def test_forged_tampered_unsigned_and_stale_documents_are_rejected_and_the_campaign_stays(
        tmp_path, server, keys, device_factory) -> None:
    make_bundle(tmp_path / "a", "A")
    make_bundle(tmp_path / "b", "B")
    device = device_factory()
    first = signed(tmp_path / "a", 1, server, keys[0])
    device.apply(first)
    showing = show_now(device.manager.scheduler)
    second = signed(tmp_path / "b", 2, server, keys[0])
    tampered = json.loads(json.dumps(second))
    tampered["campaigns"][0]["priority"] = 99
    forged = sign_document({k: v for k, v in second.items() if k not in ("key_id", "signature")},
                           Ed25519PrivateKey.generate())
    unsigned = {k: v for k, v in second.items() if k not in ("key_id", "signature")}
    stale = signed(tmp_path / "b", 1, server, keys[0])  # same version as applied, other content
    cases = [(tampered, "bad signature"), (forged, "unknown key"), (unsigned, "unsigned"),
             (stale, "stale: version 1 is not newer than the applied version 1"), (b"{not json", "not JSON"),
             (b"[1, 2]", "not a JSON object")]
    for payload, reason in cases:
        report = device.outcome(device.send(payload))
        assert report["phase"] == "rejected" and reason in report["errors"][0], (reason, report)
        assert report["applied_version"] == 1
        assert show_now(device.manager.scheduler) == showing
    report = device.outcome(device.send(first))  # the retained document again, e.g. after a reconnect
    assert report["phase"] == "applied" and report["errors"] == []
    assert not any(r["phase"] == "downloading" and r["pending_version"] == 2 for r in device.reports)
    device.apply(second)
    report = device.outcome(device.send(signed(tmp_path / "a", 1, server, keys[0])))
    assert report["phase"] == "rejected" and report["errors"] == [
        "stale: version 1 is not newer than the applied version 2"]


def test_an_interrupted_download_resumes_with_range_and_matches_its_sha256(
        tmp_path, server, keys, device_factory) -> None:
    source = make_bundle(tmp_path / "src", "Video", video_bytes=300_000)
    server.cut.add("clip.mp4")
    device = device_factory()
    device.apply(signed(source, 1, server, keys[0]))
    clip = [header for path, header in server.requests if path.endswith("clip.mp4")]
    assert clip[0] is None and clip[1] == "bytes=150000-", clip
    bundle_dir = show_now(device.manager.scheduler)
    assert (bundle_dir / "clip.mp4").read_bytes() == (source / "clip.mp4").read_bytes()
    assert not list((tmp_path / "state" / "campaigns" / "store").glob("*.part"))


def test_a_server_outage_is_retried_with_backoff_until_it_applies(tmp_path, server, keys, device_factory) -> None:
    source = make_bundle(tmp_path / "src", "Retry")
    server.unavailable = 3
    device = device_factory(retry_s=(0.1, 0.2))
    before = device.send(signed(source, 1, server, keys[0]))
    report = device.outcome(before)
    assert report["phase"] == "failed" and "HTTP 503" in report["errors"][0] and "retrying in" in report["errors"][0]
    assert report["pending_version"] == 1 and report["applied_version"] == 0
    wait_for(lambda: device.reports[-1]["phase"] == "applied", what="the retried document to apply")


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda body: body["campaigns"][0]["assets"][0].update(path="../../etc/passwd"), "would escape the bundle"),
    (lambda body: body["campaigns"][0]["assets"][0].update(path="/etc/passwd"), "would escape the bundle"),
    (lambda body: body["campaigns"][0]["assets"][0].update(size=10**9), "over the 1000000-byte limit"),
    (lambda body: body["campaigns"][0]["assets"][0].update(size=100), "the server sends"),
    (lambda body: body["campaigns"][0]["assets"][0].update(sha256="0" * 64), "sha256 mismatch"),
    (lambda body: body["campaigns"][0]["assets"][0].update(url="file:///etc/passwd"), "only http and https"),
    (lambda body: body["campaigns"][0]["assets"].pop(), "does not exist"),
    (lambda body: body["campaigns"][0].update(bundle='name = "x"\n'), "scenes: required key is missing"),
])
def test_unsafe_or_broken_campaigns_fail_with_the_reason_and_the_campaign_stays(
        tmp_path, server, keys, device_factory, edit, reason) -> None:
    make_bundle(tmp_path / "good", "Good")
    make_bundle(tmp_path / "bad", "Bad")
    device = device_factory(max_asset_bytes=1_000_000)
    device.apply(signed(tmp_path / "good", 1, server, keys[0]))
    showing = show_now(device.manager.scheduler)
    report = device.outcome(device.send(signed(tmp_path / "bad", 2, server, keys[0], edit)))
    assert report["phase"] == "failed" and reason in report["errors"][0], report
    assert report["applied_version"] == 1 and report["pending_version"] == 2
    assert show_now(device.manager.scheduler) == showing
    campaigns = tmp_path / "state" / "campaigns"
    assert sorted(p.name for p in (campaigns / "releases").iterdir()) == ["v1"]
    assert not (campaigns / "etc").exists() and not (tmp_path / "etc").exists()


def test_the_disk_budget_evicts_what_neither_the_active_nor_the_previous_campaign_uses(
        tmp_path, server, keys, device_factory) -> None:
    sources = [make_bundle(tmp_path / name, name.upper(), video_bytes=100_000) for name in "abcd"]
    big = make_bundle(tmp_path / "big", "BIG", video_bytes=200_000)
    sizes = [sum(f.stat().st_size for f in src.rglob("*") if f.suffix in (".mp4", ".png")) for src in sources]
    device = device_factory(disk_budget_bytes=int(3.5 * max(sizes)))
    documents = []
    for version, src in enumerate(sources, start=1):  # one at a time: every bundle serves its clip.mp4
        documents.append(signed(src, version, server, keys[0]))
        device.apply(documents[-1])
    store = tmp_path / "state" / "campaigns" / "store"
    held = {p.name for p in store.iterdir()}
    blobs = [{asset["sha256"] for asset in document["campaigns"][0]["assets"]} for document in documents]
    clip_of_a = next(a["sha256"] for a in documents[0]["campaigns"][0]["assets"] if a["path"] == "clip.mp4")
    assert clip_of_a not in held, "campaign A is neither active nor previous: evicted (oldest first, as needed)"
    assert blobs[1] | blobs[2] | blobs[3] <= held
    assert sorted(p.name for p in (tmp_path / "state" / "campaigns" / "releases").iterdir()) == ["v3", "v4"]
    report = device.outcome(device.send(signed(big, 5, server, keys[0])))
    assert report["phase"] == "failed" and "disk budget" in report["errors"][0]
    assert report["applied_version"] == 4 and blobs[2] | blobs[3] <= {p.name for p in store.iterdir()}


def test_rollback_returns_to_the_previous_campaign_and_is_not_undone_by_the_retained_document(
        tmp_path, server, keys, device_factory) -> None:
    make_bundle(tmp_path / "a", "A")
    make_bundle(tmp_path / "b", "B")
    device = device_factory()
    device.apply(signed(tmp_path / "a", 1, server, keys[0]))
    second = signed(tmp_path / "b", 2, server, keys[0])
    device.apply(second)
    assert load_bundle(show_now(device.manager.scheduler)).name == "B"
    assert device.manager.rollback() == 1
    assert load_bundle(show_now(device.manager.scheduler)).name == "A"
    assert device.reports[-1] | {"errors": []} == {"applied_version": 1, "pending_version": None,
                                                   "phase": "applied", "progress": 1.0, "errors": []}
    report = device.outcome(device.send(second))
    assert report["applied_version"] == 1 and "version 2 was rolled back" in report["errors"][0]
    assert device.manager.rollback() == 2, "rolling back a rollback returns to the newer campaign"
    assert device.manager.rollback() == 1
    device.apply(signed(tmp_path / "b", 3, server, keys[0]))
    assert device.manager.rollback() == 1


def test_rollback_of_the_first_campaign_returns_to_the_bundled_default(tmp_path, server, keys, device_factory):
    make_bundle(tmp_path / "a", "A")
    device = device_factory()
    device.apply(signed(tmp_path / "a", 1, server, keys[0]))
    assert device.manager.rollback() == 0
    assert show_now(device.manager.scheduler) == tmp_path / "default"
    assert device.reports[-1]["phase"] == "idle"


def test_a_restart_reads_the_active_and_previous_campaigns_from_disk(tmp_path, server, keys, device_factory):
    make_bundle(tmp_path / "a", "A")
    make_bundle(tmp_path / "b", "B")
    device = device_factory()
    device.apply(signed(tmp_path / "a", 1, server, keys[0]))
    second = signed(tmp_path / "b", 2, server, keys[0])
    device.apply(second)
    show_now(device.manager.scheduler)
    wait_for(lambda: (tmp_path / "state" / "campaigns" / "showing").exists(), what="the showing record")
    device.manager.stop()
    requests = len(server.requests)
    restarted = device_factory(clock_synced=lambda: False)
    assert restarted.manager.applied_version == 2
    assert restarted.reports[0] == {"applied_version": 2, "pending_version": None, "phase": "applied",
                                    "progress": 1.0, "errors": []}
    bundle = show_now(restarted.manager.scheduler)
    assert load_bundle(bundle).name == "B", "an unsynced clock after a restart keeps what was on screen"
    report = restarted.outcome(restarted.send(second))
    assert report["phase"] == "applied" and len(server.requests) == requests, "nothing downloaded again"
    assert restarted.manager.rollback() == 1


def test_a_newer_document_supersedes_a_pending_download(tmp_path, server, keys, device_factory) -> None:
    slow = make_bundle(tmp_path / "slow", "Slow", video_bytes=200_000)
    make_bundle(tmp_path / "fast", "Fast")
    server.slow.add("clip.mp4")
    device = device_factory()
    before = device.send(signed(slow, 1, server, keys[0]))
    wait_for(lambda: any(r["phase"] == "downloading" for r in device.reports[before:]), what="downloading")
    report = device.outcome(device.send(signed(tmp_path / "fast", 2, server, keys[0])))
    assert report["phase"] == "applied" and report["applied_version"] == 2
    time.sleep(0.3)
    assert all(r["applied_version"] in (0, 2) for r in device.reports)
    assert load_bundle(show_now(device.manager.scheduler)).name == "Fast"


def test_an_unsynced_clock_is_reported(tmp_path, server, keys, device_factory) -> None:
    device = device_factory(clock_synced=lambda: False)
    show_now(device.manager.scheduler)
    wait_for(lambda: any("clock not synchronised" in " ".join(r["errors"]) for r in device.reports),
             what="the clock warning in a report")
    assert device.reports[-1]["phase"] == "idle"


def test_a_damaged_active_release_falls_back_to_the_default_and_says_so(tmp_path, server, keys, device_factory):
    make_bundle(tmp_path / "a", "A")
    device = device_factory()
    device.apply(signed(tmp_path / "a", 1, server, keys[0]))
    device.manager.stop()
    (tmp_path / "state" / "campaigns" / "releases" / "v1" / "document.json").write_text("{broken")
    restarted = device_factory()
    assert show_now(restarted.manager.scheduler) == tmp_path / "default"
    assert restarted.reports[0]["phase"] == "idle" and "cannot be read" in restarted.reports[0]["errors"][0]
    restarted.apply(signed(tmp_path / "a", 2, server, keys[0]))
    assert load_bundle(show_now(restarted.manager.scheduler)).name == "A"


def test_rollback_to_an_unreadable_release_changes_nothing(tmp_path, server, keys, device_factory) -> None:
    make_bundle(tmp_path / "a", "A")
    make_bundle(tmp_path / "b", "B")
    device = device_factory()
    device.apply(signed(tmp_path / "a", 1, server, keys[0]))
    device.apply(signed(tmp_path / "b", 2, server, keys[0]))
    (tmp_path / "state" / "campaigns" / "releases" / "v1" / "document.json").unlink()
    with pytest.raises(ApplianceError, match="cannot be read"):
        device.manager.rollback()
    assert device.manager.applied_version == 2
    assert (tmp_path / "state" / "campaigns" / "active").resolve().name == "v2"
