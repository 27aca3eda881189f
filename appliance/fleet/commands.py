"""Commands from the fleet on ``{p}/cmd/{name}``, each answered once on ``{p}/cmd-res``.

paho's network thread only queues the message; one worker thread takes the
commands in order, so a duplicate can never race its original, and a slow
screenshot upload never stalls the link.  Commands are rare, the queue is
small, and a command that finds it full is answered ``busy`` without being
recorded (the operator may send it again with the same ``cmd_id``).

A command's reply is stored before it is published (see ``recent``): a ``cmd_id``
seen before gets the stored reply again, never a second execution.  What must
happen after the operator has the answer (a reboot, a service restart) runs
only once the broker acknowledged the reply, or after ``reply_timeout_s``.
Expired commands are the broker's business: they never arrive.
"""

from __future__ import annotations

import logging
import queue
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError
from appliance.fleet.link import Delivery, Incoming, Link
from appliance.fleet.recent import RecentCommands, Reply
from appliance.worker import Worker

log = logging.getLogger(__name__)

#: Where the recent command ids live under the state directory.
RECENT_FILE = Path("fleet") / "commands.json"


@dataclass(frozen=True)
class Outcome:
    """What a command did: ``ok``, the reply's other fields, and what to do once the reply is acknowledged."""

    ok: bool = True
    fields: dict[str, Any] = field(default_factory=dict)
    after_reply: Callable[[], None] | None = None

    @classmethod
    def failed(cls, error: str) -> Outcome:
        return cls(ok=False, fields={"error": error})


#: A command: its arguments (the payload without ``cmd_id``) → its outcome.  Raising
#: ApplianceError is the same as returning ``Outcome.failed`` with its message.
Command = Callable[[dict[str, Any]], Outcome]


def command_id(document: dict[str, Any]) -> str:
    """The ``cmd_id`` as sent (the reply must carry it unchanged), once checked to be a UUID."""
    value = document.get("cmd_id")
    if value is None:
        raise ApplianceError("the command has no cmd_id")
    try:
        uuid.UUID(str(value))
    except ValueError as exc:
        raise ApplianceError(f"cmd_id {value!r} is not a UUID") from exc
    return str(value)


class CommandHandler(Worker):
    def __init__(self, link: Link, state_dir: Path, commands: Mapping[str, Command],
                 reply_timeout_s: float = 30.0, queue_size: int = 8) -> None:
        super().__init__("fleet-commands")
        self.link = link
        self.commands = dict(commands)
        self.reply_timeout_s = reply_timeout_s
        self._recent = RecentCommands(state_dir / RECENT_FILE)
        self._queue: queue.Queue[Incoming] = queue.Queue(maxsize=queue_size)

    def start(self) -> CommandHandler:
        self.link.subscribe(self.link.topics.commands, self._receive)
        return super().start()

    def _receive(self, message: Incoming) -> None:
        """On paho's network thread: queue and return."""
        if self.stopping:
            log.warning("command on %s ignored: the device is stopping", message.topic)
            return
        if message.retain:
            # Commands are never retained (the contract): a retained one would run again on every
            # connect once its cmd_id has left the memory of recent commands.
            log.warning("retained command on %s refused", message.topic)
            self._publish({"cmd_id": _lenient_json(message).get("cmd_id"), "ok": False,
                           "error": "retained commands are refused: publish commands with retain=false"})
            return
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            document = _lenient_json(message)
            log.warning("command on %s refused: %d commands are waiting", message.topic, self._queue.qsize())
            self._publish({"cmd_id": document.get("cmd_id"), "ok": False,
                           "error": f"busy: {self._queue.qsize()} commands are waiting; send it again later"})

    def step(self) -> None:
        try:
            message = self._queue.get(timeout=0.5)
        except queue.Empty:
            return
        self._handle(message)

    def _handle(self, message: Incoming) -> None:
        name = message.topic.rsplit("/", 1)[-1]
        try:
            document = message.json()
            cmd_id = command_id(document)
        except ApplianceError as exc:
            log.warning("command %s refused: %s", name, exc)
            cmd_id = _lenient_json(message).get("cmd_id")
            if cmd_id is not None:
                self._publish({"cmd_id": cmd_id, "ok": False, "error": str(exc)})
            return
        if cmd_id in self._recent:
            log.info("command %s %s seen before: its reply is sent again, the command is not run again",
                     name, cmd_id)
            self._publish(self._recent.reply(cmd_id) or {
                "cmd_id": cmd_id, "ok": False,
                "error": "the device restarted before answering this command; it is not run again"})
            return
        self._recent.started(cmd_id)
        outcome = self._execute(name, {key: value for key, value in document.items() if key != "cmd_id"})
        reply = {"cmd_id": cmd_id, "ok": outcome.ok, **outcome.fields}
        self._recent.finished(cmd_id, reply)
        log.info("command %s %s: %s", name, cmd_id, "ok" if outcome.ok else outcome.fields.get("error"))
        delivery = self._publish(reply)
        if outcome.after_reply is None:
            return
        if not delivery.wait(self.reply_timeout_s) or not delivery.ok:
            log.warning("the reply to %s %s was not acknowledged (%s); going ahead", name, cmd_id,
                        delivery.reason or f"nothing within {self.reply_timeout_s:.0f} s")
        self._follow_up(name, cmd_id, outcome.after_reply)

    def _execute(self, name: str, arguments: dict[str, Any]) -> Outcome:
        command = self.commands.get(name)
        if command is None:
            return Outcome.failed(f"unknown command {name!r} (this device knows {', '.join(sorted(self.commands))})")
        try:
            return command(arguments)
        except ApplianceError as exc:
            return Outcome.failed(str(exc))
        except Exception as exc:  # noqa: BLE001 - a broken command must still be answered
            log.exception("command %s failed", name)
            return Outcome.failed(f"internal error: {type(exc).__name__}: {exc}")

    def _follow_up(self, name: str, cmd_id: str, action: Callable[[], None]) -> None:
        """Run what follows the reply; when it fails the operator gets a second reply saying so."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the worker carries on
            log.exception("command %s %s: the action after the reply failed", name, cmd_id)
            correction = {"cmd_id": cmd_id, "ok": False, "error": f"{name} failed after replying: {exc}"}
            self._recent.finished(cmd_id, correction)
            self._publish(correction)

    def _publish(self, reply: Reply) -> Delivery:
        return self.link.publish(self.link.topics.command_results, reply, qos=1)


def _lenient_json(message: Incoming) -> dict[str, Any]:
    """The payload as a dict when it is one, else empty: for answering a message that is refused."""
    try:
        return message.json()
    except ApplianceError:
        return {}
