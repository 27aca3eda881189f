"""A number in a file that only goes up, across restarts and power cuts.

The birth message's ``session`` lets an operator tell a reconnect from a
stale retained status, so it must never repeat: each value is written to a
temporary file, flushed to disk and renamed over the old one before it is used.
"""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.atomicfile import write_atomically
from appliance.errors import ApplianceError

log = logging.getLogger(__name__)


class PersistentCounter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.value = self._read()

    def _read(self) -> int:
        try:
            return int(self.path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.error("counter %s is unreadable (%s); counting on from 0", self.path, exc)
            return 0

    def increment(self) -> int:
        """The next value; kept in memory when the disk refuses it, so it still increases this run."""
        self.raise_to(self.value + 1)
        return self.value

    def raise_to(self, value: int) -> None:
        """Never lower: a smaller ``value`` changes nothing."""
        if value <= self.value:
            return
        self.value = value
        try:
            write_atomically(self.path, f"{self.value}\n".encode("ascii"))
        except ApplianceError as exc:
            log.error("cannot save the counter %s: %s", self.path, exc)
