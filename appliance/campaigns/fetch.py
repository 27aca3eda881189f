"""Downloading one asset over HTTP(S) into a ``.part`` file, resuming with a Range request.

Mall networks drop; a half-downloaded 500 MB video must not start again from zero,
so whatever is already in the part file is kept and only the rest is asked for.

A crawling server must not hold the device: every download belongs to a
``Transfer`` with an overall deadline and a low-speed limit (as curl's
``--max-time`` and ``--speed-limit``/``--speed-time``), the body is read as it
arrives (never waiting for a full chunk), and ``Transfer.interrupt`` — callable
from any thread — shuts the open connections down, so a read blocked on a
server that sends nothing returns at once.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import HTTPHandler, HTTPSHandler, OpenerDirector, Request, build_opener

from appliance.campaigns.errors import Stalled, Unreachable
from appliance.errors import ApplianceError

CHUNK = 64 * 1024
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class Interrupted(Exception):
    """``Transfer.interrupt`` was called: the download stops quietly (the part file keeps what arrived)."""


@dataclass(frozen=True)
class DownloadLimits:
    #: Connecting, and silence on an open connection.
    timeout_s: float = 30.0
    #: One attempt at a whole document's downloads; 0 = none.
    deadline_s: float = 3600.0
    #: Below this many bytes per second for ``low_speed_window_s`` the download is abandoned; 0 = no limit.
    low_speed_bytes_per_s: int = 1024
    low_speed_window_s: float = 60.0


class Transfer:
    """The downloads of one attempt at one document: their deadline, and an off switch any thread may pull."""

    def __init__(self, limits: DownloadLimits) -> None:
        self.limits = limits
        self._deadline = time.monotonic() + limits.deadline_s if limits.deadline_s else None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._interrupted = False

    @property
    def interrupted(self) -> bool:
        return self._interrupted

    def interrupt(self) -> None:
        """Stop every download of this transfer now, including one blocked in a read."""
        with self._lock:
            self._interrupted = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._interrupted:
                self._sockets.append(sock)
                return
        _shut(sock)

    def timeout(self) -> float:
        """The socket timeout for a new connection: the read timeout, or less when the deadline is nearer."""
        if self._deadline is None:
            return self.limits.timeout_s
        return max(0.01, min(self.limits.timeout_s, self._deadline - time.monotonic()))

    def check(self, url: str) -> None:
        if self._interrupted:
            raise Interrupted
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise Stalled(f"{url}: not complete within the {self.limits.deadline_s:g} s download deadline")

    def opener(self) -> OpenerDirector:
        """urllib's opener (proxies, redirects) whose connections this transfer can shut down."""
        return build_opener(_TrackingHTTPHandler(self), _TrackingHTTPSHandler(self))


def _shut(sock: socket.socket) -> None:
    try:  # the plain socket call, also for TLS: it wakes a read blocked in another thread with an EOF
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing to wake


class _Tracked:
    """Mixed into http.client's connections: each socket is handed to the transfer once connected."""

    def __init__(self, *args, transfer: Transfer, **kwargs) -> None:
        self.transfer = transfer
        super().__init__(*args, **kwargs)

    def connect(self) -> None:
        super().connect()
        self.transfer.track(self.sock)


class _TrackedHTTPConnection(_Tracked, http.client.HTTPConnection):
    pass


class _TrackedHTTPSConnection(_Tracked, http.client.HTTPSConnection):
    pass


class _TrackingHTTPHandler(HTTPHandler):
    def __init__(self, transfer: Transfer) -> None:
        super().__init__()
        self.transfer = transfer

    def do_open(self, http_class, req, **kwargs):
        def connection(*args, **kw):
            return _TrackedHTTPConnection(*args, transfer=self.transfer, **kw)
        return super().do_open(connection, req, **kwargs)


