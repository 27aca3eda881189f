"""The shopper's share page against real services: SeaweedFS holding the photos the booth's own uploader put
(tests/s3server.py), PostgreSQL holding the events ingest's own store wrote, and a real console process
(tests/console_server.py) behind a 'reverse proxy': ``proxy = true``, so each test is a different client address
through X-Forwarded-For and the rate limit of one never touches another.

The console runs at log level debug (its access log on) so that the last test can look for photo ids in it.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
from console_server import Client, ConsoleServer, console_db
from s3server import S3Server, http_get

from appliance.config import Config, PathsConfig, ShareConfig
from appliance.console.ratelimit import FirstSeen, TokenBuckets, client_key
from appliance.digest import photo_tag
from appliance.ops.eventbatch import EventBatch
from appliance.ops.eventstore import PostgresStore
from appliance.share import ShareService, new_photo_id
from appliance.share.credentials import Keys
from appliance.share.store import Store

DEVICE = "mall-01-screen-1"
OTHER = "gare-02-screen-4"
WAIT_S = 2.0
BURST = 12
USED: list[str] = []   # every photo id a test put in a URL, looked for in the log at the end


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"), devices=(DEVICE, OTHER)).start()
    try:
        server.create_bucket()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[ConsoleServer]:
    directory = tmp_path_factory.mktemp("console")
    credentials = s3.admin.write(directory / "storage")
    config = directory / "console.toml"
    config.write_text(f'share_endpoint = "{s3.endpoint_url}"\nshare_bucket = "{s3.bucket}"\n'
                      f'share_credentials = "{credentials}"\nshare_wait_s = {WAIT_S}\nshare_burst = {BURST}\n'
                      'share_rate_per_min = 6\nproxy = true\nlog_level = "debug"\n')
    with console_db() as url:
        console = ConsoleServer(url, directory, "--config", str(config)).start()
        try:
            yield console
        finally:
            console.stop()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "finished.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes * 64 + b"\xff\xd9")
    return path


class Phone(Client):
    """A shopper's phone: its own cookies, seen by the console at ``address`` (the proxy's X-Forwarded-For)."""

    def __init__(self, server: ConsoleServer, address: str) -> None:
        super().__init__(server.base)
        self.address = address

    def get(self, path: str, **headers: str) -> object:
        return self.request(path, headers={"X-Forwarded-For": self.address, **headers})

    def redirect(self, path: str) -> tuple[int, dict[str, str]]:
        """The status and headers of ``path`` without following its redirect."""
        class Stop(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        opener = urllib.request.build_opener(Stop, urllib.request.HTTPCookieProcessor(self.jar))
        try:
            with opener.open(urllib.request.Request(self.base + path, headers={"X-Forwarded-For": self.address}),
                             timeout=30) as answer:
                return answer.status, dict(answer.headers)
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers)


_seq: dict[str, int] = {}


def published(server: ConsoleServer, device: str, *events: tuple[str, dict]) -> None:
    """``events`` (type, data) as ``device`` sent them, parsed and stored by ingest's own code."""
    batch = []
    for kind, data in events:
        _seq[device] = _seq.get(device, 0) + 1
        batch.append({"id": str(uuid.uuid4()), "seq": _seq[device], "type": kind, "data": data,
                      "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds")})
    rows, bad = EventBatch.parse(f"oivis/v1/{device}/events", json.dumps(
        {"device": device, "historical": False, "events": batch}).encode()).check()
    assert bad == []
    store = PostgresStore(server.db)
    try:
        store.write(rows, [])
    finally:
        store.close()


def scans(server: ConsoleServer, photo_id: str) -> list[tuple]:
    with psycopg.connect(server.db) as conn:
        return conn.execute("SELECT device, seq, data->>'campaign', data->>'session' FROM events "
                            "WHERE type = 'qr_scanned' AND data->>'photo_id' = %s", (photo_id,)).fetchall()


