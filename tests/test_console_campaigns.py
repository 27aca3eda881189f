"""The console's campaigns against a real console process, PostgreSQL, mosquitto, ingest and a simulated screen.

The campaign is the bundled demo (``content/default``, drawn by the project's own generator) zipped here as an
operator would zip the folder.  The screen is ``python -m appliance.console.simscreen``: the device's own fleet
code (signature check with its trusted key, downloads from the console's ``/assets/``, activation,
``state/reported``), whose reports reach the console's database through ``python -m appliance.ops ingest``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest
from broker import Broker, Pki, pki_fixture, python_env, wait_for  # noqa: F401 - fixtures
from console_server import Client, ConsoleServer, Response, console_db

from appliance.campaigns.signing import write_keypair
from appliance.console import campaignstore
from appliance.console.simscreen import write_config
from appliance.ops.testbroker import MOSQUITTO, OPERATOR, free_port

DEVICE = "demo-mall-screen-1"


@dataclass
class Fleet:
    broker: Broker
    console: ConsoleServer
    db: str
    private: Path
    public: Path
    root: Path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Fleet]:
    """A broker, ingest into a throw-away database, and the console on both (with its signing key)."""
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    root = tmp_path_factory.mktemp("campaigns")
    broker = Broker(root / "broker", pki).start()
    try:
        with console_db() as url:
            private, public, _ = write_keypair(root / "keys")
            log = root / "ingest.log"
            ingest = subprocess.Popen([sys.executable, "-m", "appliance.ops", "ingest",
                                       *broker.operator_options(pki.service("ingest")), "--db", url],
                                      stdout=log.open("ab"), stderr=subprocess.STDOUT, env=python_env())
            try:
                wait_for(lambda: "ingesting " in log.read_text(), 30, "ingest's subscription")
                operator = pki.service(OPERATOR)
                console = ConsoleServer(url, root / "console", "--broker", broker.operator_address, "--ca",
                                        str(operator.ca), "--cert", str(operator.cert), "--key-file",
                                        str(operator.key), "--signing-key", str(private)).start()
                try:
                    yield Fleet(broker, console, url, private, public, root)
                finally:
                    console.stop()
            finally:
                ingest.send_signal(signal.SIGTERM)
                ingest.wait(20)
    finally:
        broker.stop()


def zipped(folder: Path, arcroot: str | None = None) -> bytes:
    """``folder`` zipped as an operator zips it (the folder itself at the top)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"{arcroot or folder.name}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


def upload(client: Client, name: str, data: bytes) -> Response:
    """POST the zip as the upload form does (multipart, the page's CSRF token)."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{client.csrf()}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="{name}"\r\n'
            "Content-Type: application/zip\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(client.base + "/campaigns", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(client.jar))
    try:
        with opener.open(request, timeout=120) as answer:
            response = Response(answer.status, answer.url, answer.read().decode("utf-8", "replace"),
                                dict(answer.headers))
    except urllib.error.HTTPError as error:
        response = Response(error.code, error.url, error.read().decode("utf-8", "replace"), dict(error.headers))
    client.last = response.body
    return response


def fetch(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, Message, bytes]:
    """An anonymous request, as a screen makes it; the answer's headers by any case of their names."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}, method=method),
                                    timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def new_user(admin: Client, server: ConsoleServer, name: str, role: str, timezone: str = "") -> Client:
    admin.get("/users")
    created = admin.post("/users", {"name": name, "role": role})
    password = re.search(r'<code class="secret">([^<]+)</code>', created.body).group(1)
    client = server.client(login=False)
    assert client.login(name, password, timezone).status == 200
    return client


def stored_uploads(server: ConsoleServer) -> list[str]:
    directory = server.data_dir / "campaigns"
    return sorted(path.name for path in directory.iterdir()) if directory.is_dir() else []


def rows(url: str, query: str, *args: object) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, args).fetchall()


# -- tests, in the order an operator meets the pages -------------------------------------------------------------


def test_an_empty_console_says_how_to_make_a_campaign_and_shows_the_public_key(fleet: Fleet) -> None:
    page = fleet.console.client().get("/campaigns")
    assert page.status == 200
    assert "No campaign uploaded yet." in page.body and "content/default" in page.body and "zip -r" in page.body
    public = campaignstore.signing_key(fleet.private).public
    assert public and public in page.body and "trusted_keys" in page.body
    assert "Upload and check" in page.body


