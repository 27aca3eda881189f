"""Commands from the fleet on ``{p}/cmd/{name}``, each answered on ``{p}/cmd-res``.

The handler subscribes before the link connects (``start``), because the broker
hands over the commands it kept while the device was away right after the
CONNACK; it executes them only once the kiosk gives it the commands (``serve``).
paho's network thread only queues the message; one worker thread takes the
commands in order, so a duplicate can never race its original, and a slow
screenshot upload never stalls the link.  A message is acknowledged to the
broker only after it is answered (its reply stored and queued): one held, or
lost to a stop or a crash, is sent again by the broker.  The link's Receive
Maximum bounds how many are held here unacknowledged, so the queue needs no
limit of its own and nothing is ever refused as busy: the rest wait on the broker.

Every message gets one reply.  A refused one (retained, expired while held,
not a JSON object, over ``MAX_BYTES`` or ``MAX_DEPTH``, no UUID ``cmd_id``) is
answered ``ok: false`` with the reason and the ``cmd_id`` when it can be read.
A command's reply is stored before it is published (see ``recent``): a ``cmd_id``
seen before gets the stored reply again, never a second execution, and one
reused for a different command (another name or other arguments) gets an error.
What must happen after the operator has the answer (a reboot, a service
restart) runs only once the broker acknowledged the reply, or after
``reply_timeout_s``.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError
from appliance.fleet.link import Delivery, Incoming, Link
from appliance.fleet.recent import RecentCommands, Reply, Signature
from appliance.worker import Worker

log = logging.getLogger(__name__)

#: Where the recent command ids live under the state directory.
RECENT_FILE = Path("fleet") / "commands.json"
#: Largest command payload: a set-config is well under 1 KiB, a presigned upload URL under 4 KiB.
MAX_BYTES = 64 * 1024
#: Deepest command payload: set-config is {"set": {section: {key: value}}}, a value at most a list of lists.
MAX_DEPTH = 8
#: A ``"cmd_id": "…"`` pair in a payload that cannot be parsed, to address the refusal.
LENIENT_CMD_ID = re.compile(rb'"cmd_id"\s*:\s*"([^"\\]{1,64})"')


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
    """``start`` before the link connects (commands are held from then on), ``serve`` once the kiosk is up."""

    def __init__(self, link: Link, state_dir: Path, reply_timeout_s: float = 30.0) -> None:
        super().__init__("fleet-commands")
        self.link = link
        self.reply_timeout_s = reply_timeout_s
        self.commands: dict[str, Command] = {}
        self._serving = threading.Event()
        self._recent = RecentCommands(state_dir / RECENT_FILE)
        self._queue: queue.SimpleQueue[Incoming] = queue.SimpleQueue()

    def start(self) -> CommandHandler:
        self.link.subscribe(self.link.topics.commands, self._receive, retain_as_published=True, acknowledges=True)
        return super().start()

    def serve(self, commands: Mapping[str, Command]) -> CommandHandler:
        """Execute commands from now on, those held since ``start`` first."""
        self.commands = dict(commands)
        self._serving.set()
        return self

    @property
    def waiting(self) -> int:
        """Commands received and not answered yet."""
        return self._queue.qsize()

    def _receive(self, message: Incoming) -> None:
        """On paho's network thread: queue and return (acknowledged once answered)."""
        if self.stopping:
            log.info("command on %s left with the broker for the next start: the device is stopping", message.topic)
            return
        self._queue.put(message)

    def step(self) -> None:
        if not self._serving.wait(0.5):
            return
        try:
            message = self._queue.get(timeout=0.5)
        except queue.Empty:
            return
        if self.stopping:
            return
        try:
            self._handle(message)
        finally:
            message.acknowledge()  # no-op once answered; a bug must not hold the message (and its slot) for ever

    def _handle(self, message: Incoming) -> None:
        name = message.topic.rsplit("/", 1)[-1]
        if message.retain and not message.payload:
            log.info("retained command on %s cleared", message.topic)
            message.acknowledge()
            return
        try:
            cmd_id, arguments = _read(message)
        except ApplianceError as exc:
            log.warning("command %s refused: %s", name, exc)
            self._answer(message, {"cmd_id": _lenient_cmd_id(message), "ok": False, "error": str(exc)})
            return
        signature = Signature.of(name, arguments)
        taken = self._recent.get(cmd_id)
        if taken is not None:
            self._answer(message, self._again(cmd_id, taken.signature, signature, taken.reply))
            return
        self._recent.started(cmd_id, signature)
        outcome = self._execute(name, arguments)
        reply = {"cmd_id": cmd_id, "ok": outcome.ok, **outcome.fields}
        self._recent.finished(cmd_id, reply)
        log.info("command %s %s: %s", name, cmd_id, "ok" if outcome.ok else outcome.fields.get("error"))
        delivery = self._answer(message, reply)
        if outcome.after_reply is None:
            return
        if not delivery.wait(self.reply_timeout_s) or not delivery.ok:
            log.warning("the reply to %s %s was not acknowledged (%s); going ahead", name, cmd_id,
                        delivery.reason or f"nothing within {self.reply_timeout_s:.0f} s")
        self._follow_up(name, cmd_id, outcome.after_reply)

    def _again(self, cmd_id: str, first: Signature | None, now: Signature, reply: Reply | None) -> Reply:
        """The answer to a ``cmd_id`` seen before: the stored reply for the same command, an error for another."""
        difference = None if first is None else first.differs(now)
        if difference is not None:
            log.warning("command %s %s refused: the cmd_id was already used %s", now.name, cmd_id, difference)
            return {"cmd_id": cmd_id, "ok": False,
                    "error": f"cmd_id {cmd_id} was already used {difference}; send this command with a new cmd_id"}
        log.info("command %s %s seen before: its reply is sent again, the command is not run again", now.name, cmd_id)
        return reply or {"cmd_id": cmd_id, "ok": False,
                         "error": "the device restarted before answering this command; it is not run again"}

    def _answer(self, message: Incoming, reply: Reply) -> Delivery:
        """Publish the reply, then acknowledge the message: from here on a redelivery is a duplicate."""
        delivery = self._publish(reply)
        message.acknowledge()
        return delivery

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


def _read(message: Incoming) -> tuple[str, dict[str, Any]]:
    """The ``cmd_id`` and the arguments (the payload without ``cmd_id``); ApplianceError saying why not."""
    if message.retain:
        # Commands are never retained (the contract): a retained one would run again on every
        # connect once its cmd_id has left the memory of recent commands.
        raise ApplianceError("retained commands are refused: publish commands with retain=false")
    if message.expired:
        raise ApplianceError("the command expired before the device could run it; it was not run")
    document = message.json(MAX_BYTES, MAX_DEPTH)
    return command_id(document), {key: value for key, value in document.items() if key != "cmd_id"}


def _lenient_cmd_id(message: Incoming) -> str | None:
    """The ``cmd_id`` of a refused message as sent, when one can be found: to address the refusal."""
    try:
        value = message.json(MAX_BYTES, MAX_DEPTH).get("cmd_id")
    except ApplianceError:
        found = LENIENT_CMD_ID.search(message.payload[:MAX_BYTES])
        value = found.group(1).decode("utf-8", "replace") if found else None
    return value if isinstance(value, str) else None
