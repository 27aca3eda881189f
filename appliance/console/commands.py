"""Commands from the console to a screen (screenshot, reload, reboot, rollback, set-config) and their replies.

Invariants:

- Every command is recorded (``console_commands``) and audited in one transaction before it is published, so
  nothing reaches a screen that the log does not show; a publish the broker did not acknowledge marks the
  command ``failure`` (shown as not sent, audited as ``command.<name>.not_sent``).  It is published at QoS 1
  with a message expiry (``EXPIRY_S``): a screen that is away longer never finds a stale reboot waiting.  Topics
  are under the screens' ``topic_prefix``.
- A reply is matched by ``cmd_id`` and by the device of its topic (the broker binds a device's certificate to
  its own topics), so a screen can never answer another's command; only the first reply counts.
- A screenshot's inline PNG is kept with the reply for ``SCREENSHOT_DAYS`` (``forget_screenshots``, at the
  console's start) and served only to logged-in viewers, as an image/png of at most
  ``appliance.fleet.screenshot.INLINE_LIMIT`` bytes; nothing else of a reply is interpreted.
- set-config sends only keys the device allows remotely (``appliance.fleet.setconfig``); the device checks
  again and has the last word.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from appliance import boundedjson
from appliance.console import auth, web
from appliance.errors import ApplianceError
from appliance.fleet.screenshot import INLINE_LIMIT
from appliance.fleet.setconfig import refused_keys
from appliance.fleet.topics import Topics, device_of
from appliance.identity import check_device_id
from appliance.ops.command import parse_arguments

log = logging.getLogger(__name__)
router = APIRouter()
NAMES = ("screenshot", "reload", "reboot", "rollback", "set-config")
EXPIRY_S = 300
REPLY_LIMIT = INLINE_LIMIT * 2
SCREENSHOT_WIDTH = 960
SCREENSHOT_DAYS = 30

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS console_commands (cmd_id uuid PRIMARY KEY, device text NOT NULL, name text NOT NULL, "
    "arguments jsonb NOT NULL, user_name text NOT NULL, sent_at timestamptz NOT NULL DEFAULT now(), "
    "expires_at timestamptz NOT NULL, reply jsonb, replied_at timestamptz, failure text)",
    "ALTER TABLE console_commands ADD COLUMN IF NOT EXISTS failure text",
    "CREATE INDEX IF NOT EXISTS console_commands_device ON console_commands (device, sent_at DESC)",
)


def replies(prefix: str) -> str:
    """Every screen's reply topic under the topic prefix, for the link's subscription."""
    return Topics.for_device("+", prefix).command_results


def arguments_of(name: str, setting: str = "", value: str = "") -> dict[str, Any]:
    """The command's payload (besides cmd_id) from the form's fields."""
    if name not in NAMES:
        raise ApplianceError(f"unknown command {name!r} (one of {', '.join(NAMES)})")
    if name == "screenshot":
        return {"width": SCREENSHOT_WIDTH}
    if name != "set-config":
        return {}
    if not setting.strip():
        raise ApplianceError("set-config needs a setting (e.g. kiosk.attract_after_s) and its value")
    arguments = parse_arguments([f"set.{setting.strip()}={value.strip()}"])
    refused = refused_keys(arguments["set"])
    if refused:
        raise ApplianceError(f"{', '.join(refused)} cannot be changed remotely (provisioning only)")
    return arguments


def send(console: Any, user: auth.User, device: str, name: str, arguments: dict[str, Any]) -> str:
    """Record, audit and publish the command; its cmd_id.  ApplianceError when the broker is not reachable."""
    check_device_id(device, "device")
    client = console.fleet.client() if console.fleet is not None else None
    if client is None:
        raise ApplianceError("no broker is configured (serve --broker HOST:PORT): commands cannot be sent")
    cmd_id = str(uuid.uuid4())
    now = console.clock()
    with console.db.connection() as conn:
        conn.execute("INSERT INTO console_commands (cmd_id, device, name, arguments, user_name, sent_at, expires_at) "
                     "VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s)",
                     (cmd_id, device, name, json.dumps(arguments), user.name, now, now + timedelta(seconds=EXPIRY_S)))
        web.audit(conn, user, f"command.{name}", device, {"cmd_id": cmd_id, **arguments})
    try:
        client.publish(Topics.for_device(device, console.settings.topic_prefix).command(name),
                       {"cmd_id": cmd_id, **arguments}, expiry_s=EXPIRY_S)
    except ApplianceError as exc:
        with console.db.connection() as conn:
            conn.execute("UPDATE console_commands SET failure = %s WHERE cmd_id = %s", (str(exc), cmd_id))
            web.audit(conn, user, f"command.{name}.not_sent", device, {"cmd_id": cmd_id, "reason": str(exc)})
        raise ApplianceError(f"{name} was not sent to {device}: {exc}") from exc
    return cmd_id


def on_reply(console: Any, topic: str, payload: bytes) -> None:
    """A message on ``oivis/v1/<device>/cmd-res`` (paho's thread): the reply stored with its command."""
    prefix = console.settings.topic_prefix
    device = device_of(topic, prefix)
    if device is not None and Topics.for_device(device, prefix).command_results != topic:
        device = None
    try:
        reply = boundedjson.loads_object(payload, "command reply", max_bytes=REPLY_LIMIT)
        cmd_id = str(uuid.UUID(str(reply.get("cmd_id"))))
    except (ApplianceError, ValueError):
        cmd_id = None
    if device is None or cmd_id is None:
        log.warning("a reply on %s that is no command reply was ignored", topic[:200])
        return
    try:
        with console.db.connection() as conn:
            conn.execute("UPDATE console_commands SET reply = %s::jsonb, replied_at = now() "
                         "WHERE cmd_id = %s AND device = %s AND reply IS NULL",
                         (json.dumps(reply), cmd_id, device))
    except console.db.errors as exc:
        log.error("the reply to command %s of %s could not be stored: %s", cmd_id, device, exc)


def forget_screenshots(conn: Any, now: datetime) -> int:
    """Screenshots older than ``SCREENSHOT_DAYS`` dropped from their replies (the rest of the reply stays)."""
    return conn.execute("UPDATE console_commands SET reply = reply - 'png' WHERE reply ? 'png' AND replied_at < %s",
                        (now - timedelta(days=SCREENSHOT_DAYS),)).rowcount


def recent(conn: Any, device: str, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT cmd_id, name, arguments, user_name, sent_at, expires_at, replied_at, reply - 'png', reply ? 'png', "
        "failure FROM console_commands WHERE device = %s ORDER BY sent_at DESC LIMIT %s", (device, limit)).fetchall()
    keys = ("cmd_id", "name", "arguments", "user", "sent_at", "expires_at", "replied_at", "reply", "has_png",
            "failure")
    return [dict(zip(keys, row, strict=True)) for row in rows]


@router.post("/screens/{device}/commands")
def command(request: Request, device: str, user: auth.User = Depends(web.operator), name: str = Form(...),
            setting: str = Form(""), value: str = Form("")) -> Response:
    console = request.app.state.console
    send(console, user, device, name, arguments_of(name, setting, value))
    return RedirectResponse(f"/screens/{device}#commands", status_code=303)


@router.get("/screens/{device}/commands")
def commands_fragment(request: Request, device: str, user: auth.User = Depends(web.viewer)) -> Response:
    with request.app.state.console.db.connection() as conn:
        rows = recent(conn, device)
    return web.render(request, "commands.html", device=device, commands=rows, now=request.app.state.console.clock())


@router.get("/screens/{device}/commands/{cmd_id}/screenshot.png")
def screenshot(request: Request, device: str, cmd_id: uuid.UUID, user: auth.User = Depends(web.viewer)) -> Response:
    with request.app.state.console.db.connection() as conn:
        row = conn.execute("SELECT reply->>'png' FROM console_commands WHERE cmd_id = %s AND device = %s "
                           "AND name = 'screenshot'", (str(cmd_id), device)).fetchone()
    if row is None or row[0] is None:
        raise HTTPException(404, "No screenshot for this command (yet).")
    try:
        png = base64.b64decode(row[0], validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(502, "The screen's screenshot reply is not a valid picture.") from None
    if not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise HTTPException(502, "The screen's screenshot reply is not a PNG.")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
