"""Device commands end to end: the operator's ``command send`` ↔ a CommandHandler on a real Link (tests/broker.py)."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from broker import (  # noqa: F401 - fixtures
    Broker,
    Operator,
    broker_fixture,
    operator_fixture,
    pki_fixture,
    wait_for,
)

from appliance.config import load_config
from appliance.errors import ApplianceError
from appliance.fleet.commands import CommandHandler
from appliance.fleet.device_commands import device_commands
from appliance.fleet.link import Delivery, Link
from appliance.fleet.recent import RecentCommands, Signature, Taken
from appliance.fleet.screenshot import encode_within
from appliance.ops.cli import main

DEVICE = "screen-a"
ORIGINAL_CONFIG = '# provisioned by the technician\ndevice_id = "screen-a"\n\n[kiosk]\nattract_after_s = 4.0\n'


def screen_image(width: int = 1280, height: int = 720) -> np.ndarray:
    """A BGR picture with structure in both directions, so a wrong scale or channel order shows."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.dstack([(xs * 255 // width), (ys * 255 // height), ((xs + ys) % 256)]).astype(np.uint8)


@dataclass
class Device:
    """A device's command side as the kiosk wires it, with its injected effects recorded."""

    broker: Broker
    state_dir: Path
    config_path: Path
    frame: np.ndarray = field(default_factory=screen_image)
    reloads: int = 0
    restarts: int = 0
    versions: list[int] = field(default_factory=lambda: [0, 2])
    runs: list[tuple[list[str], bool]] = field(default_factory=list)
    replies: list[Delivery] = field(default_factory=list)
    link: Link | None = None
    handler: CommandHandler | None = None

    def start(self) -> Device:
        self.link = Link(DEVICE, self.broker.fleet_config(self.broker.pki.client(DEVICE)), self.state_dir)
        publish = self.link.publish

        def recording_publish(topic: str, payload: dict, *args, **kwargs) -> Delivery:
            delivery = publish(topic, payload, *args, **kwargs)
            if topic.endswith("/cmd-res"):
                self.replies.append(delivery)
            return delivery

        self.link.publish = recording_publish
        commands = device_commands(screen=lambda: self.frame.copy(), reload=self._reload, restart=self._restart,
                                   config_path=self.config_path, rollback=self._rollback, run=self._run)
        self.handler = CommandHandler(self.link, self.state_dir).start()
        self.link.start()
        self.handler.serve(commands)
        assert self.link.wait_connected(10)
        return self

    def stop(self) -> None:
        if self.handler:
            self.handler.stop()
        if self.link:
            self.link.stop(timeout=1)

    def _reload(self) -> None:
        self.reloads += 1

    def _restart(self) -> None:
        self.restarts += 1

    def _rollback(self) -> int:
        """The manager's rollback: the version now current, or why there is nothing to return to."""
        if not self.versions:
            raise ApplianceError("nothing to roll back: the bundled default is already active")
        return self.versions.pop()

    def _run(self, argv: Sequence[str]) -> None:
        latest = self.replies[-1]
        self.runs.append((list(argv), latest.done and latest.ok))


@pytest.fixture
def device(broker: Broker, tmp_path: Path) -> Iterator[Device]:
    config_path = tmp_path / "etc" / "appliance.toml"
    config_path.parent.mkdir()
    config_path.write_text(ORIGINAL_CONFIG)
    running = Device(broker, tmp_path / "state", config_path).start()
    try:
        yield running
    finally:
        running.stop()


def send(broker: Broker, capsys: pytest.CaptureFixture[str], name: str, *args: str | Path) -> tuple[int, dict, str]:
    """``python -m appliance.ops command send`` in this process: exit status, printed reply, stderr."""
    code = main(["command", "send", name, "--device", DEVICE, *broker.operator_options(), "--timeout", "15",
                 *map(str, args)])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else {}, captured.err


def test_screenshot_is_a_png_of_the_screen_at_the_requested_width(device: Device, capsys, tmp_path: Path) -> None:
    out = tmp_path / "shot.png"
    code, reply, _ = send(device.broker, capsys, "screenshot", "--arg", "width=320", "--out", out)
    assert code == 0 and reply["ok"] is True
    assert (reply["width"], reply["height"], reply["out"]) == (320, 180, str(out))
    assert reply["bytes"] == out.stat().st_size and "png" not in reply
    decoded = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (180, 320, 3)
    assert np.array_equal(decoded, cv2.resize(device.frame, (320, 180), interpolation=cv2.INTER_AREA))

    code, inline, _ = send(device.broker, capsys, "screenshot")
    assert code == 0 and inline["width"] == 640 and len(inline["png"]) > 100


