"""The real console for the tests: ``python -m appliance.console serve`` on a free port against a throw-away
PostgreSQL database, and an HTTP client that logs in and posts forms as a browser does (cookies, CSRF field).

``console_db`` makes a database on the machine's PostgreSQL (dropped at the end); ``ConsoleServer`` runs the
server process (stopped with SIGTERM, its log kept for failures); ``Client`` keeps the session cookie and takes
each form's CSRF token from the last page it read.  Browser tests drive Chromium instead (Playwright).
"""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from appliance.ops.testbroker import free_port

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REPO = Path(__file__).resolve().parents[1]


@contextmanager
def console_db() -> Iterator[str]:
    """A new, empty database's URL; dropped (with its connections) afterwards."""
    import psycopg

    name = f"console_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Response:
    status: int
    url: str
    body: str
    headers: dict[str, str]


class Client:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.last = ""

    def request(self, path: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                method: str | None = None) -> Response:
        body = None if data is None else urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(self.base + path, data=body, headers=headers or {}, method=method)
        try:
            with self._opener.open(request, timeout=30) as answer:
                response = Response(answer.status, answer.url, answer.read().decode("utf-8", "replace"),
                                    dict(answer.headers))
        except urllib.error.HTTPError as error:
            response = Response(error.code, error.url, error.read().decode("utf-8", "replace"), dict(error.headers))
        if response.headers.get("content-type", "").startswith("text/html"):
            self.last = response.body
        return response

    def get(self, path: str, **headers: str) -> Response:
        return self.request(path, headers=headers)

    def csrf(self) -> str:
        match = re.search(r'name="csrf" value="([^"]*)"', self.last)
        return match.group(1) if match else ""

    def post(self, path: str, data: dict[str, str] | None = None, csrf: bool = True) -> Response:
        return self.request(path, {**({"csrf": self.csrf()} if csrf else {}), **(data or {})})

    def login(self, name: str, password: str, timezone: str = "") -> Response:
        page = self.get("/login")
        token = re.search(r'name="login_token" value="([^"]*)"', page.body)
        return self.request("/login", {"name": name, "password": password, "timezone": timezone, "next": "/fleet",
                                       "login_token": token.group(1) if token else ""})


class ConsoleServer:
    def __init__(self, db: str, data_dir: Path, *extra: str) -> None:
        self.db = db
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "console.log"
        self.extra = extra
        self.process: subprocess.Popen | None = None

    def start(self) -> ConsoleServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance.console", "serve", "--db", self.db, "--data-dir", str(self.data_dir),
             "--listen", f"127.0.0.1:{self.port}", "--public-url", self.base, *self.extra],
            cwd=REPO, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the console exited {self.process.returncode}: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the console did not answer within 60 s: {self.log.read_text()[-3000:]}")

    def admin_password(self) -> str:
        return (self.data_dir / "first-run-password").read_text().splitlines()[1]

    def client(self, login: bool = True) -> Client:
        client = Client(self.base)
        if login:
            assert client.login("admin", self.admin_password()).status == 200
        return client

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
