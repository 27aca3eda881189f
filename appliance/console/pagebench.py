"""``python -m appliance.console.pagebench --db URL``: how fast the console's pages load, as a browser asks for them.

It starts the console (``serve``, its own process, on a free port) against the database, logs in as a temporary
admin made for the run (removed at the end), and fetches each page ``--runs`` times after one warm-up: the fleet
(all, a site, a state), a screen, the campaigns, the audit log and the analytics (the fleet, the busiest campaign,
a site, a screen, over the last 30 days).  It prints each page's p50 and p95 in milliseconds (the whole HTTP
request: query, template, transfer) and its size.  Read-only apart from the temporary user and its session: run
it on a seeded database (``appliance.console.seed``) to measure a month of a thousand screens.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from appliance.console import auth
from appliance.console.client import Client, answers
from appliance.console.db import Database
from appliance.console.fleet import site_of
from appliance.console.querybench import percentiles
from appliance.console.trial import Child
from appliance.errors import ApplianceError, command_line
from appliance.ops.testbroker import free_port


def _targets(conn: Any) -> dict[str, str]:
    """A site, a screen and the busiest campaign of the data, to name in the pages' filters."""
    device = conn.execute("SELECT device FROM devices ORDER BY device LIMIT 1").fetchone()
    campaign = conn.execute("SELECT data->>'campaign' FROM events WHERE type = 'session_start' "
                            "AND ts > now() - interval '2 days' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()
    if device is None:
        raise ApplianceError("the database has no screens in its registry (seed it: python -m appliance.console.seed)")
    return {"device": device[0], "site": site_of(device[0]), "campaign": (campaign[0] if campaign else None) or ""}


def pages(targets: dict[str, str]) -> dict[str, str]:
    site, device, campaign = (quote(targets[key]) for key in ("site", "device", "campaign"))
    return {
        "fleet": "/fleet", "fleet, a site": f"/fleet?site={site}", "fleet, online": "/fleet?state=online",
        "a screen": f"/screens/{device}", "campaigns": "/campaigns", "audit log": "/audit",
        "analytics, fleet": "/analytics?days=30", "analytics, a campaign": f"/analytics?days=30&campaign={campaign}",
        "analytics, a site": f"/analytics?days=30&site={site}",
        "analytics, a screen": f"/analytics?days=30&device={device}", "analytics, fleet, 7 days": "/analytics?days=7",
    }


def _time(client: Client, path: str, runs: int) -> dict[str, Any]:
    samples, size = [], 0
    for run in range(runs + 1):
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status != 200:
            raise ApplianceError(f"{path} answered {answer.status}: {answer.body[:300]}")
        if run:
            samples.append(elapsed)
        size = len(answer.body.encode())
    p50, p95 = percentiles(samples)
    return {"p50": round(p50, 1), "p95": round(p95, 1), "kb": round(size / 1024)}


def run(url: str, runs: int) -> dict[str, dict[str, Any]]:
    database = Database(url, max_size=1)
    name, password = f"pagebench-{secrets.token_hex(4)}", auth.new_password()
    try:
        database.migrate([auth.SCHEMA])
        with database.connection() as conn:
            targets = _targets(conn)
            auth.add_user(conn, name, password, "admin")
        with tempfile.TemporaryDirectory(prefix="oivis-pagebench-") as data:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            server = Child("console", [sys.executable, "-m", "appliance.console", "serve", "--db", url, "--listen",
                                       f"127.0.0.1:{port}", "--data-dir", data, "--public-url", base,
                                       "--log-level", "warning"], Path(data) / "console.log").start()
            try:
                server.wait_for(lambda: answers(f"{base}/healthz"), f"answer on {base}", timeout=120)
                client = Client(base)
                if client.login(name, password).status != 200:
                    raise ApplianceError(f"cannot log in to {base}: {client.last[:300]}")
                return {page: _time(client, path, runs) for page, path in pages(targets).items()}
            finally:
                server.stop()
    finally:
        with database.connection() as conn:
            conn.execute("DELETE FROM console_users WHERE name = %s", (name,))
        database.close()


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.console.pagebench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, metavar="URL", help="a PostgreSQL database ingest (or seed) filled")
    parser.add_argument("--runs", type=int, default=20, help="timed loads of each page (after one warm-up)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args(argv)
    figures = run(args.db, args.runs)
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"{'page':<24} {'p50 ms':>8} {'p95 ms':>8} {'KB':>6}")
    for page, figure in figures.items():
        print(f"{page:<24} {figure['p50']:>8} {figure['p95']:>8} {figure['kb']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
