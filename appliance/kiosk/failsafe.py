"""When an experience fails: the failsafe state, the quarantine of an experience that keeps failing,
and logging that does not flood.

Invariants (pure: every call takes the time, and the local day for the quarantine):

- Any exception from an experience's hook sends the kiosk to the failsafe state; the
  failed scene's ``exit`` is called (its own failure there is only logged).  The state
  lasts ``FAILSAFE_S``, then the kiosk goes to the menu when somebody is in front, else
  to attract.  A failure of the core's own drawing (no experience running) is the
  failsafe state too, but no experience's: never quarantined, never an alert.
- ``Quarantine``: an experience that fails ``LIMIT`` times within ``WINDOW_S`` is disabled
  until the local day changes; a new day clears every quarantine.  Disabled
  experiences are neither offered nor entered.
- ``LogGate``: the first failure of an experience is logged with its traceback; more
  within ``LOG_EVERY_S`` are counted and summed up in the next line that is logged.
- ``Streak``: failures less than ``HEALTHY_S`` apart are one streak.  The watchdog is fed
  until a streak has lasted ``WATCHDOG_GRACE_S``: a screen that can only fail (every
  experience failing, or the core itself) is restarted by its service manager, while one
  failing experience is quarantined long before that.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

LIMIT = 3
WINDOW_S = 60.0
FAILSAFE_S = 2.0
LOG_EVERY_S = 60.0
WATCHDOG_GRACE_S = 30.0
HEALTHY_S = 10.0


@dataclass
class Failsafe:
    """The failsafe state: which experience failed, why, and since when."""

    experience: str
    reason: str
    since: float

    def over(self, now: float) -> bool:
        return now - self.since >= FAILSAFE_S


@dataclass
class Streak:
    """Failures in a row (see the module's invariants)."""

    since: float | None = None
    last: float | None = None

    def failed(self, now: float) -> None:
        if self.since is None or self.last is None or now - self.last >= HEALTHY_S:
            self.since = now
        self.last = now

    def starving(self, now: float) -> bool:
        """True while a streak has lasted ``WATCHDOG_GRACE_S`` and the last failure is recent."""
        return (self.since is not None and self.last is not None and now - self.last < HEALTHY_S
                and now - self.since >= WATCHDOG_GRACE_S)


@dataclass
class Quarantine:
    limit: int = LIMIT
    window_s: float = WINDOW_S
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _disabled: dict[str, str] = field(default_factory=dict)  # name → reason
    _day: str | None = None

    def _roll(self, day: str) -> None:
        if day != self._day:
            self._day = day
            self._failures.clear()
            self._disabled.clear()

    def failed(self, name: str, now: float, day: str, reason: str) -> bool:
        """Count a failure of ``name``; True when this one disables it (for the rest of ``day``)."""
        self._roll(day)
        if name in self._disabled:
            return False
        times = self._failures.setdefault(name, deque())
        times.append(now)
        while times and now - times[0] > self.window_s:
            times.popleft()
        if len(times) >= self.limit:
            self._disabled[name] = (f"{name} disabled for the rest of the day after {len(times)} failures within "
                                    f"{self.window_s:g} s: {reason}")
            return True
        return False

    def disabled(self, name: str, day: str) -> bool:
        self._roll(day)
        return name in self._disabled

    def reasons(self, day: str) -> list[str]:
        """One line per disabled experience (empty on a new day)."""
        self._roll(day)
        return [self._disabled[name] for name in sorted(self._disabled)]


@dataclass
class LogGate:
    every_s: float = LOG_EVERY_S
    _last: dict[str, float] = field(default_factory=dict)
    _suppressed: dict[str, int] = field(default_factory=dict)

    def allow(self, name: str, now: float) -> tuple[bool, int]:
        """(log this one?, how many were held back since the last logged one)."""
        last = self._last.get(name)
        if last is not None and now - last < self.every_s:
            self._suppressed[name] = self._suppressed.get(name, 0) + 1
            return False, 0
        self._last[name] = now
        return True, self._suppressed.pop(name, 0)