def test_the_demo_campaign_uploads_with_its_worlds_and_assets_as_cached_thumbnails(
        fleet: Fleet, content_dir: Path) -> None:
    client = fleet.console.client()
    client.get("/campaigns")
    answer = upload(client, "default.zip", zipped(content_dir))
    assert answer.status == 200 and "/campaigns/" in answer.url, answer.body[-2000:]
    page = answer.body
    for title in ("Let it snow", "You are the star", "Under the northern lights"):  # the three worlds
        assert title in page
    assert "OIVIS winter demo" in page and "rps.star_image" in page and "pose.poses[0].image" in page
    thumbs = re.findall(r'src="(/campaigns/[0-9a-f]{12}/thumbs/[0-9a-f]+\.png)"', page)
    assert len(set(thumbs)) >= 8
    picture = client.request(thumbs[0])
    assert picture.status == 200 and picture.headers["content-type"] == "image/png"
    raw = fetch_logged_in(client, thumbs[0])
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.shape[1] <= 320 and image.shape[0] <= 180
    upload_id = thumbs[0].split("/")[2]
    cached = fleet.console.data_dir / "campaigns" / upload_id / "thumbs"
    assert len(list(cached.glob("*.png"))) >= 8
    assert "Sign and push" not in page or "No screen has reported yet." in page  # no screen yet: nothing to push to
    listing = client.get("/campaigns").body
    assert "OIVIS winter demo" in listing and "never pushed" in listing


def fetch_logged_in(client: Client, path: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(client.jar))
    with opener.open(client.base + path, timeout=30) as answer:
        return answer.read()


