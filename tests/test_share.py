"""Sharing a photo by QR code, against a real S3 server (SeaweedFS, tests/s3server.py).

One server for the module (it takes seconds to start); each test has its own state directory.
The storage going away is a TCP proxy in front of it closed and reopened on the same port
(tests/netproxy.py), so the server itself never restarts.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import segno
from netproxy import Proxy
from s3server import S3Server, http_get

from appliance.config import Config, PathsConfig, ShareConfig, load_config
from appliance.errors import ApplianceError
from appliance.share import ShareService, new_photo_id, photo_tag, purge_queue, qr_image
from appliance.share.__main__ import main as share_main
from appliance.share.credentials import Keys, load_keys
from appliance.share.links import check_photo_id, short_link
from appliance.share.qr import QUIET_MODULES
from appliance.share.queue import queue_directory
from appliance.share.store import LIFECYCLE_RULE_ID, StorageError, Store, lifecycle_days

DEVICE = "dev-1"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3"), devices=(DEVICE, "dev-2")).start()
    try:
        server.create_bucket()
        yield server
    finally:
        server.stop()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    image = np.zeros((240, 320, 3), np.uint8)
    cv2.putText(image, "photo", (40, 130), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 200, 255), 3)
    path = tmp_path / "finished.jpg"
    path.write_bytes(cv2.imencode(".jpg", image)[1].tobytes())
    return path


def config(tmp_path: Path, s3: S3Server, endpoint_url: str | None = None, **share: object) -> Config:
    credentials = s3.devices[DEVICE].write(tmp_path / "credentials")
    settings = {"endpoint_url": endpoint_url or s3.endpoint_url, "bucket": s3.bucket,
                "credentials_dir": credentials, **share}
    return Config(device_id=DEVICE, share=ShareConfig(**settings), paths=PathsConfig(state_dir=tmp_path / "state"))


def service(cfg: Config) -> ShareService:
    share = ShareService.from_config(cfg, DEVICE, environ={})
    assert share is not None
    return share


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def queue_files(cfg: Config) -> list[str]:
    return sorted(path.name for path in queue_directory(cfg.paths.state_dir).iterdir())


def record(cfg: Config, photo_id: str) -> dict:
    return json.loads((queue_directory(cfg.paths.state_dir) / f"{photo_id}.json").read_text())


def test_an_uploaded_photo_is_served_by_its_presigned_link_and_leaves_the_device(
        s3: S3Server, tmp_path: Path, photo: Path) -> None:
    cfg = config(tmp_path, s3)
    share = service(cfg)
    try:
        assert wait_for(lambda: share.online)
        photo_id = new_photo_id()
        ticket = share.submit(photo_id, photo, {"session": "visit-1", "campaign": "spring"})
        assert ticket.url.startswith(f"{s3.endpoint_url}/{s3.bucket}/photos/{DEVICE}/")
        assert ticket.url.split("?")[0].endswith(f"/{photo_id}.jpg") and "X-Amz-Signature=" in ticket.url
        assert "X-Amz-Expires=86400" in ticket.url and ticket.url not in repr(ticket)
        assert wait_for(lambda: share.done(photo_id))
        assert http_get(ticket.url) == (200, photo.read_bytes())
        assert queue_files(cfg) == [f"{photo_id}.json"], "the device's copy is deleted once uploaded"
        assert record(cfg, photo_id)["uploaded"] and record(cfg, photo_id)["labels"] == {
            "session": "visit-1", "campaign": "spring"}
        share.announced(photo_id)
        assert wait_for(lambda: record(cfg, photo_id)["announced"]), "the worker writes the announcement"
        assert photo.exists(), "the caller's own file is the caller's"
    finally:
        share.stop()


def test_a_short_link_base_gives_the_operator_link(s3: S3Server, tmp_path: Path, photo: Path) -> None:
    share = service(config(tmp_path, s3, short_link_base="https://go.example.com/"))
    try:
        photo_id = new_photo_id()
        ticket = share.submit(photo_id, photo)
        assert ticket.url == f"https://go.example.com/p/{photo_id}"
        assert wait_for(lambda: share.done(photo_id))
    finally:
        share.stop()


def test_an_expired_link_is_refused(s3: S3Server, photo: Path) -> None:
    store = Store(s3.endpoint_url, s3.bucket, "us-east-1", Keys(**vars(s3.devices[DEVICE])), DEVICE)
    photo_id = new_photo_id()
    store.upload(photo_id, photo)
    short_lived = store.presigned_get(photo_id, 1)
    assert http_get(short_lived)[0] == 200
    time.sleep(2.2)
    status, body = http_get(short_lived)
    assert status == 403 and b"expired" in body.lower()
    assert http_get(store.presigned_get(photo_id, 60)) == (200, photo.read_bytes())


def test_the_credentials_reach_only_the_devices_own_prefix(s3: S3Server, photo: Path) -> None:
    keys = Keys(**vars(s3.devices[DEVICE]))
    as_other = Store(s3.endpoint_url, s3.bucket, "us-east-1", keys, "dev-2")
    with pytest.raises(StorageError, match=r"access denied to oivis-photos/photos/dev-2/"):
        as_other.upload(new_photo_id(), photo)
    with pytest.raises(StorageError, match="access denied"):
        Store(s3.endpoint_url, s3.bucket, "us-east-1", keys, DEVICE).ensure_lifecycle(24)


def test_the_operator_sets_the_lifecycle_rule_once_in_whole_days(
        s3: S3Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    admin = s3.admin.write(tmp_path / "operator")
    command = ["lifecycle", "--endpoint-url", s3.endpoint_url, "--bucket", s3.bucket, "--credentials-dir", str(admin)]
    assert share_main([*command, "--link-expiry-h", "30"]) == 0
    assert "deletes photos/ after 2 day(s) (set)" in capsys.readouterr().out
    rules = s3.admin_client().get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"]
    assert rules == [{"ID": LIFECYCLE_RULE_ID, "Filter": {"Prefix": "photos/"}, "Status": "Enabled",
                      "Expiration": {"Days": 2}}]
    assert share_main([*command, "--link-expiry-h", "30"]) == 0
    assert "(already set)" in capsys.readouterr().out
    assert share_main(command) == 0
    assert s3.admin_client().get_bucket_lifecycle_configuration(Bucket=s3.bucket)["Rules"][0]["Expiration"] == {
        "Days": 1}
    assert share_main([*command[:-2], "--credentials-dir", str(s3.devices[DEVICE].write(tmp_path / "dev"))]) == 1
    assert "access denied" in capsys.readouterr().err, "a device's keys cannot change the bucket"
    assert [lifecycle_days(hours) for hours in (1, 24, 25, 48, 168)] == [1, 1, 2, 2, 7]


def test_storage_down_no_qr_then_back_and_the_queued_photo_is_uploaded(
        s3: S3Server, tmp_path: Path, photo: Path) -> None:
    proxy = Proxy(("127.0.0.1", 0), ("127.0.0.1", s3.ports["s3"])).start()
    port = int(proxy.address.rsplit(":", 1)[1])
    cfg = config(tmp_path, s3, endpoint_url=f"http://127.0.0.1:{port}")
    share = service(cfg)
    try:
        assert wait_for(lambda: share.online)
        proxy.close()
        photo_id = new_photo_id()
        ticket = share.submit(photo_id, photo)
        assert wait_for(lambda: not share.online, 10)
        assert "storage unreachable at http://127.0.0.1:" in (share.problem or "")
        assert wait_for(lambda: queue_files(cfg) == [f"{photo_id}.jpg", f"{photo_id}.json"])
        assert not share.done(photo_id) and not record(cfg, photo_id)["uploaded"]
        proxy = Proxy(("127.0.0.1", port), ("127.0.0.1", s3.ports["s3"])).start()
        assert wait_for(lambda: share.done(photo_id), 20), "uploaded once the storage answers again"
        assert share.online and share.problem is None
        assert http_get(ticket.url) == (200, photo.read_bytes())
    finally:
        share.stop()
        proxy.close()


def test_a_restart_finishes_the_queue(s3: S3Server, tmp_path: Path, photo: Path) -> None:
    down = config(tmp_path, s3, endpoint_url=f"http://127.0.0.1:{closed_port()}")
    share = service(down)
    persisted, submitted = new_photo_id(), new_photo_id()
    share.submit(persisted, photo)
    assert wait_for(lambda: queue_files(down) == [f"{persisted}.jpg", f"{persisted}.json"]), "the worker wrote it"
    share.submit(submitted, photo)
    share.stop()
    assert queue_files(down) == sorted([f"{persisted}.jpg", f"{persisted}.json", f"{submitted}.jpg",
                                        f"{submitted}.json"]), "stop writes what was only in memory"
    queue = queue_directory(down.paths.state_dir)
    (queue / f"{new_photo_id()}.jpg").write_bytes(b"half a submission")  # no JSON: deleted at start
    (queue / f".{new_photo_id()}.json.x1y2.tmp").write_bytes(b"{")       # a write cut short: deleted at start
    lost = new_photo_id()
    (queue / f"{lost}.json").write_text(f'{{"photo_id": "{lost}", "created": {time.time()}}}')  # no photo
    share = service(config(tmp_path, s3))
    try:
        assert wait_for(lambda: share.done(persisted) and share.done(submitted))
        assert queue_files(down) == sorted([f"{persisted}.json", f"{submitted}.json"])
        for photo_id in (persisted, submitted):
            key = f"photos/{DEVICE}/{photo_id}.jpg"
            assert s3.admin_client().get_object(Bucket=s3.bucket, Key=key)["Body"].read() == photo.read_bytes()
    finally:
        share.stop()


def test_a_photo_gone_before_the_worker_copies_it_is_dropped_with_a_warning(
        s3: S3Server, tmp_path: Path, photo: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(tmp_path, s3)
    share = service(cfg)
    try:
        gone, kept = new_photo_id(), new_photo_id()
        ticket = share.submit(gone, tmp_path / "deleted-by-the-caller.jpg")
        assert ticket.url, "the link is computed at submit, before the worker looks at the file"
        share.submit(kept, photo)
        assert wait_for(lambda: share.done(kept))
        assert f"photo {photo_tag(gone)} dropped: its file cannot be read (No such file or directory)" in caplog.text
        assert not share.done(gone) and share.to_announce() == [(kept, {})]
        assert queue_files(cfg) == [f"{kept}.json"]
    finally:
        share.stop()


def test_retention_deletes_the_photo_whatever_happens(
        s3: S3Server, tmp_path: Path, photo: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(tmp_path, s3, endpoint_url=f"http://127.0.0.1:{closed_port()}", retention_min=1.5 / 60)
    share = service(cfg)
    try:
        photo_id = new_photo_id()
        share.submit(photo_id, photo)
        assert wait_for(lambda: f"{photo_id}.jpg" in queue_files(cfg), 6), "taken in by the worker"
        assert wait_for(lambda: queue_files(cfg) == [], 6), "gone after 1.5 s, never uploaded"
        assert f"photo {photo_tag(photo_id)} deleted after retention, never uploaded" in caplog.text
        assert not share.done(photo_id) and share.to_announce() == []
    finally:
        share.stop()


def test_starting_the_service_expires_what_outlived_retention_while_the_device_was_off(
        s3: S3Server, tmp_path: Path, photo: Path) -> None:
    cfg = config(tmp_path, s3, endpoint_url=f"http://127.0.0.1:{closed_port()}")
    queue = queue_directory(cfg.paths.state_dir)
    queue.mkdir(parents=True)
    old, recent = new_photo_id(), new_photo_id()
    for photo_id, created in ((old, time.time() - 3600), (recent, time.time())):
        (queue / f"{photo_id}.jpg").write_bytes(photo.read_bytes())
        (queue / f"{photo_id}.json").write_text(json.dumps({"photo_id": photo_id, "created": created}))
    share = service(cfg)
    try:
        assert wait_for(lambda: queue_files(cfg) == [f"{recent}.jpg", f"{recent}.json"])
    finally:
        share.stop()


def test_purge_queue_deletes_what_an_earlier_run_left_when_sharing_is_off(
        s3: S3Server, tmp_path: Path, photo: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = config(tmp_path, s3, endpoint_url=f"http://127.0.0.1:{closed_port()}")
    assert purge_queue(cfg.paths.state_dir) == 0, "no queue: nothing to do"
    share = service(cfg)
    photo_id = new_photo_id()
    share.submit(photo_id, photo)
    share.stop()
    (queue_directory(cfg.paths.state_dir) / f".{photo_id}.jpg.x1y2.tmp").write_bytes(b"cut short")
    assert len(queue_files(cfg)) == 3
    assert purge_queue(cfg.paths.state_dir) == 3
    assert queue_files(cfg) == []
    assert "share: off; deleted 1 photo(s) and 2 other file(s)" in caplog.text
    assert photo_id not in caplog.text


def test_an_upload_is_announced_with_its_labels_and_its_record_waits_for_that_past_retention(
        s3: S3Server, tmp_path: Path, photo: Path) -> None:
    cfg = config(tmp_path, s3, retention_min=1.0 / 60)
    share = service(cfg)
    photo_id = new_photo_id()
    try:
        share.submit(photo_id, photo, {"session": "visit-7", "campaign": "winter"})
        assert wait_for(lambda: share.done(photo_id))
    finally:
        share.stop()   # stopped before the upload was announced: a crash, a restart
    time.sleep(1.2)
    share = service(cfg)
    try:
        assert share.to_announce() == [(photo_id, {"session": "visit-7", "campaign": "winter"})]
        time.sleep(0.6)
        assert queue_files(cfg) == [f"{photo_id}.json"], "past retention, kept (ids and labels only) until announced"
        share.announced(photo_id)
        assert wait_for(lambda: queue_files(cfg) == [], 5) and share.to_announce() == []
    finally:
        share.stop()


def test_no_log_line_names_a_photo_by_its_id(
        s3: S3Server, tmp_path: Path, photo: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    online = config(tmp_path / "online", s3, short_link_base="https://go.example.com", retention_min=1.0 / 60)
    share = service(online)
    uploaded, missing = new_photo_id(), new_photo_id()
    try:
        share.submit(uploaded, photo)
        share.submit(missing, tmp_path / "no-such.jpg")
        assert wait_for(lambda: share.done(uploaded))
        share.announced(uploaded)
        assert wait_for(lambda: queue_files(online) == [], 5), "the record goes with the retention once announced"
    finally:
        share.stop()
    offline = config(tmp_path / "offline", s3, endpoint_url=f"http://127.0.0.1:{closed_port()}",
                     retention_min=1.5 / 60)
    share = service(offline)
    expired, damaged = new_photo_id(), new_photo_id()
    try:
        share.submit(expired, photo)
        assert wait_for(lambda: f"{expired}.jpg" in queue_files(offline), 6), "taken in by the worker"
        assert wait_for(lambda: queue_files(offline) == [], 6)
    finally:
        share.stop()
    (queue_directory(offline.paths.state_dir) / f"{damaged}.json").write_text("{")
    service(offline).stop()
    lines = {
        uploaded: "uploaded",
        missing: "dropped: its file cannot be read",
        expired: "deleted after retention, never uploaded",
        damaged: "dropping unreadable queue entry of photo",
    }
    for photo_id, said in lines.items():
        assert photo_id not in caplog.text
        assert any(photo_tag(photo_id) in line and said in line for line in caplog.text.splitlines()), said
    assert photo_tag(expired) in caplog.text.split("not uploaded yet: ")[1].splitlines()[0], \
        "a storage failure names the photo by its tag too"
    assert re.fullmatch(r"[0-9a-f]{8}", photo_tag(uploaded)) and photo_tag(uploaded) != photo_tag(missing)


def test_failures_are_one_clear_line_and_never_show_a_secret(
        s3: S3Server, tmp_path: Path, photo: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    keys = s3.devices[DEVICE]
    cfg = config(tmp_path, s3)
    share = service(cfg)
    try:
        ticket = share.submit(new_photo_id(), photo)
        assert wait_for(lambda: share.done(ticket.photo_id))
    finally:
        share.stop()
    wrong = Keys(keys.access_key, keys.secret_key[::-1])
    failures = {
        "refused the credentials (SignatureDoesNotMatch)": Store(s3.endpoint_url, s3.bucket, "us-east-1", wrong,
                                                                 DEVICE),
        "bucket 'no-such-bucket' does not exist": Store(s3.endpoint_url, "no-such-bucket", "us-east-1",
                                                        Keys(s3.admin.access_key, s3.admin.secret_key), DEVICE),
        "storage unreachable at http://127.0.0.1:": Store(f"http://127.0.0.1:{closed_port()}", s3.bucket,
                                                          "us-east-1", Keys(**vars(keys)), DEVICE),
    }
    for expected, store in failures.items():
        with pytest.raises(StorageError) as caught:
            store.probe()
        message = str(caught.value)
        assert expected in message and "\n" not in message
        logging.getLogger("appliance.share").warning("%s", message)
    signature = ticket.url.split("X-Amz-Signature=")[1]
    for secret in (keys.secret_key, keys.access_key, wrong.secret_key, s3.admin.secret_key, signature):
        assert secret not in caplog.text
    assert f"photo {photo_tag(ticket.photo_id)} uploaded" in caplog.text


def test_credentials_come_from_systemd_first_and_never_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "systemd").mkdir()
    (tmp_path / "systemd" / "s3-access-key").write_text("AKSYSTEMD\n")
    (tmp_path / "systemd" / "s3-secret-key").write_text("systemd-secret\n")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "s3-access-key").write_text("AKDEV\n")
    (tmp_path / "dev" / "s3-secret-key").write_text("dev-secret\n")
    keys = load_keys(tmp_path / "dev", {"CREDENTIALS_DIRECTORY": str(tmp_path / "systemd")})
    assert (keys.access_key, keys.secret_key) == ("AKSYSTEMD", "systemd-secret")
    assert "secret" not in repr(keys)
    assert load_keys(tmp_path / "dev", {}).secret_key == "dev-secret"
    with pytest.raises(ApplianceError, match=r"no storage credential 's3-access-key': looked in .*LoadCredential"):
        load_keys(tmp_path / "nowhere", {})
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        ShareConfig(secret_key="in the file")


def test_share_config_defaults_and_errors(tmp_path: Path) -> None:
    share = ShareConfig()
    assert (share.enabled, share.bucket, share.link_expiry_h, share.retention_min, share.short_link_base) == (
        True, None, 24, 10.0, None)
    toml = tmp_path / "appliance.toml"
    toml.write_text('[share]\nbucket = "b-1"\nshort_link_base = "go.example.com"\n')
    with pytest.raises(ApplianceError) as caught:
        load_config(toml, environ={})
    assert "share.short_link_base" in str(caught.value) and "line 3" in str(caught.value)
    assert "not an http:// or https:// URL" in str(caught.value)
    with pytest.raises(ValueError, match="link_expiry_h"):
        ShareConfig(link_expiry_h=169)
    assert ShareService.from_config(Config(), environ={}) is None, "no bucket: sharing off"
    off = Config(share=ShareConfig(enabled=False, bucket="b-1"))
    assert ShareService.from_config(off, environ={}) is None
    missing = Config(share=ShareConfig(bucket="b-1", credentials_dir=tmp_path), paths=PathsConfig(state_dir=tmp_path))
    with pytest.raises(ApplianceError, match="no storage credential"):
        ShareService.from_config(missing, environ={})


def test_photo_ids_are_random_and_safe() -> None:
    ids = {new_photo_id() for _ in range(100)}
    assert len(ids) == 100 and all(check_photo_id(photo_id) for photo_id in ids)
    for bad in ("../../etc/passwd", "short", "a" * 15, "spaces are not ok here"):
        with pytest.raises(ValueError):
            check_photo_id(bad)
    with pytest.raises(ValueError):
        short_link("https://go.example.com", "../x")


@pytest.mark.parametrize("url", [
    "https://go.example.com/p/AbCdEfGhIjKlMnOpQrStUv",
    "https://s3.example.com/oivis-photos/photos/dev-1/AbCdEfGhIjKlMnOpQrStUv.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AK0123456789ABCDEF%2F20261130%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261130T164000Z"
    "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "0123456789abcdef" * 4,
])
def test_the_qr_code_decodes_to_the_link_with_its_quiet_zone(url: str) -> None:
    image = qr_image(url, 480)
    assert image.shape == (480, 480, 3) and image.dtype == np.uint8
    assert set(np.unique(image)) <= {0, 255}
    modules = segno.make_qr(url, error="m", boost_error=False).symbol_size(border=0)[0]
    scale = 480 // (modules + 2 * QUIET_MODULES)
    dark = np.argwhere(image[:, :, 0] == 0)
    assert dark.max(axis=0).tolist() == [v + modules * scale - 1 for v in dark.min(axis=0).tolist()], \
        "whole modules of the same size"
    assert min(dark.min(), 479 - dark.max()) >= QUIET_MODULES * scale, "the quiet zone is white"
    decoded, _, _ = cv2.QRCodeDetectorAruco().detectAndDecode(image)   # the classic detector misses dense codes
    assert decoded == url
    with pytest.raises(ValueError, match="too small"):
        qr_image(url, 60)
