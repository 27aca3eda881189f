"""The real console for the tests: ``python -m appliance.console serve`` on a free port against a throw-away
PostgreSQL database, and an HTTP client that logs in and posts forms as a browser does (cookies, CSRF field).

``console_db`` makes a database on the machine's PostgreSQL (dropped at the end); ``ConsoleServer`` runs the
server process (stopped with SIGTERM, its log kept for failures); ``Client`` keeps the session cookie and takes
each form's CSRF token from the last page it read.  Browser tests drive Chromium instead (Playwright).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.console.client import Client, Response, answers  # noqa: F401 - tests import them from here
from appliance.console.settings import FIRST_RUN_FILE
from appliance.console.trial import Child
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


class ConsoleServer:
    """``serve`` as a child process (``trial.Child``: its own session and log), answering on a free port."""

    def __init__(self, db: str, data_dir: Path, *extra: str) -> None:
        self.db = db
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "console.log"
        self.child = Child("console", [
            sys.executable, "-m", "appliance.console", "serve", "--db", db, "--data-dir", str(data_dir),
            "--listen", f"127.0.0.1:{self.port}", "--public-url", self.base, *extra], self.log)

    def start(self) -> ConsoleServer:
        self.child.start().wait_for(lambda: answers(f"{self.base}/healthz"), f"answer on {self.base}", timeout=60)
        return self

    def admin_password(self) -> str:
        return (self.data_dir / FIRST_RUN_FILE).read_text().splitlines()[1]

    def client(self, login: bool = True) -> Client:
        client = Client(self.base)
        if login:
            assert client.login("admin", self.admin_password()).status == 200
        return client

    def stop(self) -> None:
        self.child.stop()
