"""A new configuration on trial: kept only once the kiosk is ready with it, else the last good one comes back.

Like RAUC's boot counting, for the configuration file the fleet's ``set-config``
rewrites (``/etc/oivis/appliance.toml``).  Beside it:

- ``<file>.good``: the last configuration that brought the kiosk to ready;
- ``<file>.trial.json``: present while a new configuration has not yet proven
  itself — what changed, and how many starts it has had;
- ``<file>.rollback.json``: the last rollback (what changed, why, when), for
  the fleet's ``config`` alert until a new configuration proves itself.

``begin`` (set-config, before the new file is written) keeps the running file
as ``.good`` unless a trial is already pending (then the older good file stays).
``starting`` (each start) counts the start and restores ``.good`` when the trial
has used up its starts (a crash or hang at start never reaches ``confirm``).
``confirm`` (the kiosk is ready) ends the trial: the file becomes ``.good``.
``roll_back`` restores ``.good`` at once, with the reason (a configuration that
does not load or validate, the ready deadline passed, the start failed).
Every write is atomic, so a power cut leaves either the old or the new state.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from appliance.atomicfile import write_atomically
from appliance.errors import ApplianceError

log = logging.getLogger(__name__)

#: Starts a configuration on trial gets; the next start runs the last good one.
MAX_STARTS = 2
#: Seconds a configuration on trial has, from the start, to bring the kiosk to ready.
READY_DEADLINE_S = 120.0


@dataclass(frozen=True)
class Rollback:
    changed: list[str]
    reason: str
    at: str

    def describe(self) -> str:
        return f"set-config of {', '.join(self.changed) or 'the configuration'} rolled back at {self.at}: {self.reason}"


class ConfigTrial:
    def __init__(self, path: Path, max_starts: int = MAX_STARTS) -> None:
        self.path = Path(path)
        self.good = self.path.with_name(self.path.name + ".good")
        self.trial = self.path.with_name(self.path.name + ".trial.json")
        self.record = self.path.with_name(self.path.name + ".rollback.json")
        self.max_starts = max_starts

    @property
    def pending(self) -> bool:
        return self.trial.is_file()

    def begin(self, changed: list[str]) -> None:
        """The running file is about to be replaced by a new one with ``changed`` keys: put it on trial."""
        if not self.pending and self.path.is_file():
            try:
                shutil.copy2(self.path, self.good)
            except OSError as exc:
                raise ApplianceError(f"cannot keep the running configuration as {self.good}: {exc}") from exc
        self._write(self.trial, {"changed": changed, "starts": 0, "since": _now()})

    def starting(self) -> Rollback | None:
        """Count this start of a pending trial; past its starts, restore the last good file (the Rollback)."""
        state = self._read(self.trial)
        if state is None:
            return None
        starts = int(state.get("starts", 0)) + 1
        if starts > self.max_starts:
            return self.roll_back(f"the kiosk did not become ready in {self.max_starts} starts with it")
        self._write(self.trial, {**state, "starts": starts})
        log.warning("configuration %s on trial (%s), start %d of %d", self.path,
                    ", ".join(state.get("changed", [])), starts, self.max_starts)
        return None

    def confirm(self) -> bool:
        """The kiosk is ready with the file on trial: it becomes the last good one.  True when a trial ended."""
        if not self.pending:
            return False
        try:
            shutil.copy2(self.path, self.good)
        except OSError as exc:
            log.error("cannot keep %s as the last good configuration: %s", self.path, exc)
        self.trial.unlink(missing_ok=True)
        self.record.unlink(missing_ok=True)
        log.info("configuration %s confirmed: the kiosk is ready with it", self.path)
        return True

    def roll_back(self, reason: str) -> Rollback:
        """Restore the last good file now and remember why."""
        state = self._read(self.trial) or {}
        if not self.good.is_file():
            raise ApplianceError(f"configuration {self.path} failed ({reason}) and there is no {self.good} "
                                 "to return to")
        try:
            shutil.copy2(self.good, self.path)
        except OSError as exc:
            raise ApplianceError(f"cannot restore {self.good} over {self.path}: {exc}") from exc
        rollback = Rollback(list(state.get("changed", [])), reason, _now())
        self._write(self.record, {"changed": rollback.changed, "reason": reason, "at": rollback.at})
        self.trial.unlink(missing_ok=True)
        log.error("configuration %s rolled back to the last good one: %s", self.path, reason)
        return rollback

    def last_rollback(self) -> Rollback | None:
        """The rollback not yet superseded by a configuration that proved itself."""
        state = self._read(self.record)
        if state is None:
            return None
        return Rollback(list(state.get("changed", [])), str(state.get("reason", "")), str(state.get("at", "")))

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("%s is unreadable (%s); treating it as %s", path, exc, "a trial" if path == self.trial else "none")
            return {} if path == self.trial else None
        return value if isinstance(value, dict) else {}

    def _write(self, path: Path, state: dict[str, Any]) -> None:
        write_atomically(path, json.dumps(state).encode("utf-8"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