def uploaded(s3: S3Server, photo: Path, device: str = DEVICE, labels: dict | None = None, **store: object) -> str:
    """A photo put by the booth's own uploader (``Store.upload``, the queue's call); its id."""
    photo_id = new_photo_id()
    USED.append(photo_id)
    Store(s3.endpoint_url, s3.bucket, "us-east-1", Keys(**vars(s3.devices[device])), device, **store).upload(
        photo_id, photo, labels or {"campaign": "spring", "session": "visit-1"})
    return photo_id


def test_the_operators_page_starts_empty_and_refuses_what_is_not_plain_text_and_https(
        server: ConsoleServer) -> None:
    admin = server.client()
    page = admin.get("/share-pages")
    assert page.status == 200 and "No call to action yet" in page.body and "Add a call to action" in page.body
    for link, problem in (("javascript:alert(1)", "is not an https:// address"),
                          ("http://shop.example.com", "is not an https:// address"),
                          ("https://user@shop.example.com/", "is not an https:// address")):
        refused = admin.post("/share-pages", {"campaign": "spring", "headline": "Hi", "link_url": link})
        assert refused.status == 400 and problem in refused.body
    refused = admin.post("/share-pages", {"campaign": "spring", "headline": "Hi\x07there"})
    assert refused.status == 400 and "control characters" in refused.body
    refused = admin.post("/share-pages", {"campaign": "spring", "headline": "", "body": "text"})
    assert refused.status == 400 and "needs a headline" in refused.body
    assert "No call to action yet" in admin.get("/share-pages").body, "nothing refused was saved"