def test_screenshot_uploads_to_the_given_url(device: Device, capsys) -> None:
    received: list[tuple[str, str, bytes]] = []

    class Upload(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802 - the http.server naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upload)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/shots/a.png?signature=secret"
        code, reply, _ = send(device.broker, capsys, "screenshot", "--arg", "width=200", "--arg", f"upload_url={url}")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0 and reply["http_status"] == 201 and "png" not in reply
    assert reply["url"] == f"http://127.0.0.1:{server.server_address[1]}/shots/a.png"  # the signature stays private
    path, content_type, body = received[0]
    assert path == "/shots/a.png?signature=secret" and content_type == "image/png"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == (112, 200, 3)
    assert reply["bytes"] == len(body)


def test_an_inline_screenshot_is_shrunk_until_it_fits() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    png = encode_within(noise, 1280, limit=200_000)
    assert len(png.data) < 200_000 and png.width < 1280
    assert cv2.imdecode(np.frombuffer(png.data, np.uint8), cv2.IMREAD_COLOR).shape == (png.height, png.width, 3)


def test_set_config_writes_the_validated_file_atomically_on_trial_and_restarts(device: Device, capsys) -> None:
    before = device.config_path.stat().st_ino
    code, reply, _ = send(device.broker, capsys, "set-config", "--arg", "set.kiosk.attract_after_s=6",
                          "--arg", "set.display.width=1280")
    assert code == 0, reply
    assert reply == {"cmd_id": reply["cmd_id"], "ok": True, "changed": ["display.width", "kiosk.attract_after_s"],
                     "restart_required": True}
    config = load_config(device.config_path)
    assert config.kiosk.attract_after_s == 6 and config.display.width == 1280 and config.device_id == DEVICE
    assert device.config_path.with_name("appliance.toml.good").read_text() == ORIGINAL_CONFIG
    assert device.config_path.stat().st_ino != before  # replaced by a rename, not rewritten in place
    assert sorted(p.name for p in device.config_path.parent.iterdir()) == [
        "appliance.toml", "appliance.toml.good", "appliance.toml.trial.json"]
    wait_for(lambda: device.restarts == 1, what="the restart after the reply")


@pytest.mark.parametrize(("setting", "named"), [
    ("set.display.widthx=6", "display.widthx: unknown key"),
    ("set.kiosk.attract_after_s=-1", "kiosk.attract_after_s: Input should be greater than or equal to 0"),
    ("set.display.width=\"wide\"", "display.width: Input should be a valid integer"),
    ("set.fleet.broker=evil.example:8883", "fleet.broker cannot be changed remotely"),
    ('set.campaigns.trusted_keys=["AAAA"]', "campaigns.trusted_keys cannot be changed remotely"),
    ("set.kiosk.content=/tmp/elsewhere", "kiosk.content cannot be changed remotely"),
])
def test_set_config_refuses_a_bad_setting_naming_it_and_leaves_the_file(device: Device, capsys, setting, named) -> None:
    code, reply, err = send(device.broker, capsys, "set-config", "--arg", setting)
    assert code == 1 and reply["ok"] is False and named in reply["error"], reply
    assert err.startswith("error: ") and named in err and err.count("\n") == 1
    assert device.config_path.read_text() == ORIGINAL_CONFIG
    assert sorted(p.name for p in device.config_path.parent.iterdir()) == ["appliance.toml"]
    assert device.restarts == 0


def test_reboot_runs_systemctl_only_after_the_reply_was_acknowledged(device: Device, capsys) -> None:
    code, reply, _ = send(device.broker, capsys, "reboot")
    assert code == 0 and reply["ok"] is True and reply["rebooting"] is True
    assert wait_for(lambda: device.runs, what="the reboot") == [(["systemctl", "reboot"], True)]


def test_a_command_sent_twice_runs_once_and_gets_the_same_reply_even_after_a_restart(device: Device, capsys) -> None:
    cmd_id = str(uuid.uuid4())
    first = send(device.broker, capsys, "reload", "--cmd-id", cmd_id)
    second = send(device.broker, capsys, "reload", "--cmd-id", cmd_id)
    assert first[0] == second[0] == 0 and first[1] == second[1] == {"cmd_id": cmd_id, "ok": True}
    assert device.reloads == 1
    device.stop()
    restarted = Device(device.broker, device.state_dir, device.config_path).start()
    try:
        assert send(device.broker, capsys, "reload", "--cmd-id", cmd_id)[1] == first[1]
        assert restarted.reloads == 0
        assert send(device.broker, capsys, "reload")[1]["ok"] is True and restarted.reloads == 1
    finally:
        restarted.stop()


