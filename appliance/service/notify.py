"""Telling systemd how the kiosk is doing: READY once it shows its first frame, WATCHDOG while frames flow.

The unit is ``Type=notify`` with ``WatchdogSec``: systemd restarts the service
when the pings stop.  The pings come from the render loop and only while frames
progress, so a pipeline frozen in a worker (the loop still turning, nothing
new to show, no problem reported) is restarted, where a thread merely kept
alive would hide it.  A camera that is reported missing is *not* a freeze:
the screen is doing its job (the campaign's attract loop) and a restart would
not bring the camera back, so pings continue while a problem is reported, and
READY is sent after a grace period even without a first camera frame —
otherwise a device booted without its camera would end in a restart loop and
a black screen.

The messages go through systemd-python's ``systemd.daemon.notify`` (Debian's
``python3-systemd`` on boards), which reads ``$NOTIFY_SOCKET`` from the process
environment.  Without ``$NOTIFY_SOCKET`` (not under systemd) there is no
notifier at all: ``ServiceNotifier.from_environment`` returns None and the loop
skips the hook; with it but without systemd-python, one error line names the
package and the kiosk runs without a notifier.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from appliance.readiness import READY_GRACE_S, Readiness

log = logging.getLogger(__name__)

#: How often STATUS= is refreshed; systemd only shows the latest, so more often is waste.
STATUS_EVERY_S = 5.0


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """The watchdog timeout in seconds, when systemd set one for this very process."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r (not a number)", usec)
        return None
    return seconds if seconds > 0 else None


class ServiceNotifier:
    """The render loop's link to systemd: one call per loop turn, ``frame_shown`` or ``frame_missed``."""

    def __init__(self, notify: Callable[[str], bool], watchdog_s: float | None,
                 ready_grace_s: float = READY_GRACE_S, status_every_s: float = STATUS_EVERY_S) -> None:
        """``notify`` is ``systemd.daemon.notify``: False when ``$NOTIFY_SOCKET`` is unset, OSError when unreachable."""
        self._send = notify
        self._ping_every = watchdog_s / 2 if watchdog_s else None
        self._readiness = Readiness(ready_grace_s)  # the grace stays well inside the unit's TimeoutStartSec
        self._status_every_s = status_every_s
        self._last_ping = float("-inf")
        self._last_status = float("-inf")
        self._last_kind = ""
        self._context = ""
        self._failed = False

    @classmethod
    def from_environment(cls) -> ServiceNotifier | None:
        """The notifier for this process, or None when systemd did not ask for one (or cannot be told)."""
        address = os.environ.get("NOTIFY_SOCKET")
        if not address:
            return None
        try:
            from systemd import daemon
        except ImportError as exc:
            log.error("NOTIFY_SOCKET=%s is set but systemd-python is not installed (%s; Debian's python3-systemd "
                      "on boards): running without READY/WATCHDOG/STATUS", address, exc)
            return None
        interval = watchdog_interval(os.environ)
        log.info("systemd notification socket %s; watchdog %s", address,
                 f"every {interval:.0f} s (pinging every {interval / 2:.1f} s)" if interval else "off")
        return cls(daemon.notify, interval)

    def frame_shown(self, now: float, fps: float, backend: str, campaign: str) -> None:
        """A new camera frame reached the screen: display, models and camera all work."""
        self._context = f"backend {backend} · campaign {campaign}"
        self._mark_ready(self._readiness.update(now, True, None))
        self._ping(now)
        self._status(now, f"showing {fps:.1f} fps · {self._context}")

    def frame_missed(self, now: float, problem: str | None) -> None:
        """The loop turned without a new frame.  Only a reported problem keeps the watchdog fed."""
        self._mark_ready(self._readiness.update(now, False, problem))
        if problem is None:
            return
        self._ping(now)
        self._status(now, f"degraded: {problem}" + (f" · {self._context}" if self._context else ""))

    def stopping(self) -> None:
        self._notify("STOPPING=1\nSTATUS=stopping")

    def _mark_ready(self, why: str | None) -> None:
        """READY=1, once: ``why`` is the reason the kiosk just became ready (see appliance.readiness)."""
        if why is not None:
            log.info("ready (%s)", why)
            self._notify("READY=1")

    def _ping(self, now: float) -> None:
        if self._readiness.ready and self._ping_every is not None and now - self._last_ping >= self._ping_every:
            self._last_ping = now
            self._notify("WATCHDOG=1")

    def _status(self, now: float, text: str) -> None:
        """Refreshed every few seconds, and at once when the state (showing / degraded) changes."""
        kind = text.split(":")[0].split(" ")[0]
        if kind != self._last_kind or now - self._last_status >= self._status_every_s:
            self._last_status = now
            self._last_kind = kind
            self._notify(f"STATUS={text}")

    def _notify(self, message: str) -> None:
        """Send, never raise: the kiosk must not die because systemd's socket went away."""
        try:
            problem = None if self._send(message) else "NOTIFY_SOCKET is no longer in the environment"
        except OSError as exc:
            problem = str(exc)
        if problem is not None and not self._failed:
            log.warning("cannot notify systemd (%s): %s", message.split("\n")[0], problem)
        self._failed = problem is not None
