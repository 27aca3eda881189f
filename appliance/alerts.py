"""The device's current alerts: what is wrong now, why, and since when (the ``alerts`` of ``{p}/status``).

Any thread may raise or clear an alert by its code (``camera``, ``campaign``,
``config``, …); raising an alert that is already up with the same reason
changes nothing, so callers may repeat it every frame.  Listeners (the fleet
link, which re-announces the retained status) are told about every change, on
the thread that made it: they must be quick.  The status ``state`` is
``alert`` while the list is not empty; an alert leaves the list when its cause
is gone (whoever raised it clears it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    code: str
    reason: str
    since: str

    def wire(self) -> dict[str, str]:
        return {"code": self.code, "reason": self.reason, "since": self.since}


Listener = Callable[[], None]


class Alerts:
    """Thread-safe."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._alerts: dict[str, Alert] = {}
        self._listeners: list[Listener] = []

    def raise_alert(self, code: str, reason: str) -> None:
        """Up with ``reason``; the start time is kept while only the reason's wording changes."""
        with self._lock:
            current = self._alerts.get(code)
            if current is not None and current.reason == reason:
                return
            since = current.since if current else self._clock().isoformat(timespec="seconds")
            self._alerts[code] = Alert(code, reason, since)
        (log.warning if current is None else log.info)("alert %s: %s", code, reason)
        self._changed()

    def clear(self, code: str) -> None:
        with self._lock:
            gone = self._alerts.pop(code, None)
        if gone is not None:
            log.info("alert %s cleared (was: %s)", code, gone.reason)
            self._changed()

    def set(self, code: str, reason: str | None) -> None:
        """Raise with ``reason``, or clear when it is None: for a condition re-checked again and again."""
        if reason is None:
            self.clear(code)
        else:
            self.raise_alert(code, reason)

    def current(self) -> list[Alert]:
        with self._lock:
            return sorted(self._alerts.values(), key=lambda alert: (alert.since, alert.code))

    def wire(self) -> list[dict[str, str]]:
        return [alert.wire() for alert in self.current()]

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def _changed(self) -> None:
        with self._lock:
            listeners = tuple(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:  # noqa: BLE001 - a listener's bug must not break whoever raised the alert
                log.exception("alert listener %r failed", listener)
