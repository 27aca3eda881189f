"""Shopper sessions for telemetry: one session from the moment somebody is present until they leave."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from appliance.events import EventBus
from appliance.kiosk.navigation import Navigator
from appliance.service.logging import journal_context


class Sessions:
    """Publishes ``session_start`` and ``session_end`` (dwell seconds, gestures recognised), each with the
    ``campaign`` shown (``campaign()``: the kiosk's bundle name; it changes only between sessions, so a session's
    two events name the same one); the journal's records carry the current session while it lasts
    (``OIVIS_SESSION``)."""

    def __init__(self, events: EventBus, navigator: Navigator, campaign: Callable[[], str] = lambda: "") -> None:
        self.events = events
        self.navigator = navigator
        self.campaign = campaign
        self.current: str | None = None
        self._started = 0.0

    def update(self, present: bool, now: float) -> None:
        if present and self.current is None:
            self.current, self._started = str(uuid.uuid4()), now
            journal_context.update(session=self.current)
            self.navigator.take_counts()
            self.events.publish("session_start", {"session": self.current, "campaign": self.campaign()})
        elif not present and self.current is not None:
            self.events.publish("session_end", {"session": self.current, "campaign": self.campaign(),
                                                "dwell_s": round(now - self._started, 2),
                                                "gestures": self.navigator.take_counts()})
            self.current = None
            journal_context.update(session=None)
