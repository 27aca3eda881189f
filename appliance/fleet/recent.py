"""The commands this device has already taken, with what each was and its reply, kept on disk.

A command is delivered at least once: the broker redelivers it when the PUBACK
was lost to a reconnect, and an operator who missed the reply sends it again
with the same ``cmd_id``.  Remembering recent ids turns that into exactly-once
execution; remembering the replies lets the duplicate get the same answer.
Each id is kept with the command's signature (its name and a digest of its
arguments), so an id reused for a different command is told apart from a true
duplicate and never gets the other command's reply (ids recorded by a version
that kept no signature get their stored reply, as they did then).

An id is recorded (and synced) *before* its command runs, so a command that
took the device down with it (a reboot, a crash) is not run a second time after
the restart: its duplicate is told it was interrupted.  The file is bounded by
count and by size: screenshots make big replies, so once over the byte budget
the oldest replies lose their bulky fields (the id and the outcome stay).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.atomicfile import write_atomically
from appliance.errors import ApplianceError

log = logging.getLogger(__name__)

#: Replies kept in full, in bytes of JSON; beyond it the oldest are slimmed.
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
#: A reply field longer than this (as JSON) is what slimming removes.
BULKY = 1024

Reply = dict[str, Any]


@dataclass(frozen=True)
class Signature:
    """What a command was: its name and the SHA-256 of its arguments as canonical JSON."""

    name: str
    digest: str

    @classmethod
    def of(cls, name: str, arguments: dict[str, Any]) -> Signature:
        canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return cls(name, hashlib.sha256(canonical.encode("utf-8")).hexdigest())

    def differs(self, other: Signature) -> str | None:
        """How ``other`` differs from this one, in words; None when it is the same command."""
        if other.name != self.name:
            return f"for {self.name}"
        if other.digest != self.digest:
            return f"for {self.name} with other arguments"
        return None


@dataclass(frozen=True)
class Taken:
    """A command taken: what it was (None when recorded without a signature), and its reply (None while
    running, or when it was interrupted)."""

    signature: Signature | None
    reply: Reply | None

    @classmethod
    def from_row(cls, row: list[Any]) -> tuple[str, Taken]:
        """One row of the file: ``[cmd_id, name, digest, reply]``, or ``[cmd_id, reply]`` from before signatures."""
        if len(row) == 2:
            return str(row[0]), cls(None, row[1])
        cmd_id, name, digest, reply = row
        return str(cmd_id), cls(Signature(str(name), str(digest)), reply)

    def row(self, cmd_id: str) -> list[Any]:
        if self.signature is None:
            return [cmd_id, self.reply]
        return [cmd_id, self.signature.name, self.signature.digest, self.reply]


class RecentCommands:
    """Owned by the command worker's thread."""

    def __init__(self, path: Path, capacity: int = 500, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Taken] = self._load()

    def _load(self) -> OrderedDict[str, Taken]:
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
            return OrderedDict(Taken.from_row(row) for row in entries)
        except FileNotFoundError:
            return OrderedDict()
        except (OSError, ValueError, TypeError) as exc:
            log.error("recent commands file %s is unreadable (%s): a command redelivered now could run twice",
                      self.path, exc)
            return OrderedDict()

    def get(self, cmd_id: str) -> Taken | None:
        return self._entries.get(cmd_id)

    def started(self, cmd_id: str, signature: Signature) -> None:
        self._entries[cmd_id] = Taken(signature, None)
        self._entries.move_to_end(cmd_id)
        self._save()

    def finished(self, cmd_id: str, reply: Reply) -> None:
        self._entries[cmd_id] = Taken(self._entries[cmd_id].signature, reply)
        self._save()

    def _save(self) -> None:
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        self._slim()
        rows = [taken.row(cmd_id) for cmd_id, taken in self._entries.items()]
        try:
            write_atomically(self.path, json.dumps(rows, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        except ApplianceError as exc:
            log.error("%s: a command redelivered after a restart could run twice", exc)

    def _slim(self) -> None:
        sizes = {cmd_id: len(json.dumps(taken.reply)) for cmd_id, taken in self._entries.items()}
        total = sum(sizes.values())
        for cmd_id, taken in list(self._entries.items())[:-1]:
            if total <= self.max_bytes:
                return
            if taken.reply is None:
                continue
            bulky = [key for key, value in taken.reply.items() if len(json.dumps(value)) > BULKY]
            if bulky:
                slim = {key: value for key, value in taken.reply.items() if key not in bulky} | {"trimmed": bulky}
                self._entries[cmd_id] = Taken(taken.signature, slim)
                total += len(json.dumps(slim)) - sizes[cmd_id]
