"""``ops fleet load``: a small bounded run through the CLI — the shipped broker config, two ingest workers on the
shared subscription, PostgreSQL, 20 screens with their own certificates — stores every event once, even with an
ingest worker killed with SIGKILL in the middle.

Needs mosquitto and the local PostgreSQL (``postgresql://postgres@127.0.0.1/test``); skipped without them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.ops.load import POSTGRES
from appliance.ops.testbroker import MOSQUITTO

ROOT = Path(__file__).resolve().parents[1]


def _postgres_reachable() -> bool:
    try:
        import psycopg

        psycopg.connect(POSTGRES, connect_timeout=3).close()
    except Exception:  # noqa: BLE001 - any failure means: no server to run against
        return False
    return True


def test_load_run_stores_every_event_once_with_an_ingest_worker_killed() -> None:
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    if not _postgres_reachable():
        pytest.skip(f"no PostgreSQL at {POSTGRES}")
    run = subprocess.run([sys.executable, "-m", "appliance.ops", "fleet", "load", "--devices", "20", "--seconds", "10",
                          "--workers", "2", "--kill-ingest-after", "3", "--for", "4", "--confirm-timeout", "5",
                          "--grace", "20", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["connected"] == 20
    assert report["sent"] > 100  # 20 screens, 1-20 events every 2-6 s, for 10 s
    assert report["lost"] == 0 and report["duplicates"] == 0 and report["unconfirmed"] == 0
    assert report["stored"] == report["acknowledged"] == report["sent"]
    assert "ingest-1 killed -9 for 4 s" in report["killed"]
    assert report["cpu_broker_s"] > 0 and report["cpu_ingest_s"] > 0 and report["cpu_devices_s"] > 0
    assert "ingest-1 killed with SIGKILL" in run.stderr
    directory = Path(run.stderr.split("\n")[0].rsplit(" in ", 1)[1])
    assert directory.name.startswith("oivis-load-") and not directory.exists(), "the run's directory is removed"
