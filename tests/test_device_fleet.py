"""The kiosk with its fleet side, end to end: a real TLS broker, real models, a signed campaign push."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from broker import Broker, Operator, broker_fixture, operator_fixture, pki_fixture, wait_for  # noqa: F401 - fixtures  # noqa: F401 - fixtures
from test_campaigns_device import make_bundle

from appliance.campaigns.signing import load_private_key, sign_document, write_keypair
from appliance.compose import kiosk_session
from appliance.config import Config
from appliance.kiosk.display import DisplayMode
from appliance.ops.build import build
from appliance.ops.serve import make_server
from appliance.service.status import RESTART_STATUS

DEVICE = "mall-07-screen-1"


def run_until(kiosk, condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Drive the render loop (it owns the display) in short bursts until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        kiosk.run(max_frames=kiosk.frames_shown + 3)
    raise AssertionError(f"timed out waiting for {what}")


def test_kiosk_reports_events_and_health_and_shows_a_pushed_campaign(
        tmp_path: Path, broker: Broker, operator: Operator, content_dir: Path) -> None:
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((360, 640, 3), (70, 90, 110), np.uint8))
    _, public, _ = write_keypair(tmp_path / "keys")
    fleet = broker.fleet_config(broker.pki.client(DEVICE))
    config = Config.model_validate({
        "device_id": DEVICE,
        "source": {"uri": f"image:{wall}"},
        "display": {"width": 640, "height": 360},
        "kiosk": {"content": str(content_dir)},
        "fleet": fleet.model_dump(),
        "campaigns": {"trusted_keys": [str(public)], "require_synced_clock": False},
        "paths": {"state_dir": str(tmp_path / "state")},
    })
    topics = f"oivis/v1/{DEVICE}"
    campaign = tmp_path / "campaign"
    make_bundle(campaign / "winter", "Winter")
    server = make_server(build(campaign, "http://unused").files, 0, "127.0.0.1")
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        config_file = tmp_path / "appliance.toml"
        config_file.write_text('[kiosk]\nattract_after_s = 4.0\n')
        with kiosk_session(config, DisplayMode.HEADLESS, config_file) as kiosk:
            assert kiosk.bundle.directory == content_dir
            run_until(kiosk, lambda: any(p["state"] == "ready" for p in operator.payloads(f"{topics}/status")),
                      20, "the device's ready status")
            kiosk.events.publish("marker", {"n": 1})
            events = run_until(kiosk, lambda: {e["type"]: e for batch in operator.payloads(f"{topics}/events")
                                               for e in batch["events"]} if any(
                e["type"] == "marker" for batch in operator.payloads(f"{topics}/events") for e in batch["events"])
                else None, 20, "the marker event")
            assert events["boot"]["seq"] < events["marker"]["seq"]
            health = run_until(kiosk, lambda: [p for p in operator.payloads(f"{topics}/health")
                                               if "segmentation" in p["stages"]], 20, "a health report")[-1]
            assert health["backend"] == "litert" and health["stages"]["segmentation"]["p50"] > 0

            url = f"http://127.0.0.1:{server.server_address[1]}"
            document = sign_document({"version": 1, **build(campaign, url).unsigned()},
                                     load_private_key(tmp_path / "keys" / "operator.key"))
            operator.publish(f"{topics}/state/desired", document, retain=True)
            run_until(kiosk, lambda: kiosk.bundle.name == "Winter", 40, "the kiosk to show the pushed campaign")
            reported = operator.payloads(f"{topics}/state/reported")[-1]
            assert reported["phase"] == "applied" and reported["applied_version"] == 1
            run_until(kiosk, lambda: any(p.get("campaign_version") == 1 for p in operator.payloads(f"{topics}/status")),
                      10, "the status to announce campaign version 1")

            def reply(command: str, **arguments: Any) -> dict:
                cmd_id = str(uuid.uuid4())
                operator.publish(f"{topics}/cmd/{command}", {"cmd_id": cmd_id, **arguments})
                return run_until(kiosk, lambda: next((p for p in operator.payloads(f"{topics}/cmd-res")
                                                      if p["cmd_id"] == cmd_id), None), 20, f"the {command} reply")

            shot = reply("screenshot", width=320)
            png = cv2.imdecode(np.frombuffer(base64.b64decode(shot["png"]), np.uint8), cv2.IMREAD_COLOR)
            assert shot["ok"] and png.shape == (180, 320, 3) and png.std() > 5
            # The campaign's background stops decoding on the device (a failing card, say): the next reload
            # finds it, the campaign side falls back to the bundled default and the fleet sees why.
            background = kiosk.bundle.directory / kiosk.bundle.scenes[0].background
            background.write_bytes(b"not a picture any more")
            assert reply("reload")["ok"]
            run_until(kiosk, lambda: kiosk.bundle.directory == content_dir, 20, "the fall-back to the default")
            alerted = run_until(kiosk, lambda: [p for p in operator.payloads(f"{topics}/status")
                                                if p["state"] == "alert"], 20, "the campaign alert")[-1]
            assert [alert["code"] for alert in alerted["alerts"]] == ["campaign"]
            assert background.name in alerted["alerts"][0]["reason"]
            changed = reply("set-config", set={"kiosk": {"attract_after_s": 6}})
            assert changed["ok"] and changed["restart_required"]
            assert kiosk.run() == RESTART_STATUS
            assert "attract_after_s = 6" in config_file.read_text()
        final = wait_for(lambda: [p for p in operator.payloads(f"{topics}/status") if p["state"] == "offline"],
                         10, "offline on a clean stop")
        assert final[-1]["campaign_version"] == 0   # the broken campaign was left for the bundled default
        wait_for(lambda: any(e["type"] == "shutdown" for batch in operator.payloads(f"{topics}/events")
                             for e in batch["events"]), 10, "the shutdown event")
    finally:
        server.shutdown()
        server.server_close()