def test_a_command_interrupted_by_a_restart_is_not_run_again(tmp_path: Path) -> None:
    recent = RecentCommands(tmp_path / "commands.json")
    recent.started("a", Signature.of("reboot", {}))
    again = RecentCommands(tmp_path / "commands.json")
    assert again.get("a") == Taken(Signature.of("reboot", {}), None)


def test_a_signature_tells_a_true_duplicate_from_another_command() -> None:
    shot = Signature.of("screenshot", {"width": 100, "upload_url": "http://x/a.png"})
    assert shot.differs(Signature.of("screenshot", {"upload_url": "http://x/a.png", "width": 100})) is None
    assert shot.differs(Signature.of("screenshot", {"width": 200, "upload_url": "http://x/a.png"})) == \
        "for screenshot with other arguments"
    assert shot.differs(Signature.of("reboot", {})) == "for screenshot"


def test_ids_recorded_before_signatures_were_kept_still_get_their_stored_reply(tmp_path: Path) -> None:
    path = tmp_path / "commands.json"
    path.write_text(json.dumps([["old", {"cmd_id": "old", "ok": True}], ["cut", None]]))
    recent = RecentCommands(path)
    assert recent.get("old") == Taken(None, {"cmd_id": "old", "ok": True}) and recent.get("cut") == Taken(None, None)
    recent.started("new", Signature.of("reload", {}))
    assert RecentCommands(path).get("old") == Taken(None, {"cmd_id": "old", "ok": True})


def test_recent_replies_stay_bounded_and_keep_ids_when_slimmed(tmp_path: Path) -> None:
    recent = RecentCommands(tmp_path / "commands.json", capacity=3, max_bytes=5000)
    for n in range(4):
        recent.started(f"id-{n}", Signature.of("screenshot", {}))
        recent.finished(f"id-{n}", {"cmd_id": f"id-{n}", "ok": True, "png": "x" * 3000})
    again = RecentCommands(tmp_path / "commands.json", capacity=3, max_bytes=5000)
    assert again.get("id-0") is None
    assert again.get("id-1").reply == {"cmd_id": "id-1", "ok": True, "trimmed": ["png"]}
    assert again.get("id-3").reply["png"] == "x" * 3000


def test_an_unknown_command_is_answered_not_ignored(device: Device, capsys) -> None:
    code, reply, err = send(device.broker, capsys, "dance")
    assert code == 1 and reply["ok"] is False and "unknown command 'dance'" in reply["error"]
    assert "unknown command" in err


def test_a_command_without_a_uuid_is_refused(device: Device, operator: Operator) -> None:
    operator.publish(f"oivis/v1/{DEVICE}/cmd/reload", {"cmd_id": "not-a-uuid"})
    reply = wait_for(lambda: operator.payloads(f"oivis/v1/{DEVICE}/cmd-res"), what="the refusal")[0]
    assert reply["ok"] is False and "not a UUID" in reply["error"] and device.reloads == 0


def raw_command(operator: Operator, name: str, payload: bytes | str, retain: bool = False) -> None:
    operator.client.publish(f"oivis/v1/{DEVICE}/cmd/{name}", payload, qos=1, retain=retain).wait_for_publish(5)


def replies_to(operator: Operator, cmd_id: str | None) -> list[dict]:
    return [reply for reply in operator.payloads(f"oivis/v1/{DEVICE}/cmd-res") if reply.get("cmd_id") == cmd_id]


RETAINED_REFUSAL = "retained commands are refused: publish commands with retain=false"


def test_a_retained_command_is_refused_live_and_after_a_reconnect(device: Device, operator: Operator) -> None:
    """MQTT 5 clears the retain flag on live forwarding unless the subscription asks for Retain As Published."""
    cmd_id = str(uuid.uuid4())
    raw_command(operator, "reload", json.dumps({"cmd_id": cmd_id}), retain=True)
    refusal = {"cmd_id": cmd_id, "ok": False, "error": RETAINED_REFUSAL}
    assert wait_for(lambda: replies_to(operator, cmd_id), what="the live refusal") == [refusal]
    device.stop()
    restarted = Device(device.broker, device.state_dir, device.config_path).start()
    try:
        assert wait_for(lambda: replies_to(operator, cmd_id)[1:], what="the refusal after reconnecting") == [refusal]
        raw_command(operator, "reload", b"", retain=True)  # the operator clears it: nothing to answer
        assert send_reload(operator) is True
        assert device.reloads == 0 and restarted.reloads == 1
        assert len(replies_to(operator, cmd_id)) == 2 and replies_to(operator, None) == []
    finally:
        restarted.stop()


