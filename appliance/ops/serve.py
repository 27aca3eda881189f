"""``campaign serve``: the assets of a campaign directory over HTTP, with Range, for small fleets.

Only the files the built document lists are served (by the URL path it gives
them), so a key or a draft that happens to lie in the directory never leaks.
Larger fleets put the same files behind any static web server or CDN and pass
its address as ``--asset-base-url``.
"""

from __future__ import annotations

import re
import shutil
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from appliance.errors import ApplianceError

CHUNK = 64 * 1024
SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    """The Range starts past the end of the file (answered 416)."""


def requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range, or None to send the whole file.

    Multiple or malformed ranges are ignored (a full 200 answer is allowed by RFC 9110).
    """
    match = SINGLE_RANGE.fullmatch(header.strip()) if header else None
    if not match or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":
        length = int(last_text)
        if length == 0:
            raise Unsatisfiable
        return max(0, size - length), size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or first > last:
        raise Unsatisfiable
    return first, last


class AssetServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], files: dict[str, Path],
                 handler: type[BaseHTTPRequestHandler] | None = None) -> None:
        self.files = files
        super().__init__(address, handler or AssetHandler)


class AssetHandler(BaseHTTPRequestHandler):
    server: AssetServer
    server_version = "oivis-serve"

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        file = self.server.files.get(unquote(urlsplit(self.path).path).lstrip("/"))
        if file is None or not file.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        size = file.stat().st_size
        try:
            byte_range = requested_range(self.headers.get("Range"), size)
        except Unsatisfiable:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        first, last = byte_range or (0, size - 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if byte_range else HTTPStatus.OK)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(last - first + 1))
        if byte_range:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if with_body:
            try:
                self.copy_range(file, first, last - first + 1)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def copy_range(self, file: Path, offset: int, length: int) -> None:
        """Write ``length`` bytes of ``file`` from ``offset`` to the client."""
        with open(file, "rb") as source:
            source.seek(offset)
            shutil.copyfileobj(_Limited(source, length), self.wfile, CHUNK)


class _Limited:
    """A file object that ends after ``remaining`` bytes (copyfileobj reads until b"")."""

    def __init__(self, source, remaining: int) -> None:
        self._source, self._remaining = source, remaining

    def read(self, size: int = -1) -> bytes:
        size = self._remaining if size < 0 else min(size, self._remaining)
        data = self._source.read(size)
        self._remaining -= len(data)
        return data


def make_server(files: dict[str, Path], port: int, host: str = "") -> AssetServer:
    try:
        return AssetServer((host, port), files)
    except OSError as exc:
        raise ApplianceError(f"cannot listen on port {port}: {exc}") from exc
