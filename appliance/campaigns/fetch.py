"""Downloading one asset over HTTP(S) into a ``.part`` file, resuming with a Range request.

Mall networks drop; a half-downloaded 500 MB video must not start again from zero,
so whatever is already in the part file is kept and only the rest is asked for.
"""

from __future__ import annotations

import http.client
import os
import re
from collections.abc import Callable
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from appliance.campaigns.errors import Unreachable
from appliance.errors import ApplianceError

CHUNK = 64 * 1024
CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


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


def download_part(url: str, part: Path, size: int, timeout: float, on_bytes: Callable[[int], None]) -> None:
    """Bring ``part`` to ``size`` bytes from ``url``; ``on_bytes(n)`` after every chunk (n < 0: bytes discarded).

    Raises Unreachable when the transfer stops early (call again to resume) and
    ApplianceError when the server answers something that retrying will not fix.
    ``on_bytes`` may raise to abort; the part file keeps what arrived.
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
    try:
        with urlopen(_request(url, have), timeout=timeout) as response:
            start = _resumed_from(response, have, url)
            if start < have:
                on_bytes(start - have)
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and start + int(length) > size:
                raise ApplianceError(f"{url}: the server sends {start + int(length)} bytes, the document says {size}")
            received = start
            with open(part, "ab" if start else "wb") as out:
                while chunk := response.read(CHUNK):
                    received += len(chunk)
                    if received > size:
                        raise ApplianceError(f"{url}: the server sends more than the {size} bytes the document says")
                    out.write(chunk)
                    on_bytes(len(chunk))
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
        raise Unreachable(f"{url}: {getattr(exc, 'reason', None) or exc}") from exc
    if received < size:
        raise Unreachable(f"{url}: the connection ended after {received} of {size} bytes")
