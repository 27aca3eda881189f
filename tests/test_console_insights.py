"""The analytics page and its CSV against a real console process: events stored the way ingest stores them
(``PostgresStore.write``), then read back from the page's totals, its charts' figures and the CSV exports.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from console_server import ConsoleServer, console_db

from appliance.ops.eventbatch import EventRow
from appliance.ops.eventstore import PostgresStore

NOW = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=30)


def visit(device: str, seq: int, campaign: str, experience: str, *steps: tuple[str, dict[str, Any]],
          dwell: float = 30.0) -> list[EventRow]:
    session = str(uuid.uuid4())
    events = [("session_start", {}), ("experience_chosen", {"experience": experience}), *steps,
              ("session_end", {"dwell_s": dwell})]
    return [EventRow(str(uuid.uuid4()), device, seq + n, NOW + timedelta(seconds=n), "", kind,
                     json.dumps({"session": session, "campaign": campaign, **data}), False, "", None)
            for n, (kind, data) in enumerate(events)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with console_db() as url:
        store = PostgresStore(url)
        store.write([
            *visit("mall-01-screen-1", 1, "winter", "rps", ("rps_round", {"outcome": "win"}),
                   ("rps_result", {"winner": "shopper"}), dwell=40),
            *visit("mall-01-screen-1", 10, "winter", "photo", ("photo_taken", {"photo_id": "p1"}),
                   ("photo_shared", {"photo_id": "p1"}), dwell=20),
            *visit("mall-01-screen-2", 1, "winter", "rps", ("rps_result", {"winner": "star"}), dwell=60),
            *visit("gare-02-screen-1", 1, "spring", "pose", ("pose_final", {"scores": {"left": 72, "right": 35}})),
        ], [])
        store.close()
        console = ConsoleServer(url, tmp_path_factory.mktemp("insights")).start()
        try:
            yield console
        finally:
            console.stop()


def totals(body: str) -> dict[str, str]:
    return dict(re.findall(r'data-total="(\w+)"><div class="n">([^<]*)</div>', body))


def figure(body: str, chart: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" data-chart="{chart}">(.*?)</script>', body, re.S)
    assert found, f"no {chart} chart on the page"
    return json.loads(found.group(1))


def test_the_page_shows_the_stored_events(server: ConsoleServer) -> None:
    page = server.client().get("/analytics?days=7").body
    assert totals(page) == {"sessions": "4", "dwell": "38 s", "plays": "4", "rps": "2", "pose": "1", "photos": "1",
                            "shared": "1", "printed": "0", "scanned": "0"}
    plays = figure(page, "plays")["data"][0]
    assert dict(zip(plays["y"], plays["x"], strict=True)) == {"rps": 2, "photo": 1, "pose": 1}
    assert figure(page, "rps")["data"][0]["y"] == [1, 1, 0]
    assert figure(page, "funnel")["data"][0]["x"] == [1, 1, 0, 0]
    assert sum(figure(page, "sessions-per-hour")["data"][0]["y"]) == 4


def test_filters_narrow_to_a_campaign_a_site_and_a_screen(server: ConsoleServer) -> None:
    client = server.client()
    assert totals(client.get("/analytics?campaign=winter").body)["sessions"] == "3"
    assert totals(client.get("/analytics?site=gare-02").body)["sessions"] == "1"
    assert totals(client.get("/analytics?device=mall-01-screen-1").body)["sessions"] == "2"
    empty = client.get("/analytics?campaign=autumn").body
    assert totals(empty)["sessions"] == "0" and "No shopper activity here yet." in empty
    assert client.get("/analytics?days=5").status == 400
    assert client.get("/analytics?device=not%20a%20device").status == 400


def test_each_chart_exports_its_numbers_as_csv(server: ConsoleServer) -> None:
    client = server.client()
    answer = client.get("/analytics.csv?chart=plays&days=30&campaign=winter")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/csv")
    assert 'filename="oivis-plays-winter-' in answer.headers["content-disposition"]
    assert list(csv.reader(io.StringIO(answer.body))) == [["experience", "plays"], ["rps", "2"], ["photo", "1"]]
    funnel = list(csv.reader(io.StringIO(client.get("/analytics.csv?chart=funnel").body)))
    assert funnel == [["step", "count"], ["photos", "1"], ["shared", "1"], ["printed", "0"], ["QR scanned", "0"]]
    assert client.get("/analytics.csv?chart=nothing").status == 400


def test_a_viewer_needs_a_login_and_hours_are_in_the_users_zone(server: ConsoleServer, tmp_path: Path) -> None:
    assert "/login" in server.client(login=False).get("/analytics").url
    client = server.client()
    client.get("/account")
    client.post("/account", {"timezone": "America/New_York"})
    # a week of the user's days: the events, 30 minutes old, may lie before New York's last midnight
    page = client.get("/analytics?days=7").body
    assert "your time (America/New_York)" in page
    hours = figure(page, "sessions-per-hour")["data"][0]["x"]
    assert hours[0][11:16] == "00:00" and hours[0][19:] in ("-05:00", "-04:00")  # the user's midnight