def test_zip_bombs_traversal_links_and_an_invalid_campaign_are_refused_and_nothing_is_kept(
        fleet: Fleet, content_dir: Path, tmp_path: Path) -> None:
    client = fleet.console.client()
    before = stored_uploads(fleet.console)

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("sale/campaign.toml", 'name = "x"\n')
        archive.writestr("sale/bg.png", b"\0" * (40 * 1024 * 1024))
    client.get("/campaigns")
    refused = upload(client, "bomb.zip", bomb.getvalue())
    assert refused.status == 400 and "zip bomb" in refused.body and "bomb.zip was not uploaded" in refused.body

    liar = io.BytesIO()  # declares 3 GB in its directory: refused before a byte is written
    with zipfile.ZipFile(liar, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("sale/campaign.toml", 'name = "x"\n')
    data = bytearray(liar.getvalue())
    central = data.index(b"PK\x01\x02")
    data[central + 24:central + 28] = struct.pack("<I", 3 * 1024 ** 3)
    refused = upload(client, "huge.zip", bytes(data))
    assert refused.status == 400 and "over the limit of 2048 MB" in refused.body

    traversal = io.BytesIO()
    with zipfile.ZipFile(traversal, "w") as archive:
        archive.writestr("sale/campaign.toml", 'name = "x"\n')
        archive.writestr("../../escaped.txt", "owned")
    refused = upload(client, "traversal.zip", traversal.getvalue())
    assert refused.status == 400 and "points outside the campaign folder" in refused.body
    assert not (fleet.console.data_dir / "escaped.txt").exists()

    link = io.BytesIO()
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("sale/bg.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    refused = upload(client, "link.zip", link.getvalue())
    assert refused.status == 400 and "symbolic link" in refused.body

    bad = tmp_path / "sale"
    shutil.copytree(content_dir, bad)
    text = (bad / "campaign.toml").read_text()
    (bad / "campaign.toml").write_text(text.replace("feather_px = 4", "feathr_px = 4", 1))
    line = next(number for number, content in enumerate((bad / "campaign.toml").read_text().splitlines(), 1)
                if content.startswith("feathr_px"))
    refused = upload(client, "sale.zip", zipped(bad))
    assert refused.status == 400
    assert re.search(rf"<code>sale/campaign.toml</code></td><td><code>scenes\[1\].feathr_px</code></td>\s*"
                     rf'<td class="num">{line}</td><td>unknown key</td>', refused.body), refused.body[-3000:]

    (bad / "campaign.toml").write_text(text)
    (bad / "stage.png").write_bytes((bad / "stage.png").read_bytes()[:5000])  # a world that does not decode
    refused = upload(client, "sale.zip", zipped(bad))
    assert refused.status == 400 and "<code>sale/stage.png</code>" in refused.body and "truncated PNG" in refused.body

    assert stored_uploads(fleet.console) == before  # nothing kept, no staging left
    assert "sale.zip" not in client.get("/campaigns").body.split("Uploaded campaigns")[1]


def test_a_viewer_sees_campaigns_but_cannot_upload_or_push(fleet: Fleet, content_dir: Path) -> None:
    admin = fleet.console.client()
    viewer = new_user(admin, fleet.console, "vic", "viewer")
    page = viewer.get("/campaigns")
    assert page.status == 200 and "Upload and check" not in page.body
    upload_id = rows(fleet.db, "SELECT id FROM console_campaigns ORDER BY uploaded_at LIMIT 1")[0][0]
    preview = viewer.get(f"/campaigns/{upload_id}")
    assert preview.status == 200 and "Let it snow" in preview.body and "Sign and push" not in preview.body
    assert upload(viewer, "default.zip", zipped(content_dir)).status == 403
    answer = viewer.post(f"/campaigns/{upload_id}/push", {"target": "all"})
    assert answer.status == 403 and "needs the operator role" in answer.body
    assert rows(fleet.db, "SELECT count(*) FROM console_pushes")[0][0] == 0


@pytest.fixture(scope="module")
def screen(fleet: Fleet, content_dir: Path) -> Iterator[subprocess.Popen]:
    """A simulated screen trusting the console's key, registered by ingest."""
    identity = fleet.broker.pki.client(DEVICE)
    settings = fleet.broker.fleet_config(identity).model_dump(exclude_defaults=True)
    config = write_config(fleet.root / "screen" / "appliance.toml", DEVICE, settings, fleet.public,
                          fleet.root / "screen" / "state", content_dir)
    log = fleet.root / "screen.log"
    process = subprocess.Popen([sys.executable, "-m", "appliance.console.simscreen", "--config", str(config),
                                "--sessions-per-minute", "6"], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                               env=python_env())
    try:
        wait_for(lambda: rows(fleet.db, "SELECT 1 FROM devices WHERE device = %s AND reported IS NOT NULL",
                              DEVICE), 60, "the screen in the device registry")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_push_signed_by_the_console_is_applied_by_a_real_screen_and_the_rollout_shows_it(
        fleet: Fleet, screen: subprocess.Popen) -> None:
    admin = fleet.console.client()
    olga = new_user(admin, fleet.console, "olga", "operator", timezone="America/New_York")
    upload_id = rows(fleet.db, "SELECT id FROM console_campaigns ORDER BY uploaded_at LIMIT 1")[0][0]
    preview = olga.get(f"/campaigns/{upload_id}")
    assert "Sign and push" in preview.body and "America/New_York" in preview.body
    answer = olga.post(f"/campaigns/{upload_id}/push", {
        "target": "screen", "device": DEVICE, "site": "", "start:default": "2020-01-01T09:00",
        "end:default": "2099-01-01T00:00", "priority:default": "5"})
    assert answer.status == 200 and "/campaigns/pushes/" in answer.url, answer.body[-2000:]
    assert "Rollout of version 1" in answer.body
    assert "priority 5, shows from 2020-01-01 09:00" in answer.body and "until 2099-01-01 00:00" in answer.body
    push_id = answer.url.rsplit("/", 1)[1]

    def applied() -> bool:
        return 'data-status="applied"><div class="n">1<' in olga.get(f"/campaigns/pushes/{push_id}",
                                                                    **{"X-Fragment": "1"}).body
    wait_for(applied, 90, "the rollout page showing the screen applied")
    fragment = olga.get(f"/campaigns/pushes/{push_id}", **{"X-Fragment": "1"}).body
    assert f'data-device="{DEVICE}"' in fragment and '<span class="pill ok">applied</span>' in fragment
    assert "<html" not in fragment  # a fragment for the live refresh

    reported = rows(fleet.db, "SELECT reported FROM devices WHERE device = %s", DEVICE)[0][0]
    assert reported["applied_version"] == 1 and reported["phase"] == "applied"
    document = rows(fleet.db, "SELECT document FROM console_pushes WHERE id = %s", int(push_id))[0][0]
    entry = document["campaigns"][0]
    assert entry["priority"] == 5
    assert entry["schedule"]["start"] == "2020-01-01T14:00:00Z"  # 09:00 in New York
    assert entry["schedule"]["end"] == "2099-01-01T05:00:00Z"
    assert all(asset["url"].startswith(f"{fleet.console.base}/assets/{upload_id}/") for asset in entry["assets"])

    audit = admin.get("/audit").body
    entry = re.search(r"<tr><td>[^<]*</td><td>olga</td><td><code>campaign.push</code></td>.*?</tr>", audit, re.S)
    assert entry and "<b>version</b> 1<" in entry.group(0) and DEVICE in entry.group(0), audit[-3000:]

    olga.get(f"/campaigns/{upload_id}")
    again = olga.post(f"/campaigns/{upload_id}/push", {"target": "site", "site": "demo-mall", "device": ""})
    assert "Rollout of version 2" in again.body  # above every version pushed and reported
    wait_for(lambda: rows(fleet.db, "SELECT reported->'applied_version' FROM devices WHERE device = %s",
                          DEVICE)[0][0] == 2, 90, "version 2 applied")


def test_assets_are_served_with_range_etag_and_only_when_a_pushed_document_lists_them(fleet: Fleet) -> None:
    document = rows(fleet.db, "SELECT document FROM console_pushes ORDER BY version DESC LIMIT 1")[0][0]
    asset = max(document["campaigns"][0]["assets"], key=lambda a: a["size"])
    status, headers, body = fetch(asset["url"])
    assert status == 200 and len(body) == asset["size"] and headers["ETag"] == f'"{asset["sha256"]}"'
    status, headers, part = fetch(asset["url"], {"Range": "bytes=100-1099"})
    assert status == 206 and part == body[100:1100] and headers["Content-Range"] == f"bytes 100-1099/{asset['size']}"
    status, _, tail = fetch(asset["url"], {"Range": "bytes=-10"})
    assert status == 206 and tail == body[-10:]
    status, headers, _ = fetch(asset["url"], {"Range": f"bytes={asset['size']}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{asset['size']}"
    status, headers, empty = fetch(asset["url"], method="HEAD")
    assert status == 200 and headers["Content-Length"] == str(asset["size"]) and empty == b""
    assert fetch(asset["url"], {"If-None-Match": f'"{asset["sha256"]}"'})[0] == 304
    base = asset["url"].rsplit("/", 1)[0]
    assert fetch(f"{base}/campaign.toml")[0] == 404  # in the folder, not an asset
    assert fetch(f"{base}/..%2F..%2Ffirst-run-password")[0] == 404
    never_pushed = f"{fleet.console.base}/assets/{'0' * 12}/{asset['url'].rsplit('/', 1)[1]}"
    assert fetch(never_pushed)[0] == 404


def test_an_upload_never_pushed_can_be_deleted_and_a_pushed_one_stays(fleet: Fleet, tmp_path: Path) -> None:
    folder = tmp_path / "spring"
    folder.mkdir()
    cv2.imwrite(str(folder / "bg.png"), np.full((90, 160, 3), (40, 160, 40), np.uint8))
    (folder / "campaign.toml").write_text('name = "Spring"\n[[scenes]]\nid = "main"\ntitle = "Spring"\n'
                                          'background = "bg.png"\n')
    client = fleet.console.client()
    client.get("/campaigns")
    answer = upload(client, "spring.zip", zipped(folder))
    assert answer.status == 200 and "Delete this upload" in answer.body
    upload_id = answer.url.rsplit("/", 1)[1]
    assert upload_id in stored_uploads(fleet.console)
    deleted = client.post(f"/campaigns/{upload_id}/delete")
    assert deleted.status == 200 and "Spring" not in deleted.body.split("Uploaded campaigns")[1]
    assert upload_id not in stored_uploads(fleet.console)
    pushed = rows(fleet.db, "SELECT upload FROM console_pushes LIMIT 1")[0][0]
    client.get(f"/campaigns/{pushed}")
    refused = client.post(f"/campaigns/{pushed}/delete")
    assert refused.status == 400 and "it stays" in refused.body and pushed in stored_uploads(fleet.console)
    audit = client.get("/audit").body
    assert "campaign.delete" in audit and "campaign.upload" in audit


def test_a_group_readable_key_is_refused_with_the_chmod_and_nothing_is_recorded(fleet: Fleet) -> None:
    admin = fleet.console.client()
    upload_id = rows(fleet.db, "SELECT id FROM console_campaigns ORDER BY uploaded_at LIMIT 1")[0][0]
    pushes = rows(fleet.db, "SELECT count(*) FROM console_pushes")[0][0]
    os.chmod(fleet.private, 0o640)
    try:
        page = admin.get("/campaigns").body
        assert f"run `chmod 600 {fleet.private}`" in page
        admin.get(f"/campaigns/{upload_id}")
        answer = admin.post(f"/campaigns/{upload_id}/push", {"target": "screen", "device": DEVICE})
        assert answer.status == 400 and "readable by others" in answer.body
    finally:
        os.chmod(fleet.private, 0o600)
    assert rows(fleet.db, "SELECT count(*) FROM console_pushes")[0][0] == pushes


def test_an_unreachable_broker_is_said_and_nothing_is_recorded(fleet: Fleet, tmp_path: Path) -> None:
    operator = fleet.broker.pki.service(OPERATOR)
    console = ConsoleServer(fleet.db, tmp_path / "console", "--broker", f"127.0.0.1:{free_port()}", "--ca",
                            str(operator.ca), "--cert", str(operator.cert), "--key-file", str(operator.key),
                            "--signing-key", str(fleet.private))
    shutil.copytree(fleet.console.data_dir / "campaigns", tmp_path / "console" / "campaigns")
    console.start()
    try:
        client = Client(console.base)
        assert client.login("admin", fleet.console.admin_password()).status == 200
        upload_id = rows(fleet.db, "SELECT id FROM console_campaigns ORDER BY uploaded_at LIMIT 1")[0][0]
        pushes = rows(fleet.db, "SELECT count(*) FROM console_pushes")[0][0]
        page = client.get(f"/campaigns/{upload_id}")
        assert "not reachable right now" in page.body
        answer = client.post(f"/campaigns/{upload_id}/push", {"target": "screen", "device": DEVICE})
        assert answer.status == 400 and "broker is not reachable" in answer.body
        assert rows(fleet.db, "SELECT count(*) FROM console_pushes")[0][0] == pushes
    finally:
        console.stop()


def test_a_campaign_of_several_bundles_names_each_bundles_problems_and_keeps_nothing(tmp_path: Path) -> None:
    """Several bundles in one zip (``campaign build``'s directory of bundles): every bundle's problem comes back
    with its own file, key and line, and nothing stays on disk."""
    folder = tmp_path / "winter"
    for name, mistake in (("north", "colour = 3"), ("south", 'name = "South"\nname_typo = 1')):
        bundle = folder / name
        bundle.mkdir(parents=True)
        cv2.imwrite(str(bundle / "bg.png"), np.zeros((90, 160, 3), np.uint8))
        (bundle / "campaign.toml").write_text(f'name = "{name}"\n[[scenes]]\nid = "main"\ntitle = "{name}"\n'
                                              f'background = "bg.png"\n{mistake}\n')
    data = tmp_path / "data"
    with pytest.raises(campaignstore.Refused) as refused:
        campaignstore.store(data, io.BytesIO(zipped(folder)), "winter.zip", "http://console.example")
    found = {(problem.file, problem.key, problem.line, problem.message) for problem in refused.value.problems}
    assert ("winter/north/campaign.toml", "scenes[0].colour", 6, "unknown key") in found, found
    assert ("winter/south/campaign.toml", "scenes[0].name_typo", 7, "unknown key") in found, found
    assert [path.name for path in (data / "campaigns").iterdir()] == []


def test_a_key_readable_by_others_is_refused_unless_systemd_hands_it_over_as_a_credential(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file's mode is the rule, but systemd's credential copy is root's with an ACL for the service's user (its
    mask shows as group bits): private by systemd, accepted in ``$CREDENTIALS_DIRECTORY`` only."""
    private, _, key_id = write_keypair(tmp_path / "credentials")
    os.chmod(private, 0o440)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    refused = campaignstore.signing_key(private)
    assert refused.public is None and f"run `chmod 600 {private}`" in refused.problem
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
    assert campaignstore.signing_key(private).key_id == key_id
    elsewhere, _, _ = write_keypair(tmp_path / "elsewhere")
    os.chmod(elsewhere, 0o644)
    assert campaignstore.signing_key(elsewhere).public is None


def test_a_push_to_a_screen_that_is_away_shows_it_offline(fleet: Fleet, screen: subprocess.Popen) -> None:
    screen.send_signal(signal.SIGTERM)
    assert screen.wait(30) == 0
    wait_for(lambda: rows(fleet.db, "SELECT status->>'state' FROM devices WHERE device = %s", DEVICE)[0][0]
             == "offline", 30, "ingest storing the screen's offline status")
    client = fleet.console.client()
    upload_id = rows(fleet.db, "SELECT upload FROM console_pushes LIMIT 1")[0][0]
    client.get(f"/campaigns/{upload_id}")
    answer = client.post(f"/campaigns/{upload_id}/push", {"target": "screen", "device": DEVICE})
    assert "Rollout of version 3" in answer.body
    assert '<span class="pill warn">offline</span>' in answer.body and "gets the campaign when it is back" in answer.body
    assert 'data-status="offline"><div class="n">1<' in answer.body
