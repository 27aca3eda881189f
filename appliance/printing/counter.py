"""Pages printed per campaign per day, with a daily limit, kept across restarts.

Invariants: the count lives in one JSON file under the state directory, replaced atomically after
every change (a power cut leaves the old count or the new); only the current day is kept (the day is
the device's local date, the mall's day); ``take`` checks the limit and counts the page in one step
under a lock, so two photos can never both take the last page; ``give_back`` uncounts a page only on
the day it was taken (a job cancelled after midnight does not uncount one of the new day's pages);
a write that fails (a full disk) raises ApplianceError and changes nothing, in memory either; a
limit of 0 means no limit; a file
that cannot be read starts the day from zero and says so in the log (it is not a reason to stop
printing).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path

from appliance.atomicfile import write_atomically
from appliance.errors import ApplianceError

log = logging.getLogger(__name__)


class PageCounter:
    """Thread-safe."""

    def __init__(self, path: Path, daily_limit: int, today: Callable[[], date] = date.today) -> None:
        self.path = path
        self.daily_limit = daily_limit
        self._today = today
        self._lock = threading.Lock()
        self._day, self._pages = self._load()

    def _load(self) -> tuple[str, dict[str, int]]:
        if not self.path.is_file():
            return "", {}
        try:
            stored = json.loads(self.path.read_text())
            pages = {str(campaign): int(count) for campaign, count in stored["pages"].items()}
            return str(stored["day"]), pages
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s: page count unreadable (%s); counting from zero", self.path, exc)
            return "", {}

    def _current(self) -> dict[str, int]:
        today = self._today().isoformat()
        if self._day != today:
            self._day, self._pages = today, {}
        return self._pages

    def printed(self, campaign: str) -> int:
        with self._lock:
            return self._current().get(campaign, 0)

    def take(self, campaign: str) -> str | None:
        """One page counted for ``campaign`` today: the day it was counted on (ISO date, for ``give_back``);
        None (nothing counted) when its limit is reached."""
        with self._lock:
            pages = self._current()
            if self.daily_limit and pages.get(campaign, 0) >= self.daily_limit:
                return None
            self._change(campaign, +1)
            return self._day

    def give_back(self, campaign: str, day: str) -> None:
        """The page ``take`` counted on ``day``, uncounted (no paper was used: CUPS refused, cancelled or
        aborted the job); nothing when ``day`` is over."""
        with self._lock:
            pages = self._current()
            if self._day == day and pages.get(campaign, 0) > 0:
                self._change(campaign, -1)

    def _change(self, campaign: str, pages: int) -> None:
        before = self._pages.get(campaign, 0)
        self._pages[campaign] = before + pages
        try:
            self._save()
        except ApplianceError:
            self._pages[campaign] = before
            raise

    def _save(self) -> None:
        document = {"day": self._day, "pages": self._pages}
        write_atomically(self.path, json.dumps(document, sort_keys=True).encode())