def send_reload(operator: Operator) -> bool:
    """A good command still works: True once it is answered ok."""
    cmd_id = str(uuid.uuid4())
    operator.publish(f"oivis/v1/{DEVICE}/cmd/reload", {"cmd_id": cmd_id})
    return wait_for(lambda: replies_to(operator, cmd_id), what="the reply to a good command")[0]["ok"]


def test_a_cmd_id_reused_for_another_command_is_an_error_not_the_other_reply(device: Device, capsys) -> None:
    cmd_id = str(uuid.uuid4())
    assert send(device.broker, capsys, "reload", "--cmd-id", cmd_id)[1] == {"cmd_id": cmd_id, "ok": True}
    code, reply, _ = send(device.broker, capsys, "reboot", "--cmd-id", cmd_id)
    assert code == 1 and reply["ok"] is False and reply["cmd_id"] == cmd_id
    assert f"cmd_id {cmd_id} was already used for reload" in reply["error"]
    assert device.runs == []

    shot = str(uuid.uuid4())
    first = send(device.broker, capsys, "screenshot", "--cmd-id", shot, "--arg", "width=100")[1]
    assert first["ok"] is True and first["width"] == 100
    code, other, _ = send(device.broker, capsys, "screenshot", "--cmd-id", shot, "--arg", "width=200")
    assert code == 1 and "was already used for screenshot with other arguments" in other["error"]
    # a true duplicate still gets its stored reply, and the original is not run again
    assert send(device.broker, capsys, "screenshot", "--cmd-id", shot, "--arg", "width=100")[1] == first
    assert send(device.broker, capsys, "reload", "--cmd-id", cmd_id)[1] == {"cmd_id": cmd_id, "ok": True}
    assert device.reloads == 1


@pytest.mark.parametrize(("payload", "reason"), [
    ('{"cmd_id": "%s", "set": ' + "[" * 20_000 + "]" * 20_000 + "}", "levels deep, over the limit of"),
    ('{"cmd_id": "%s", "set": {"x": "' + "y" * 100_000 + '"}}', "bytes, over the limit of"),
    ('{"cmd_id": "%s", "set": ' + "[" * 8 + "1" + "]" * 8 + "}", "9 levels deep, over the limit of 8"),
])
def test_a_payload_too_deep_or_too_big_is_refused_with_a_reply(device: Device, operator: Operator,
                                                               payload: str, reason: str) -> None:
    cmd_id = str(uuid.uuid4())
    raw_command(operator, "set-config", payload % cmd_id)
    reply = wait_for(lambda: replies_to(operator, cmd_id), what="the refusal")[0]
    assert reply["ok"] is False and reason in reply["error"], reply
    assert send_reload(operator) is True and device.restarts == 0


def test_a_payload_that_is_not_a_command_is_answered_without_a_cmd_id(device: Device, operator: Operator) -> None:
    raw_command(operator, "reload", b"\xff not json")
    reply = wait_for(lambda: replies_to(operator, None), what="the refusal")[0]
    assert reply["ok"] is False and "not UTF-8" in reply["error"] and device.reloads == 0


def test_argument_parsing() -> None:
    from appliance.ops.command import parse_arguments

    assert parse_arguments(["width=320", "set.kiosk.attract_after_s=6.5", "name=hello", 'set.x={"a": [1]}']) == {
        "width": 320, "name": "hello", "set": {"kiosk": {"attract_after_s": 6.5}, "x": {"a": [1]}}}
    with pytest.raises(ApplianceError, match="expected key=value"):
        parse_arguments(["width"])


def test_rollback_answers_the_version_now_current_or_why_it_cannot(device: Device, capsys) -> None:
    reply = send(device.broker, capsys, "rollback")[1]
    assert reply == {"cmd_id": reply["cmd_id"], "ok": True, "version": 2}
    assert send(device.broker, capsys, "rollback")[1]["version"] == 0
    code, reply, err = send(device.broker, capsys, "rollback")
    assert code == 1 and reply["ok"] is False and "nothing to roll back" in reply["error"] and "nothing" in err
