"""The commands this device has already taken, with their replies, kept on disk.

A command is delivered at least once: the broker redelivers it when the PUBACK
was lost to a reconnect, and an operator who missed the reply sends it again
with the same ``cmd_id``.  Remembering recent ids turns that into exactly-once
execution; remembering the replies lets the duplicate get the same answer.

An id is recorded (and synced) *before* its command runs, so a command that
took the device down with it (a reboot, a crash) is not run a second time after
the restart: its duplicate is told it was interrupted.  The file is bounded by
count and by size: screenshots make big replies, so once over the byte budget
the oldest replies lose their bulky fields (the id and the outcome stay).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
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


class RecentCommands:
    """Owned by the command worker's thread."""

    def __init__(self, path: Path, capacity: int = 500, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Reply | None] = self._load()

    def _load(self) -> OrderedDict[str, Reply | None]:
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
            return OrderedDict((str(cmd_id), reply) for cmd_id, reply in entries)
        except FileNotFoundError:
            return OrderedDict()
        except (OSError, ValueError, TypeError) as exc:
            log.error("recent commands file %s is unreadable (%s): a command redelivered now could run twice",
                      self.path, exc)
            return OrderedDict()

    def __contains__(self, cmd_id: str) -> bool:
        return cmd_id in self._entries

    def reply(self, cmd_id: str) -> Reply | None:
        """The stored reply; None when the command was taken but never answered (interrupted)."""
        return self._entries[cmd_id]

    def started(self, cmd_id: str) -> None:
        self._entries[cmd_id] = None
        self._entries.move_to_end(cmd_id)
        self._save()

    def finished(self, cmd_id: str, reply: Reply) -> None:
        self._entries[cmd_id] = reply
        self._save()

    def _save(self) -> None:
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        self._slim()
        data = json.dumps(list(self._entries.items()), separators=(",", ":"), ensure_ascii=False)
        try:
            write_atomically(self.path, data.encode("utf-8"))
        except ApplianceError as exc:
            log.error("%s: a command redelivered after a restart could run twice", exc)

    def _slim(self) -> None:
        sizes = {cmd_id: len(json.dumps(reply)) for cmd_id, reply in self._entries.items()}
        total = sum(sizes.values())
        for cmd_id, reply in list(self._entries.items())[:-1]:
            if total <= self.max_bytes:
                return
            if reply is None:
                continue
            bulky = [key for key, value in reply.items() if len(json.dumps(value)) > BULKY]
            if bulky:
                slim = {key: value for key, value in reply.items() if key not in bulky} | {"trimmed": bulky}
                self._entries[cmd_id] = slim
                total += len(json.dumps(slim)) - sizes[cmd_id]
