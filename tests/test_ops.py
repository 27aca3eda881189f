"""The operator CLI: keygen, campaign build/serve/push, end to end through a real mosquitto to a device."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError

import pytest
from broker import (  # noqa: F401 - fixtures
    Broker,
    Operator,
    broker_fixture,
    free_port,
    operator_fixture,
    pki_fixture,
    python_env,
    wait_for,
)
from test_campaigns_device import make_bundle, show_now

from appliance.campaigns import CampaignManager
from appliance.campaigns.signing import load_trusted_keys
from appliance.content import load_bundle
from appliance.fleet.link import Link
from appliance.ops.build import build
from appliance.ops.cli import main
from appliance.ops.serve import Unsatisfiable, make_server, requested_range

DEVICE = "mall-01-screen-3"


def run_ops(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "appliance.ops", *map(str, args)], capture_output=True, text=True,
                          env=python_env(), timeout=60)


def test_keygen_writes_a_private_key_only_its_owner_reads_and_refuses_to_overwrite(tmp_path, capsys) -> None:
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 0
    private, public = tmp_path / "keys" / "operator.key", tmp_path / "keys" / "operator.pub"
    assert private.stat().st_mode & 0o777 == 0o600
    key_id = next(iter(load_trusted_keys([public])))
    assert key_id in capsys.readouterr().out
    before = private.read_bytes()
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "--force" in error and error.count("\n") == 1
    assert private.read_bytes() == before
    assert main(["keygen", "--out", str(tmp_path / "keys"), "--force"]) == 0
    assert private.read_bytes() != before


def test_build_writes_the_unsigned_document_of_every_bundle_with_its_schedule(tmp_path, capsys) -> None:
    campaign = tmp_path / "campaign"
    make_bundle(campaign / "winter", "Winter")
    make_bundle(campaign / "sale", "Sale")
    (campaign / "winter" / "notes.txt").write_text("not an asset")
    (campaign / "winter" / "campaign-meta.toml").write_text(
        'id = "winter-2024"\npriority = 10\n[schedule]\nstart = 2024-12-01T00:00:00Z\n'
        'end = 2025-01-06T00:00:00+01:00\ndayparts = ["17:00-01:00"]\ntimezone = "Europe/Paris"\n')
    out = tmp_path / "document.json"
    assert main(["campaign", "build", str(campaign), "--out", str(out), "--asset-base-url", "https://cdn.example/c/"]) == 0
    document = json.loads(out.read_text())
    assert set(document) == {"campaigns"}
    sale, winter = document["campaigns"]
    assert sale["id"] == "sale" and sale["priority"] == 0 and sale["schedule"] == {"dayparts": []}
    assert winter["id"] == "winter-2024" and winter["priority"] == 10
    assert winter["schedule"] == {"start": "2024-12-01T00:00:00Z", "end": "2025-01-05T23:00:00Z",
                                  "dayparts": ["17:00-01:00"], "timezone": "Europe/Paris"}
    assert winter["bundle"] == (campaign / "winter" / "campaign.toml").read_text()
    assert [(a["path"], a["url"]) for a in winter["assets"]] == [
        ("bg.png", "https://cdn.example/c/winter/bg.png"), ("art/logo.png", "https://cdn.example/c/winter/art/logo.png")]
    logo = winter["assets"][1]
    assert logo["size"] == (campaign / "winter" / "art" / "logo.png").stat().st_size and len(logo["sha256"]) == 64
    assert "hashing winter/art/logo.png" in capsys.readouterr().err


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: (d / "bg.png").unlink(), "bg.png does not exist"),
    (lambda d: (d / "campaign-meta.toml").write_text('idd = "x"\n'), "campaign-meta.toml: idd: unknown key"),
    (lambda d: (d / "campaign-meta.toml").write_text('[schedule]\ndayparts = ["late"]\n'), "is not a daypart"),
    (lambda d: (d / "campaign-meta.toml").write_text('id = "Bad Id"\n'), "id: String should match pattern"),
    (lambda d: (d / "campaign.toml").unlink(), "holds no campaign.toml"),
])
def test_build_refuses_a_broken_campaign_in_one_line(tmp_path, capsys, setup, message) -> None:
    bundle = make_bundle(tmp_path / "campaign", "Broken")
    setup(bundle)
    assert main(["campaign", "build", str(bundle)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1, error


def test_requested_range_parsing() -> None:
    assert requested_range(None, 100) is None
    assert requested_range("bytes=10-", 100) == (10, 99)
    assert requested_range("bytes=10-19", 100) == (10, 19)
    assert requested_range("bytes=90-500", 100) == (90, 99)
    assert requested_range("bytes=-30", 100) == (70, 99)
    assert requested_range("bytes=0-1,5-6", 100) is None  # multiple ranges: the whole file
    for unsatisfiable in ("bytes=100-", "bytes=20-10", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            requested_range(unsatisfiable, 100)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    bundle = make_bundle(tmp_path / "campaign", "Served", video_bytes=5000)
    (bundle / "operator.key").write_text("secret")
    server = make_server(build(bundle, "http://unused").files, 0, "127.0.0.1")
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bundle
    finally:
        server.shutdown()
        server.server_close()


def test_serve_answers_ranges_and_serves_only_the_campaign_assets(served) -> None:
    url, bundle = served
    clip = (bundle / "clip.mp4").read_bytes()
    with urllib.request.urlopen(f"{url}/clip.mp4") as response:
        assert response.status == 200 and response.read() == clip and response.headers["Accept-Ranges"] == "bytes"
    request = urllib.request.Request(f"{url}/clip.mp4", headers={"Range": "bytes=4000-"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 206 and response.read() == clip[4000:]
        assert response.headers["Content-Range"] == "bytes 4000-4999/5000"
    for path, status in (("/operator.key", 404), ("/campaign.toml", 404), ("/../campaign/clip.mp4", 404)):
        with pytest.raises(HTTPError) as failure:
            urllib.request.urlopen(f"{url}{path}")
        assert failure.value.code == status, path
    with pytest.raises(HTTPError) as failure:
        urllib.request.urlopen(urllib.request.Request(f"{url}/clip.mp4", headers={"Range": "bytes=5000-"}))
    assert failure.value.code == 416


def test_push_errors_are_one_line(tmp_path) -> None:
    bundle = make_bundle(tmp_path / "campaign", "Errors")
    (tmp_path / "not-a-key").write_text("nope")
    result = run_ops("campaign", "push", bundle, "--version", "1", "--key", tmp_path / "not-a-key",
                     "--device", DEVICE, "--broker", "127.0.0.1:1", "--no-tls")
    assert result.returncode == 1 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "not an unencrypted PEM private key" in result.stderr
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 0
    result = run_ops("campaign", "push", bundle, "--version", "1", "--key", tmp_path / "keys" / "operator.key",
                     "--device", DEVICE, "--broker", f"127.0.0.1:{free_port()}", "--no-tls")
    assert result.returncode == 1 and "cannot reach the broker" in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ")


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    campaign = tmp_path / "campaign"
    make_bundle(campaign / "winter", "Winter", video_bytes=200_000)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "appliance.ops", "campaign", "serve", str(campaign),
                                "--port", str(port)], env=python_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return process.poll() is not None

    wait_for(listening, 20, "campaign serve to listen")
    assert process.poll() is None, "campaign serve exited"
    try:
        yield process, port, campaign
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_keygen_build_serve_push_to_a_real_broker_and_a_device_applies_it(
        tmp_path, broker: Broker, operator: Operator, serve_process) -> None:
    _, port, campaign = serve_process
    assert run_ops("keygen", "--out", tmp_path / "keys").returncode == 0
    built = run_ops("campaign", "build", campaign, "--asset-base-url", f"http://127.0.0.1:{port}")
    assert built.returncode == 0 and json.loads(built.stdout)["campaigns"][0]["id"] == "winter"

    default = make_bundle(tmp_path / "default", "Default")
    link = Link(DEVICE, broker.fleet_config(broker.pki.client(DEVICE)), tmp_path / "device")
    manager = CampaignManager(tmp_path / "device", [str(tmp_path / "keys" / "operator.pub")],
                              lambda payload: link.publish(link.topics.reported, payload, qos=1, retain=True),
                              default_bundle=default, clock_synced=lambda: True)
    link.subscribe(link.topics.desired, manager.on_desired)
    link.start()
    manager.start()
    try:
        assert link.wait_connected(10)
        wait_for(lambda: operator.on(link.topics.status), what="the device's retained status")
        key = tmp_path / "keys" / "operator.key"
        base = ["--asset-base-url", f"http://127.0.0.1:{port}", *broker.operator_options()]
        pushed = run_ops("campaign", "push", campaign, "--version", "1", "--key", key, "--device", DEVICE, *base)
        assert pushed.returncode == 0, pushed.stderr
        assert f"published version 1 to oivis/v1/{DEVICE}/state/desired" in pushed.stderr

        def reported(version: int) -> dict | None:
            return next((p for p in operator.payloads(link.topics.reported)
                         if p["phase"] == "applied" and p["applied_version"] == version), None)

        assert wait_for(lambda: reported(1), 20, "applied version 1 on state/reported") == {
            "applied_version": 1, "pending_version": None, "phase": "applied", "progress": 1.0, "errors": []}
        bundle = show_now(manager.scheduler)
        assert load_bundle(bundle).name == "Winter"
        assert (bundle / "clip.mp4").read_bytes() == (campaign / "winter" / "clip.mp4").read_bytes()
        late = Operator(broker, subscriptions=(link.topics.desired,), client_id="late-reader")
        try:
            retained = wait_for(lambda: late.on(link.topics.desired), what="the retained desired state")[0]
            assert retained.retain and json.loads(retained.payload)["version"] == 1
        finally:
            late.close()

        site = run_ops("campaign", "push", campaign, "--version", "2", "--key", key, "--site", "mall-01", *base)
        assert site.returncode == 0, site.stderr
        assert "pushed to 1 device(s)" in site.stdout
        wait_for(lambda: reported(2), 20, "applied version 2 after a --site push")
        nobody = run_ops("campaign", "push", campaign, "--version", "3", "--key", key, "--site", "mall-99", *base)
        assert nobody.returncode == 1 and "no devices of site mall-99" in nobody.stderr
    finally:
        manager.stop()
        link.stop()
