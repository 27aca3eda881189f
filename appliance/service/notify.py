"""Telling systemd how the kiosk is doing: READY once it shows camera frames, WATCHDOG while they flow.

The unit is ``Type=notify`` with ``WatchdogSec``: systemd restarts the service
when the pings stop.  The pings come from the render loop and only while frames
progress, so a pipeline frozen in a worker (the loop still turning, nothing
new to show, no problem reported) is restarted, where a thread merely kept
alive would hide it.  A camera that is reported missing is *not* a freeze:
the screen is doing its job (attract with "Camera reconnecting…") and a
restart would not bring the camera back, so pings continue while a problem is
reported, and READY is sent after a grace period even without a first frame —
otherwise a device booted without its camera would end in a restart loop and
a black screen.

Without ``$NOTIFY_SOCKET`` (not under systemd) there is no notifier at all:
``ServiceNotifier.from_environment`` returns None and the loop skips the hook.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

#: Seconds to wait for a first camera frame before declaring READY anyway (while a problem is reported);
#: well inside the unit's TimeoutStartSec.
READY_GRACE_S = 20.0
#: How often STATUS= is refreshed; systemd only shows the latest, so more often is waste.
STATUS_EVERY_S = 5.0


def socket_address(value: str) -> str | bytes:
    """``$NOTIFY_SOCKET`` as an address for ``AF_UNIX``: a leading '@' names an abstract socket (a NUL byte)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    raise ValueError(f"NOTIFY_SOCKET={value!r} is neither a path nor an abstract socket ('@name')")


class DatagramSender:
    """sd_notify over the datagram socket itself, for machines without systemd-python."""

    def __init__(self, address: str | bytes) -> None:
        self._address = address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def __call__(self, message: str) -> None:
        self._socket.sendto(message.encode(), self._address)


def sender_from(environ: Mapping[str, str]) -> Callable[[str], None] | None:
    """A function sending one notification, or None when not run by systemd with ``Type=notify``.

    systemd-python reads the process environment itself, so it is used only for that one.
    """
    value = environ.get("NOTIFY_SOCKET")
    if not value:
        return None
    if environ is os.environ:
        try:
            from systemd import daemon
        except ImportError:
            pass
        else:
            def send(message: str) -> None:
                if not daemon.notify(message):
                    raise OSError(f"systemd.daemon.notify could not reach {value}")
            return send
    return DatagramSender(socket_address(value))


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

    def __init__(self, send: Callable[[str], None], watchdog_s: float | None,
                 ready_grace_s: float = READY_GRACE_S, status_every_s: float = STATUS_EVERY_S) -> None:
        self._send = send
        self._ping_every = watchdog_s / 2 if watchdog_s else None
        self._ready_grace_s = ready_grace_s
        self._status_every_s = status_every_s
        self._started: float | None = None
        self._ready = False
        self._last_ping = float("-inf")
        self._last_status = float("-inf")
        self._last_kind = ""
        self._context = ""
        self._failed = False

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ServiceNotifier | None:
        environ = os.environ if environ is None else environ
        send = sender_from(environ)
        if send is None:
            return None
        interval = watchdog_interval(environ)
        log.info("systemd notification socket found; watchdog %s",
                 f"every {interval:.0f} s (pinging every {interval / 2:.1f} s)" if interval else "off")
        return cls(send, interval)

    def frame_shown(self, now: float, fps: float, backend: str, campaign: str) -> None:
        """A new camera frame reached the screen: display, models and camera all work."""
        self._context = f"backend {backend} · campaign {campaign}"
        self._mark_ready(now, "first camera frame shown")
        self._ping(now)
        self._status(now, f"showing {fps:.1f} fps · {self._context}")

    def frame_missed(self, now: float, problem: str | None) -> None:
        """The loop turned without a new frame.  Only a reported problem keeps the watchdog fed."""
        if self._started is None:
            self._started = now
        if problem is None:
            return
        if now - self._started >= self._ready_grace_s:
            self._mark_ready(now, f"without a camera frame: {problem}")
        self._ping(now)
        self._status(now, f"degraded: {problem}" + (f" · {self._context}" if self._context else ""))

    def stopping(self) -> None:
        self._notify("STOPPING=1\nSTATUS=stopping")

    def _mark_ready(self, now: float, why: str) -> None:
        if self._started is None:
            self._started = now
        if not self._ready:
            self._ready = True
            log.info("ready (%s)", why)
            self._notify("READY=1")

    def _ping(self, now: float) -> None:
        if self._ready and self._ping_every is not None and now - self._last_ping >= self._ping_every:
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
            self._send(message)
            self._failed = False
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify systemd (%s): %s", message.split("\n")[0], exc)
            self._failed = True
