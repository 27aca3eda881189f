"""The console's foundation against a real server process and PostgreSQL: logging in, roles, CSRF, throttling,
the audit log, and the fleet pages read from the device registry as ingest writes it.

The registry rows are written by ingest's own store (``PostgresStore.write_devices`` on parsed reports), so the
pages read what production has; commands to a real device are in the browser and trial tests.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from console_server import ConsoleServer, console_db

from appliance.console import auth
from appliance.ops.eventstore import PostgresStore
from appliance.ops.registry import DeviceReport


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with console_db() as url:
        console = ConsoleServer(url, tmp_path_factory.mktemp("console")).start()
        try:
            yield console
        finally:
            console.stop()


def report(store: PostgresStore, device: str, kind: str, payload: dict, at: datetime, expiry_s: float | None = None):
    parsed = DeviceReport.parse(f"oivis/v1/{device}/{kind}", json.dumps(payload).encode(), at, expiry_s=expiry_s)
    store.write_devices([parsed])


def test_first_run_password_file_is_private_and_logs_never_hold_it(server: ConsoleServer) -> None:
    path = server.data_dir / "first-run-password"
    assert path.stat().st_mode & 0o777 == 0o600
    assert server.admin_password() not in server.log.read_text()


def test_pages_need_a_login_and_the_login_refuses_wrong_passwords(server: ConsoleServer) -> None:
    anonymous = server.client(login=False)
    page = anonymous.get("/fleet")
    assert page.url.endswith("/login?next=/fleet") and "Log in" in page.body
    refused = anonymous.login("admin", "not the password")
    assert refused.status == 401 and "Wrong user name or password." in refused.body
    unknown = anonymous.login("nobody", "not the password")
    assert unknown.status == 401 and "Wrong user name or password." in unknown.body  # the same words: no oracle
    assert server.client().get("/fleet").status == 200


def test_a_login_without_its_form_token_is_refused(server: ConsoleServer) -> None:
    client = server.client(login=False)
    answer = client.request("/login", {"name": "admin", "password": server.admin_password(), "login_token": "x"})
    assert answer.status == 400 and "expired" in answer.body


def test_forms_without_the_sessions_csrf_token_are_refused(server: ConsoleServer) -> None:
    client = server.client()
    client.get("/users")
    assert client.post("/users", {"name": "mallory", "role": "admin"}, csrf=False).status == 403
    assert client.request("/users", {"csrf": "forged", "name": "mallory", "role": "admin"}).status == 403
    assert "mallory" not in client.get("/users").body


def test_roles_viewer_reads_operator_acts_admin_manages_users(server: ConsoleServer) -> None:
    admin = server.client()
    admin.get("/users")
    created = admin.post("/users", {"name": "vera", "role": "viewer"})
    password = re.search(r'<code class="secret">([^<]+)</code>', created.body).group(1)
    vera = server.client(login=False)
    assert vera.login("vera", password).status == 200
    assert vera.get("/fleet").status == 200
    assert vera.get("/users").status == 403 and "needs the admin role" in vera.get("/users").body
    assert vera.get("/audit").status == 403
    vera.get("/fleet")
    assert vera.post("/screens/mall-01-screen-1/commands", {"name": "reboot"}).status == 403
    audit = admin.get("/audit").body
    assert "user.add" in audit and "vera" in audit


def test_logins_are_throttled_per_user_even_with_the_right_password(server: ConsoleServer) -> None:
    admin = server.client()
    admin.get("/users")
    created = admin.post("/users", {"name": "tom", "role": "viewer"})
    password = re.search(r'<code class="secret">([^<]+)</code>', created.body).group(1)
    client = server.client(login=False)
    for _ in range(auth.MAX_FAILURES):
        assert client.login("tom", "wrong password!").status == 401
    throttled = client.login("tom", password)
    assert throttled.status == 429 and "Too many failed attempts" in throttled.body


def test_session_cookie_is_httponly_and_lax(server: ConsoleServer) -> None:
    client = server.client(login=False)
    page = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]*)"', page.body).group(1)
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(client.jar))
    body = f"name=admin&password={server.admin_password()}&login_token={token}&next=/fleet".encode()
    try:
        opener.open(urllib.request.Request(server.base + "/login", data=body), timeout=10)
    except urllib.error.HTTPError as error:  # the 303
        cookie = error.headers["set-cookie"]
    assert "oivis_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Content-Security-Policy" in dict(client.get("/login").headers) or \
        "content-security-policy" in dict(client.get("/login").headers)


def test_fleet_lists_the_registry_with_states_sites_and_alerts(server: ConsoleServer) -> None:
    store = PostgresStore(server.db)
    now = datetime.now(timezone.utc)
    try:
        report(store, "mall-01-screen-1", "status", {"state": "ready", "session": 3, "app": "0.1.0", "alerts": []},
               now)
        report(store, "mall-01-screen-1", "health", {"ts": now.isoformat(), "fps": 29.5,
                                                      "temperature_c": {"soc": 61.0}, "disk_free_mb": 20480},
               now, expiry_s=60)
        report(store, "mall-01-screen-1", "state/reported", {"applied_version": 4, "pending_version": 5,
                                                              "phase": "downloading", "progress": 0.5, "errors": []},
               now)
        report(store, "mall-01-screen-2", "status", {"state": "alert", "session": 1, "app": "0.1.0", "alerts": [
            {"code": "printer", "reason": "the printer is out of paper", "since": now.isoformat()}]}, now)
        report(store, "mall-01-screen-2", "health", {"ts": now.isoformat(), "fps": 30}, now, expiry_s=60)
        report(store, "gare-02-screen-1", "status", {"state": "ready", "session": 1}, now - timedelta(hours=2))
        report(store, "gare-02-screen-2", "status", {"state": "offline", "session": 1}, now)
    finally:
        store.close()
    client = server.client()
    page = client.get("/fleet").body
    for device in ("mall-01-screen-1", "mall-01-screen-2", "gare-02-screen-1", "gare-02-screen-2"):
        assert f'href="/screens/{device}"' in page
    assert "the printer is out of paper" in page and "29.5" in page and "→ v5" in page
    mall = client.get("/fleet?site=mall-01").body
    assert "mall-01-screen-2" in mall and "gare-02-screen-1" not in mall
    lost = client.get("/fleet?state=lost").body
    assert "gare-02-screen-1" in lost and "mall-01-screen-1" not in lost  # silent for 2 h: lost
    assert "gare-02-screen-2" in client.get("/fleet?state=offline").body
    screen = client.get("/screens/mall-01-screen-1")
    assert screen.status == 200 and "61.0 °C" in screen.body and "downloading" in screen.body
    chart = re.search(r'<script type="application/json" data-chart="health">(.*?)</script>', screen.body).group(1)
    figure = json.loads(chart)
    assert [trace["y"] for trace in figure["data"]] == [[29.5], [61.0]]  # ingest's sample: fps, hottest °C
    assert client.get("/screens/nobody-screen-9").status == 404
    viewer_page = client.get("/screens/mall-01-screen-2").body
    assert 'name="name" value="reboot"' in viewer_page  # the admin sees the commands


def test_commands_without_a_broker_say_so_and_send_nothing(server: ConsoleServer) -> None:
    client = server.client()
    page = client.get("/screens/mall-01-screen-1")
    assert "No broker is configured" in page.body
    answer = client.post("/screens/mall-01-screen-1/commands", {"name": "reload"})
    assert answer.status == 400 and "no broker is configured" in answer.body
    refused = client.post("/screens/mall-01-screen-1/commands", {"name": "set-config", "setting": "fleet.broker",
                                                                 "value": "evil:1883"})
    assert refused.status == 400 and "cannot be changed remotely" in refused.body


def test_an_empty_fleet_says_what_to_do(tmp_path: Path) -> None:
    with console_db() as url:
        console = ConsoleServer(url, tmp_path / "empty").start()
        try:
            page = console.client().get("/fleet").body
        finally:
            console.stop()
    assert "No screen has reported yet." in page and "ingest" in page


def test_exclusive_blocks_run_one_at_a_time_across_connections() -> None:
    """Pushes hold one advisory lock from version allocation to publishing, so their documents reach the broker
    in version order: the second block starts only after the first has ended (shown by the order of events)."""
    import threading

    from appliance.console.db import Database

    order: list[str] = []
    inside = threading.Event()
    release = threading.Event()
    with console_db() as url:
        database = Database(url)
        try:
            def first() -> None:
                with database.exclusive(99):
                    order.append("first in")
                    inside.set()
                    release.wait(30)
                    order.append("first out")

            def second() -> None:
                inside.wait(30)
                with database.exclusive(99):
                    order.append("second in")

            threads = [threading.Thread(target=first), threading.Thread(target=second)]
            for thread in threads:
                thread.start()
            inside.wait(30)
            with database.connection() as conn:  # the second waits on the lock: PostgreSQL says so
                for _ in range(300):
                    if conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                                    ).fetchone()[0]:
                        break
                    conn.commit()
                    threading.Event().wait(0.1)
            release.set()
            for thread in threads:
                thread.join(30)
        finally:
            database.close()
    assert order == ["first in", "first out", "second in"]


def test_the_first_run_password_file_goes_when_the_admin_chooses_a_password(tmp_path: Path) -> None:
    with console_db() as url:
        console = ConsoleServer(url, tmp_path / "first").start()
        try:
            client = console.client()
            client.get("/account")
            wrong = client.post("/account", {"password": "not it at all", "new_password": "a brand new secret"})
            assert wrong.status == 400 and "The current password is wrong." in wrong.body
            assert (console.data_dir / "first-run-password").exists()
            client.get("/account")
            changed = client.post("/account", {"password": console.admin_password(),
                                               "new_password": "a brand new secret"})
            assert changed.url.endswith("/login") and not (console.data_dir / "first-run-password").exists()
            assert console.client(login=False).login("admin", "a brand new secret").status == 200
        finally:
            console.stop()
