"""Which bundle is on screen now: schedules, priorities, and the bundled default.

Called by the kiosk's render loop about once a second, so it only reads memory
(the release the manager swapped in) and a cheap clock check; it never waits on
the manager's downloads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from appliance.campaigns.releases import Release, ScheduledCampaign


class Scheduler:
    def __init__(
        self,
        default_bundle: Path,
        clock_synced: Callable[[], bool],
        require_synced_clock: bool = True,
        showing: Path | None = None,
    ) -> None:
        self.default_bundle = Path(default_bundle)
        self.release = Release()
        self.clock_note: str | None = None
        self._clock_synced = clock_synced
        self._require_synced = require_synced_clock
        self._showing = showing


    @property
    def showing(self) -> Path | None:
        """The bundle the screen last said it shows (``shown``; None before the first)."""
        return self._showing

    def choose(self, now: datetime) -> ScheduledCampaign | None:
        """The highest-priority campaign whose schedule holds at ``now``; the earliest listed wins a tie."""
        best: ScheduledCampaign | None = None
        for campaign in self.release.campaigns:
            if campaign.schedule.active_at(now) and (best is None or campaign.priority > best.priority):
                best = campaign
        return best

    def pick(self, now: datetime | None = None) -> Path:
        """The bundle directory to show at ``now`` (UTC when naive; the system clock when None).

        On an unsynchronised clock the bundle already showing stays (the default
        when nothing showed yet) and ``clock_note`` says why.  Nothing is recorded:
        the screen calls ``shown`` once the bundle actually loaded.
        """
        if self._require_synced and not self._clock_synced():
            self.clock_note = "clock not synchronised (no NTP yet): schedules paused, keeping the current campaign"
            return self._showing if self._showing is not None and self._showing.is_dir() else self.default_bundle
        self.clock_note = None
        now = datetime.now(timezone.utc) if now is None else now
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        chosen = self.choose(now)
        return chosen.bundle_dir if chosen else self.default_bundle

    def shown(self, bundle: Path) -> None:
        """The screen shows ``bundle`` now: it is kept on disk (never pruned) and shown again after a restart."""
        self._showing = bundle