def test_a_scan_shows_the_photo_and_the_call_to_action_and_counts_once_per_phone(
        server: ConsoleServer, s3: S3Server, photo: Path, tmp_path: Path) -> None:
    admin = server.client()
    admin.get("/share-pages")
    saved = admin.post("/share-pages", {"campaign": "spring", "headline": "Thanks for <b>playing</b>!",
                                        "body": "Show this page at the till.\nToday only.", "coupon": "SPRING10",
                                        "link_label": "Follow the store", "link_url": "https://shop.example.com/f"})
    assert saved.status == 200 and "Thanks for &lt;b&gt;playing&lt;/b&gt;!" in saved.body
    assert "share page saved" in admin.get("/audit").body
    # the booth's whole path: the share service's queue uploads with the labels the kiosk gives it
    credentials = s3.devices[DEVICE].write(tmp_path / "credentials")
    share = ShareService.from_config(Config(device_id=DEVICE, share=ShareConfig(
        endpoint_url=s3.endpoint_url, bucket=s3.bucket, credentials_dir=credentials,
        short_link_base=server.base), paths=PathsConfig(state_dir=tmp_path / "state")), DEVICE, environ={})
    assert share is not None
    try:
        photo_id = new_photo_id()
        USED.append(photo_id)
        ticket = share.submit(photo_id, photo, {"session": "visit-7", "campaign": "spring"})
        deadline = time.monotonic() + 30
        while not share.done(photo_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert share.done(photo_id)
    finally:
        share.stop()
    assert ticket.url == f"{server.base}/p/{photo_id}"
    metadata = s3.admin_client().head_object(Bucket=s3.bucket, Key=f"photos/{DEVICE}/{photo_id}.jpg")["Metadata"]
    assert {key: metadata[key] for key in ("device", "campaign", "session")} == {
        "device": DEVICE, "campaign": "spring", "session": "visit-7"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", metadata["expires"])
    # the events say another campaign: the object's metadata is what counts
    published(server, DEVICE, ("photo_taken", {"photo_id": photo_id, "session": "visit-7", "campaign": "other"}),
              ("photo_shared", {"photo_id": photo_id, "session": "visit-7", "campaign": "other"}))

    phone = Phone(server, "198.51.100.7")
    page = phone.get(f"/p/{photo_id}")
    assert page.status == 200 and "Your photo" in page.body and "Download your photo" in page.body
    assert "Thanks for &lt;b&gt;playing&lt;/b&gt;!" in page.body and "SPRING10" in page.body
    assert 'href="https://shop.example.com/f"' in page.body and "Follow the store" in page.body
    assert f'src="/p/{photo_id}/photo.jpg"' in page.body and "X-Amz-Signature" not in page.body
    headers = {key.lower(): value for key, value in page.headers.items()}
    assert headers["referrer-policy"] == "no-referrer" and "noindex" in headers["x-robots-tag"]
    assert "script-src" not in headers["content-security-policy"] and s3.endpoint_url in headers[
        "content-security-policy"] and headers["cache-control"] == "no-store"

    status, redirect = phone.redirect(f"/p/{photo_id}/photo.jpg")
    assert status == 302 and redirect["location"].startswith(f"{s3.endpoint_url}/{s3.bucket}/photos/{DEVICE}/")
    assert int(re.search(r"X-Amz-Expires=(\d+)", redirect["location"]).group(1)) <= 300
    assert http_get(redirect["location"]) == (200, photo.read_bytes())
    status, download = phone.redirect(f"/p/{photo_id}/photo.jpg?download=1")
    with urllib.request.urlopen(download["location"], timeout=10) as answer:
        assert answer.headers["Content-Disposition"] == 'attachment; filename="photo.jpg"'
        assert answer.read() == photo.read_bytes()

    assert phone.get(f"/p/{photo_id}").status == 200 and phone.get(f"/p/{photo_id}").status == 200
    assert scans(server, photo_id) == [(DEVICE, 0, "spring", "visit-7")], "reloads and the image do not count"
    assert Phone(server, "198.51.100.8").get(f"/p/{photo_id}").status == 200
    assert len(scans(server, photo_id)) == 2, "another phone is another scan"


def test_the_default_call_to_action_serves_campaigns_without_their_own(
        server: ConsoleServer, s3: S3Server, photo: Path) -> None:
    admin = server.client()
    admin.get("/share-pages")
    assert admin.post("/share-pages", {"campaign": "", "headline": "See you soon"}).status == 200
    photo_id = uploaded(s3, photo, OTHER, {"campaign": "winter", "session": None})
    published(server, OTHER, ("photo_shared", {"photo_id": photo_id, "campaign": "winter"}))
    page = Phone(server, "198.51.100.20").get(f"/p/{photo_id}")
    assert page.status == 200 and "See you soon" in page.body and "Thanks for" not in page.body
    assert scans(server, photo_id) == [(OTHER, 0, "winter", None)]


def test_unknown_and_malformed_links_are_not_found(server: ConsoleServer) -> None:
    phone = Phone(server, "198.51.100.30")
    for path in ("/p/short", "/p/" + "a" * 65, "/p/abcdefghijklmnop$q", "/p/abcdefghijklmnopq/other", "/p/"):
        page = phone.get(path)
        assert page.status == 404 and "Photo not found" in page.body, path
        assert page.headers.get("referrer-policy", page.headers.get("Referrer-Policy")) == "no-referrer"
    unknown = new_photo_id()
    USED.append(unknown)
    first = phone.get(f"/p/{unknown}")
    assert first.status == 200 and "Your photo is on its way" in first.body
    assert '<meta http-equiv="refresh" content="5">' in first.body
    time.sleep(WAIT_S + 0.5)
    page = phone.get(f"/p/{unknown}")
    assert page.status == 404 and "Photo not found" in page.body, "named by no event within share_wait_s"
    assert phone.redirect(f"/p/{unknown}/photo.jpg")[0] == 404


def test_a_photo_whose_events_are_late_is_on_its_way_then_shown(
        server: ConsoleServer, s3: S3Server, photo: Path) -> None:
    photo_id = uploaded(s3, photo)
    phone = Phone(server, "198.51.100.40")
    assert "Your photo is on its way" in phone.get(f"/p/{photo_id}").body
    assert scans(server, photo_id) == [], "the wait is not a scan"
    published(server, DEVICE, ("photo_taken", {"photo_id": photo_id, "session": "visit-1", "campaign": "spring"}))
    page = phone.get(f"/p/{photo_id}")
    assert page.status == 200 and "Download your photo" in page.body
    assert scans(server, photo_id) == [(DEVICE, 0, "spring", "visit-1")]
    taken_not_uploaded = new_photo_id()
    USED.append(taken_not_uploaded)
    published(server, DEVICE, ("photo_taken", {"photo_id": taken_not_uploaded, "campaign": "spring"}))
    assert "Your photo is on its way" in phone.get(f"/p/{taken_not_uploaded}").body, "the upload may be retrying"


def test_an_expired_or_deleted_photo_is_gone(server: ConsoleServer, s3: S3Server, photo: Path) -> None:
    expired = uploaded(s3, photo, clock=lambda: time.time() - 2 * 3600, link_expiry_h=1)
    published(server, DEVICE, ("photo_shared", {"photo_id": expired, "campaign": "spring"}))
    phone = Phone(server, "198.51.100.50")
    page = phone.get(f"/p/{expired}")
    assert page.status == 410 and "This photo has expired" in page.body and "deleted as promised" in page.body
    assert phone.redirect(f"/p/{expired}/photo.jpg")[0] == 410
    deleted = new_photo_id()
    USED.append(deleted)
    published(server, DEVICE, ("photo_shared", {"photo_id": deleted, "campaign": "spring"}))
    assert phone.get(f"/p/{deleted}").status == 410, "announced as uploaded, now gone: the lifecycle deleted it"
    assert scans(server, expired) == [] and scans(server, deleted) == []


def test_public_routes_are_rate_limited_per_client_address(server: ConsoleServer) -> None:
    flood = Phone(server, "203.0.113.9")
    assert all(flood.get("/p/short").status == 404 for _ in range(BURST))
    limited = flood.get("/p/short")
    assert limited.status == 429 and "Slow down" in limited.body
    assert int(limited.headers.get("retry-after", limited.headers.get("Retry-After"))) >= 1
    assert Phone(server, "203.0.113.10").get("/p/short").status == 404, "another address is served"
    assert Phone(server, "2001:db8:1:2::9").get("/p/short").status == 404
    same_64 = Phone(server, "2001:db8:1:2::a")
    assert all(same_64.get("/p/short").status == 404 for _ in range(BURST - 1))
    assert same_64.get("/p/short").status == 429, "one /64 is one client"


def test_limits_use_bounded_memory_and_refill_at_their_rate() -> None:
    buckets = TokenBuckets(rate_per_s=0.5, burst=2, max_keys=100)
    assert [buckets.take("a", 0.0), buckets.take("a", 0.0)] == [0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(2.0)
    assert buckets.take("a", 2.0) == 0.0 and buckets.take("a", 2.0) == pytest.approx(2.0)
    for n in range(10_000):
        buckets.take(f"10.0.{n // 256}.{n % 256}", 3.0)
    assert len(buckets) == 100
    seen = FirstSeen(max_keys=100)
    assert seen.since("x", 5.0) == 0.0 and seen.since("x", 9.0) == 4.0
    for n in range(1000):
        seen.since(n, 10.0)
    assert len(seen) == 100
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff") == "2001:db8::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1" and client_key(None) == "unknown"


def test_no_photo_id_reaches_the_consoles_log(server: ConsoleServer) -> None:
    assert USED, "the tests above used photo ids"
    log = server.log.read_text()
    assert '"GET /p/<' in log, "the access log was on and redacted"
    found = [photo_tag(photo_id) for photo_id in USED if photo_id in log]
    assert found == [], f"photo ids (tags {found}) in the console's log"
