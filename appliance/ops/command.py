"""``command send``: one command to one device, and its reply.

The command carries a message expiry: a device that is away longer does not
find a stale reboot waiting when it comes back.  The reply subscription is in
place before the command goes out, so a fast device cannot answer unheard.  A
missed reply is not a reason to run a command twice: sending it again with the
same ``--cmd-id`` makes the device repeat its stored answer without re-running.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from appliance.errors import ApplianceError
from appliance.ops.fleet import device_topics
from appliance.ops.push import BrokerOptions, OperatorClient


def parse_arguments(pairs: list[str]) -> dict[str, Any]:
    """``["width=320", "set.kiosk.attract_after_s=6"]`` → ``{"width": 320, "set": {"kiosk": {...: 6}}}``.

    Dots nest; a value is JSON when it parses as JSON (numbers, true, {...}), a string otherwise.
    """
    arguments: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ApplianceError(f"--arg {pair!r}: expected key=value (dots nest: set.kiosk.attract_after_s=6)")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        *parents, leaf = key.split(".")
        table = arguments
        for part in parents:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ApplianceError(f"--arg {pair!r}: {part} is already set to a value, not an object")
        if key == "cmd_id":
            raise ApplianceError("the cmd_id is not an argument: use --cmd-id")
        table[leaf] = value
    return arguments


def send_command(options: BrokerOptions, device: str, name: str, arguments: dict[str, Any], timeout_s: float = 30.0,
                 expiry_s: int = 60, cmd_id: str | None = None) -> dict[str, Any]:
    """Publish ``{p}/cmd/{name}`` and return the device's reply (``ok`` true or false)."""
    if not name or any(char in name for char in "/+#"):
        raise ApplianceError(f"not a command name: {name!r}")
    if expiry_s < 1:
        raise ApplianceError(f"--expiry {expiry_s}: at least 1 second (a command must not wait forever)")
    topics = device_topics(device, options.prefix)
    if cmd_id is None:
        cmd_id = str(uuid.uuid4())
    else:
        try:
            uuid.UUID(cmd_id)
        except ValueError as exc:
            raise ApplianceError(f"--cmd-id {cmd_id!r} is not a UUID") from exc
    replies: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = OperatorClient(options, handlers={topics.command_results: replies.put})
    try:
        client.publish(topics.command(name), {"cmd_id": cmd_id, **arguments}, expiry_s=expiry_s)
        return _reply(replies, cmd_id, timeout_s, device, name, expiry_s)
    finally:
        client.close()


def _reply(replies: queue.Queue[mqtt.MQTTMessage], cmd_id: str, timeout_s: float, device: str, name: str,
           expiry_s: int) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            message = replies.get(timeout=max(0.0, deadline - time.monotonic()))
            try:
                reply = json.loads(message.payload)
            except ValueError:
                continue
            if isinstance(reply, dict) and reply.get("cmd_id") == cmd_id:
                return reply
    except queue.Empty:
        raise ApplianceError(f"no reply from {device} to {name} {cmd_id} within {timeout_s:.0f} s (offline? the "
                             f"command waits {expiry_s} s on the broker; send it again with --cmd-id {cmd_id} to "
                             "get the reply without running it twice)") from None