class _TrackingHTTPSHandler(HTTPSHandler):
    def __init__(self, transfer: Transfer) -> None:
        super().__init__()
        self.transfer = transfer

    def do_open(self, http_class, req, **kwargs):
        def connection(*args, **kw):
            return _TrackedHTTPSConnection(*args, transfer=self.transfer, **kw)
        return super().do_open(connection, req, **kwargs)


class _Speed:
    """The low-speed limit: fewer than ``limit`` bytes/s over a whole window abandons the download."""

    def __init__(self, limits: DownloadLimits, url: str) -> None:
        self._limit, self._window, self._url = limits.low_speed_bytes_per_s, limits.low_speed_window_s, url
        self._start, self._bytes = time.monotonic(), 0

    def add(self, count: int) -> None:
        if not self._limit:
            return
        self._bytes += count
        elapsed = time.monotonic() - self._start
        if elapsed < self._window:
            return
        if self._bytes < self._limit * elapsed:
            raise Stalled(f"{self._url}: too slow ({self._bytes / elapsed:.0f} B/s over {elapsed:.0f} s, "
                          f"under the low-speed limit of {self._limit} B/s)")
        self._start, self._bytes = time.monotonic(), 0


def _request(url: str, offset: int) -> Request:
    headers = {"User-Agent": "oivis-appliance", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return Request(url, headers=headers)


def _resumed_from(response: http.client.HTTPResponse, offset: int, url: str) -> int:
    """Where the response body starts in the file: ``offset`` for a matching 206, 0 for a full 200."""
    if response.status == 200:
        return 0
    match = CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
    if response.status != 206 or not match or int(match.group(1)) != offset:
        raise ApplianceError(
            f"{url}: asked for bytes from {offset}, got status {response.status} "
            f"with Content-Range {response.headers.get('Content-Range')!r}"
        )
    return offset


def download_part(url: str, part: Path, size: int, transfer: Transfer, on_bytes: Callable[[int], None]) -> None:
    """Bring ``part`` to ``size`` bytes from ``url``; ``on_bytes(n)`` after every read (n < 0: bytes discarded).

    Raises Unreachable when the transfer stops early (call again to resume), Stalled
    when it is too slow or past its deadline, Interrupted when ``transfer`` was
    interrupted, and ApplianceError when the server answers something that retrying
    will not fix. ``on_bytes`` may raise to abort; the part file keeps what arrived.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise ApplianceError(f"{url}: only http and https URLs are downloaded")
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        on_bytes(-have)
        have = 0
    if have == size:
        return
    transfer.check(url)
    speed = _Speed(transfer.limits, url)
    try:
        with transfer.opener().open(_request(url, have), timeout=transfer.timeout()) as response:
            start = _resumed_from(response, have, url)
            if start < have:
                on_bytes(start - have)
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and start + int(length) > size:
                raise ApplianceError(f"{url}: the server sends {start + int(length)} bytes, the document says {size}")
            received = start
            with open(part, "ab" if start else "wb") as out:
                while chunk := response.read1(CHUNK):
                    transfer.check(url)
                    received += len(chunk)
                    if received > size:
                        raise ApplianceError(f"{url}: the server sends more than the {size} bytes the document says")
                    out.write(chunk)
                    on_bytes(len(chunk))
                    speed.add(len(chunk))
                out.flush()
                os.fsync(out.fileno())
    except HTTPError as exc:
        if exc.code == 416:
            part.unlink(missing_ok=True)
            on_bytes(-have)
            raise Unreachable(f"{url}: the server refused to resume at byte {have}; starting over") from exc
        if exc.code >= 500 or exc.code in (408, 429):
            raise Unreachable(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        raise ApplianceError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (URLError, OSError, http.client.HTTPException) as exc:
        if transfer.interrupted:
            raise Interrupted from exc
        raise Unreachable(f"{url}: {getattr(exc, 'reason', None) or exc}") from exc
    if received < size:
        transfer.check(url)
        raise Unreachable(f"{url}: the connection ended after {received} of {size} bytes")
