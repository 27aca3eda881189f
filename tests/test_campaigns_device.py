"""The device side: verification, downloads from a real HTTP server, the store, activation, rollback, restart."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from broker import Pki, pki_fixture, wait_for  # noqa: F401 - fixtures
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.alerts import Alerts
from appliance.campaigns import CampaignManager, sign_document
from appliance.campaigns.scheduler import Scheduler
from appliance.campaigns.signing import load_private_key, write_keypair
from appliance.config import Config
from appliance.content import load_bundle
from appliance.errors import ApplianceError
from appliance.ops.build import build
from appliance.ops.serve import AssetHandler, AssetServer


def show_now(scheduler: Scheduler, now: datetime | None = None) -> Path:
    """What a screen does with the schedule: show the bundle it picks (and say so)."""
    bundle = scheduler.pick(now)
    scheduler.shown(bundle)
    return bundle


def write_video(path: Path, size: int, frames: int = 4) -> Path:
    """A real MP4 of ``size`` bytes: random 16x16 frames, padded with a top-level ``free`` box (random
    bytes every demuxer skips), so a test gets a big, unique asset that decodes in no time."""
    rng = np.random.default_rng()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (16, 16))
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (16, 16, 3), np.uint8))
    writer.release()
    padding = size - path.stat().st_size - 8
    assert padding >= 0, f"a video of {size} bytes is too small for {frames} frames"
    with open(path, "ab") as out:
        out.write(struct.pack(">I", 8 + padding) + b"free" + os.urandom(padding))
    return path


def huge_png(path: Path, side: int = 20000) -> Path:
    """A valid 1-bit PNG of side x side pixels (about 60 kB; 400 MB once decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (side + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


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
        write_video(directory / "clip.mp4", video_bytes)
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
    def __init__(self, handler: type[TroubleHandler] = TroubleHandler) -> None:
        super().__init__(("127.0.0.1", 0), {}, handler)
        self.requests: list[tuple[str, str | None]] = []
        self.cut: set[str] = set()
        self.slow: set[str] = set()
        self.unavailable = 0
        self.scheme = "http"

    def use_tls(self, pki: Pki) -> None:
        """Serve over HTTPS with the test fleet CA's server certificate (127.0.0.1 in its names)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server.cert, pki.server.key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.scheme = "https"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"


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


def test_rollback_pins_the_previous_campaign_until_a_newer_version_even_across_a_restart(
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
    pin_note = "version 2 was rolled back (by the operator); push a newer version to apply it again"
    pinned = {"applied_version": 1, "pending_version": None, "phase": "applied", "progress": 1.0,
              "rolled_back_version": 2, "errors": [pin_note]}
    assert device.reports[-1] == pinned
    assert device.outcome(device.send(second)) == pinned, "the retained document is not applied again"
    device.manager.stop()
    requests = len(server.requests)
    restarted = device_factory()
    assert restarted.reports[0] == pinned, "the pin survives a restart"
    assert restarted.outcome(restarted.send(second)) == pinned
    assert load_bundle(show_now(restarted.manager.scheduler)).name == "A" and len(server.requests) == requests
    assert restarted.manager.rollback() == 2, "rolling back a rollback returns to the newer campaign"
    assert "rolled_back_version" not in restarted.reports[-1] and restarted.reports[-1]["errors"] == []
    assert restarted.manager.rollback() == 1
    report = restarted.apply(signed(tmp_path / "b", 3, server, keys[0]))
    assert "rolled_back_version" not in report and report["errors"] == [], "a newer version lifts the pin"
    assert restarted.manager.rollback() == 1


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
    first = signed(tmp_path / "a", 1, server, keys[0])
    device.apply(first)
    device.manager.stop()
    (tmp_path / "state" / "campaigns" / "releases" / "v1" / "document.json").write_text("{broken")
    alerts = Alerts()
    restarted = device_factory(alerts=alerts)
    assert show_now(restarted.manager.scheduler) == tmp_path / "default"
    assert restarted.reports[0]["phase"] == "idle" and "cannot be read" in restarted.reports[0]["errors"][0]
    assert [alert.code for alert in alerts.current()] == ["campaign"]
    restarted.apply(first)  # the retained document again: installed again, not taken as already there
    assert load_bundle(show_now(restarted.manager.scheduler)).name == "A"
    assert alerts.current() == []


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


def spoil_video(bundle: Path) -> None:
    """Cut the clip inside its frames (an upload that stopped early)."""
    clip = bundle / "clip.mp4"
    clip.write_bytes(clip.read_bytes()[:1000])


@pytest.mark.parametrize(("video", "spoil", "reason"), [
    (False, lambda bundle: (bundle / "bg.png").write_text("a text file named like an image\n"), "bg.png"),
    (False, lambda bundle: huge_png(bundle / "bg.png"), "20000x20000"),
    (True, spoil_video, "clip.mp4"),
])
def test_a_signed_campaign_whose_media_do_not_decode_fails_before_activation(
        tmp_path, server, keys, device_factory, video, spoil, reason) -> None:
    make_bundle(tmp_path / "good", "Good")
    bad = make_bundle(tmp_path / "bad", "Bad", video_bytes=30_000 if video else 0)
    spoil(bad)
    device = device_factory()
    device.apply(signed(tmp_path / "good", 1, server, keys[0]))
    showing = show_now(device.manager.scheduler)
    document = signed(bad, 2, server, keys[0])  # right sha256 and size: the bytes are what the operator signed
    report = device.outcome(device.send(document))
    assert report["phase"] == "failed" and report["errors"][0].startswith("campaign bad: "), report
    assert reason in report["errors"][0]
    assert report["applied_version"] == 1 and report["pending_version"] == 2
    assert show_now(device.manager.scheduler) == showing
    assert sorted(p.name for p in (tmp_path / "state" / "campaigns" / "releases").iterdir()) == ["v1"]


def test_a_campaign_enabling_an_experience_the_screen_does_not_have_fails_naming_it(
        tmp_path, server, keys, device_factory) -> None:
    """Built where a ``hologram`` plug-in is installed (the operator's machine), sent to a screen without it."""
    from appliance.experience.api import API_VERSION, Card, Experience
    from appliance.experience.registry import Registry, installed

    make_bundle(tmp_path / "good", "Good")
    posing = make_bundle(tmp_path / "posing", "Posing")
    toml = posing / "campaign.toml"
    toml.write_text('experiences = ["mirror", "hologram"]\n' + toml.read_text())
    hologram = Experience(name="hologram", api=API_VERSION, scene=object, card=lambda config: Card("Hologram"))
    device = device_factory()
    device.apply(signed(tmp_path / "good", 1, server, keys[0]))
    with_hologram = build(posing, server.url, registry=Registry.of([*installed().experiences.values(), hologram]))
    server.files.update(with_hologram.files)
    report = device.outcome(device.send(sign_document({"version": 2, **with_hologram.unsigned()}, keys[0])))
    assert report["phase"] == "failed" and report["applied_version"] == 1, report
    assert "experiences[1]: no experience 'hologram' is installed here (installed: age, attract, fusion, menu, mirror, photo, pose, rps)" \
        in report["errors"][0]
    with pytest.raises(ApplianceError, match="no experience 'hologram' is installed here"):
        build(posing, server.url)  # an operator without the plug-in is refused before signing


def test_the_media_limits_come_from_the_configuration(tmp_path, server, keys) -> None:
    make_bundle(tmp_path / "default", "Default")
    make_bundle(tmp_path / "a", "A")  # 8x8 images
    config = Config.model_validate({
        "paths": {"state_dir": tmp_path / "state"}, "kiosk": {"content": tmp_path / "default"},
        "campaigns": {"trusted_keys": [str(keys[1])], "require_synced_clock": False},
        "media": {"image_side_px": 4},
    })
    reports: list[dict] = []
    manager = CampaignManager.from_config(config, reports.append).start()
    try:
        manager.on_desired(json.dumps(signed(tmp_path / "a", 1, server, keys[0])).encode())
        report = wait_for(lambda: next((r for r in reports if r["phase"] == "failed"), None), 10.0,
                          what=f"a failed report (so far {reports})")
    finally:
        manager.stop()
    assert "8x8" in report["errors"][0] and "4 px a side" in report["errors"][0]


def test_a_bundle_that_fails_on_screen_falls_back_to_the_previous_campaign_with_an_alert(
        tmp_path, server, keys, device_factory) -> None:
    for name in "abc":
        make_bundle(tmp_path / name, name.upper())
    alerts = Alerts()
    device = device_factory(alerts=alerts)
    device.apply(signed(tmp_path / "a", 1, server, keys[0]))
    second = signed(tmp_path / "b", 2, server, keys[0])
    device.apply(second)
    failing = show_now(device.manager.scheduler)
    note = device.manager.bundle_failed(failing, "scene main: cannot decode bg.png")
    assert note == "campaign b of version 2 cannot be shown: scene main: cannot decode bg.png; showing version 1"
    assert load_bundle(show_now(device.manager.scheduler)).name == "A"
    assert [(alert.code, alert.reason) for alert in alerts.current()] == [("campaign", note)]
    report = device.reports[-1]
    assert report["applied_version"] == 1 and report["rolled_back_version"] == 2
    assert "cannot decode bg.png" in report["errors"][0]
    assert device.outcome(device.send(second))["applied_version"] == 1, "the failed version is not applied again"
    assert alerts.current(), "the alert stays while the device runs the older campaign"
    device.apply(signed(tmp_path / "c", 3, server, keys[0]))
    assert alerts.current() == [], "a new campaign clears the alert"


def test_a_failing_bundle_falls_back_to_the_default_when_the_previous_campaign_is_no_good(
        tmp_path, server, keys, device_factory) -> None:
    for name in "ab":
        make_bundle(tmp_path / name, name.upper())
    device = device_factory()
    device.apply(signed(tmp_path / "a", 1, server, keys[0]))
    device.apply(signed(tmp_path / "b", 2, server, keys[0]))
    assert device.manager.rollback() == 1
    note = device.manager.bundle_failed(show_now(device.manager.scheduler), "broken")
    assert note.endswith("showing the bundled default"), "never back to the version rolled back from"
    assert show_now(device.manager.scheduler) == tmp_path / "default"
    releases = tmp_path / "state" / "campaigns" / "releases"
    device.apply(signed(tmp_path / "a", 3, server, keys[0]))
    device.apply(signed(tmp_path / "b", 4, server, keys[0]))
    (releases / "v3" / "document.json").unlink()
    note = device.manager.bundle_failed(show_now(device.manager.scheduler), "broken")
    assert note.endswith("showing the bundled default"), "never to a campaign that cannot be read"
    device.apply(signed(tmp_path / "a", 5, server, keys[0]))
    device.apply(signed(tmp_path / "b", 6, server, keys[0]))
    damage(releases / "v5" / "bundles" / "a" / "bg.png")
    note = device.manager.bundle_failed(show_now(device.manager.scheduler), "broken")
    assert note.endswith("showing version 5"), "not hashed on the way back: the kiosk finds out"
    note = device.manager.bundle_failed(show_now(device.manager.scheduler), "cannot decode bg.png")
    assert note.endswith("showing the bundled default")
    note = device.manager.bundle_failed(tmp_path / "default", "broken too")
    assert note == f"campaign bundle {tmp_path / 'default'} cannot be shown: broken too"


class TrickleHandler(TroubleHandler):
    """A server that answers at once, then sends one byte every ``server.interval`` seconds."""

    server: TrickleServer

    def copy_range(self, file: Path, offset: int, length: int) -> None:
        if file.name not in self.server.trickle:
            super().copy_range(file, offset, length)
            return
        with open(file, "rb") as source:
            source.seek(offset)
            while length and not self.server.closing.wait(self.server.interval):
                self.wfile.write(source.read(1))
                self.wfile.flush()
                length -= 1


class TrickleServer(TroubleServer):
    def __init__(self) -> None:
        super().__init__(TrickleHandler)
        self.trickle: set[str] = set()
        self.interval = 2.0
        self.closing = threading.Event()


@pytest.fixture
def trickle() -> Iterator[TrickleServer]:
    running = TrickleServer()
    thread = threading.Thread(target=running.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.closing.set()
        running.shutdown()
        running.server_close()


@pytest.mark.parametrize(("interval", "tls"), [(2.0, False), (2.0, True), (3600.0, False)],
                         ids=["one-byte-every-2-s", "one-byte-every-2-s-over-https", "silent"])
def test_a_newer_version_preempts_a_download_from_a_server_sending_one_byte_every_2_s(
        tmp_path, trickle, keys, device_factory, interval, tls, pki, monkeypatch) -> None:
    trickle.interval = interval
    if tls:
        trickle.use_tls(pki)
        monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    make_bundle(tmp_path / "a", "A")
    slow = make_bundle(tmp_path / "slow", "Slow", video_bytes=20_000)
    device = device_factory()
    device.apply(signed(tmp_path / "a", 1, trickle, keys[0]))
    trickle.trickle.add("clip.mp4")
    before = device.send(signed(slow, 2, trickle, keys[0]))
    wait_for(lambda: any(path.endswith("clip.mp4") for path, _ in trickle.requests), what="the slow download")
    time.sleep(2.5)  # a byte has arrived, or none (silent): the read is blocked waiting for more
    started = time.monotonic()
    report = device.outcome(device.send(signed(tmp_path / "a", 3, trickle, keys[0])), timeout=20.0)
    assert report["phase"] == "applied" and report["applied_version"] == 3
    assert time.monotonic() - started < 10, "the fully cached version 3 waited for the slow download"
    assert all(r["applied_version"] != 2 for r in device.reports[before:])
    assert load_bundle(show_now(device.manager.scheduler)).name == "A"


@pytest.mark.parametrize(("options", "reason"), [
    ({"low_speed_bytes_per_s": 100, "low_speed_window_s": 2.0, "download_deadline_s": 0}, "too slow"),
    ({"low_speed_bytes_per_s": 0, "download_deadline_s": 2.0}, "within the 2 s download deadline"),
])
def test_a_crawling_download_is_abandoned_and_retried_later(
        tmp_path, trickle, keys, device_factory, options, reason) -> None:
    slow = make_bundle(tmp_path / "slow", "Slow", video_bytes=20_000)
    trickle.trickle.add("clip.mp4")
    trickle.interval = 0.2
    device = device_factory(retry_s=(30.0, 60.0), **options)
    started = time.monotonic()
    report = device.outcome(device.send(signed(slow, 1, trickle, keys[0])), timeout=20.0)
    assert report["phase"] == "failed" and reason in report["errors"][0], report
    assert "retrying in 30 s" in report["errors"][0] and report["pending_version"] == 1
    assert time.monotonic() - started < 6.0
    assert sum(path.endswith("clip.mp4") for path, _ in trickle.requests) == 1, "no immediate resume of a crawl"


def damage(file: Path) -> None:
    """What a failing card does to a file: same size, other bytes (through every hard link to it)."""
    file.chmod(0o644)
    file.write_bytes(bytes(byte ^ 0xFF for byte in file.read_bytes()))


def blob_digests(store: Path) -> dict[str, str]:
    return {blob.name: hashlib.sha256(blob.read_bytes()).hexdigest() for blob in store.iterdir()}


def test_two_paths_naming_one_file_are_refused_and_the_store_and_rollback_target_stay_intact(
        tmp_path, server, keys, device_factory) -> None:
    a = make_bundle(tmp_path / "a", "A")
    make_bundle(tmp_path / "b", "B")
    c = make_bundle(tmp_path / "c", "C")
    device = device_factory()
    first = signed(a, 1, server, keys[0])
    device.apply(first)
    device.apply(signed(tmp_path / "b", 2, server, keys[0]))
    bg_of_a = next(asset for asset in first["campaigns"][0]["assets"] if asset["path"] == "bg.png")

    def alias(body: dict) -> None:
        assets = body["campaigns"][0]["assets"]
        bg_of_c = next(asset for asset in assets if asset["path"] == "bg.png")
        assets.append(bg_of_c | {"path": "./bg.png"})
        bg_of_c.update(bg_of_a)

    report = device.outcome(device.send(signed(c, 3, server, keys[0], alias)))
    assert report["phase"] == "rejected" and "'bg.png' is listed twice" in report["errors"][0], report
    store = tmp_path / "state" / "campaigns" / "store"
    assert all(name == digest for name, digest in blob_digests(store).items())
    assert all(blob.stat().st_mode & 0o222 == 0 for blob in store.iterdir()), "store blobs are read-only"
    assert device.manager.rollback() == 1
    assert (show_now(device.manager.scheduler) / "bg.png").read_bytes() == (a / "bg.png").read_bytes()


def test_a_damaged_store_file_is_downloaded_again_before_it_is_used(tmp_path, server, keys, device_factory) -> None:
    a = make_bundle(tmp_path / "a", "A")
    device = device_factory()
    first = signed(a, 1, server, keys[0])
    device.apply(first)
    bg = next(asset for asset in first["campaigns"][0]["assets"] if asset["path"] == "bg.png")
    store = tmp_path / "state" / "campaigns" / "store"
    damage(store / bg["sha256"])
    requests = len(server.requests)
    device.apply(signed(a, 2, server, keys[0]))  # the same media in a newer version
    assert (show_now(device.manager.scheduler) / "bg.png").read_bytes() == (a / "bg.png").read_bytes()
    assert [path for path, _ in server.requests[requests:]] == ["/bg.png"], "only the damaged file is fetched"
    assert all(name == digest for name, digest in blob_digests(store).items())


def test_rollback_refuses_a_damaged_previous_campaign(tmp_path, server, keys, device_factory) -> None:
    make_bundle(tmp_path / "a", "A")
    make_bundle(tmp_path / "b", "B")
    device = device_factory()
    device.apply(signed(tmp_path / "a", 1, server, keys[0]))
    device.apply(signed(tmp_path / "b", 2, server, keys[0]))
    damage(tmp_path / "state" / "campaigns" / "releases" / "v1" / "bundles" / "a" / "art" / "logo.png")
    with pytest.raises(ApplianceError, match=r"version 1 is damaged: .*logo.png no longer matches its sha256"):
        device.manager.rollback()
    assert device.manager.applied_version == 2
    assert load_bundle(show_now(device.manager.scheduler)).name == "B"


@pytest.mark.parametrize("version", ["9", 2**70, True, 9.5])
def test_a_signed_version_that_is_not_a_64_bit_integer_is_rejected(
        tmp_path, server, keys, device_factory, version) -> None:
    make_bundle(tmp_path / "a", "A")
    device = device_factory()
    document = sign_document({**signed(tmp_path / "a", 1, server, keys[0]), "version": version}, keys[0])
    report = device.outcome(device.send(document))
    assert report["phase"] == "rejected" and "version" in report["errors"][0], report
    assert report["pending_version"] is None and report["applied_version"] == 0
