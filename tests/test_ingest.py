"""``ingest`` (the fleet's events into SQLite or PostgreSQL): each event once, none lost, none blocking.

A batch the database cannot hold (a seq of 2**64, a NUL character in data) used to
roll the whole transaction back, never be acknowledged and come back forever,
blocking every good event behind it; a payload naming another device was refused.
Now each event is checked on its own, the bad ones (and messages that are no
batch) land in the ``quarantine`` table with their raw payload and the reason, the
good ones are stored, and ingest keeps going.  ``ingest`` runs as a subprocess
against a real mosquitto (tests/broker.py) so it can be killed -9 and restarted;
its database is SQLite in the test's directory, or a throw-away schema in the
local PostgreSQL (skipped, with the reason, when it is not reachable).
"""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
import random
import sqlite3
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from broker import (  # noqa: F401 - fixtures
    Broker,
    Operator,
    broker_fixture,
    operator_fixture,
    pki_fixture,
    wait_for,
)
from test_fleet_ops import Device, Process, devices, tls  # noqa: F401 - devices is a fixture

from appliance.errors import ApplianceError
from appliance.ops.cli import main
from appliance.ops.eventbatch import MAX_DATA_BYTES, MAX_EVENTS, MAX_MESSAGE_BYTES, BadBatch, EventBatch, Quarantined
from appliance.ops.eventstore import RowsRefused, open_store
from appliance.ops.ingest import Ingest
from appliance.ops.push import BrokerOptions

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
DEVICE = "screen-a"
EVENTS = f"oivis/v1/{DEVICE}/events"
OPTIONS = BrokerOptions("127.0.0.1:1")  # ``Ingest.record`` reads only the topic prefix

Rows = Callable[[], list[tuple[str, str, int, str, bool]]]


class Database:
    """A store's URL and plain SQL on the same database, to read back what ingest wrote."""

    def __init__(self, url: str, query: Callable[[str], list[tuple[Any, ...]]], kind: str) -> None:
        self.url, self.query, self.kind = url, query, kind

    def rows(self) -> list[tuple[str, str, int, str, bool]]:
        try:
            found = self.query("SELECT id, device, seq, type, historical FROM events ORDER BY seq")
        except LookupError:  # the table is not there yet
            return []
        return [(str(id_), device, seq, type_, bool(historical)) for id_, device, seq, type_, historical in found]

    def quarantine(self) -> list[tuple[str | None, str, int | None, bytes, str]]:
        try:
            found = self.query("SELECT device, topic, event_index, payload, reason, received_at FROM quarantine "
                               "ORDER BY received_at, event_index NULLS LAST")
        except LookupError:
            return []
        assert all(received_at for *_, received_at in found)
        return [(device, topic, index, bytes(payload), reason) for device, topic, index, payload, reason, _ in found]


@pytest.fixture(name="sqlite_db")
def sqlite_db_fixture(tmp_path: Path) -> Database:
    path = tmp_path / "ingest" / "events.db"

    def query(sql: str) -> list[tuple[Any, ...]]:
        if not path.exists():
            raise LookupError(path)
        with sqlite3.connect(path) as db:
            try:
                return db.execute(sql).fetchall()
            except sqlite3.OperationalError as exc:  # no such table (yet)
                raise LookupError(sql) from exc

    return Database(f"sqlite:///{path}", query, "sqlite")


@pytest.fixture(name="postgres_db")
def postgres_db_fixture() -> Iterator[Database]:
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed (pip install -e '.[test]')")
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES}: {exc}")
    schema = f"ingest_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")

    def query(sql: str) -> list[tuple[Any, ...]]:
        admin.execute(f"SET search_path TO {schema}")
        try:
            cursor = admin.execute(sql)
            return cursor.fetchall() if cursor.description else []
        except psycopg.errors.UndefinedTable as exc:
            raise LookupError(sql) from exc

    try:
        yield Database(f"{POSTGRES}?options=-csearch_path%3D{schema}&application_name={schema}", query, "postgres")
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture(name="database", params=["sqlite", "postgres"])
def database_fixture(request: pytest.FixtureRequest) -> Database:
    return request.getfixturevalue(f"{request.param}_db")


def event(n: int, **fields: Any) -> dict[str, Any]:
    """The ``n``-th event of a device (seq ``n``), with ``fields`` changed."""
    return {"id": str(uuid.uuid4()), "seq": n, "ts": "2026-11-30T10:00:00.000+00:00", "type": "tick",
            "data": {"n": n}, **fields}


def batch(*events: dict[str, Any], device: str = DEVICE, historical: bool = False) -> bytes:
    return json.dumps({"device": device, "historical": historical, "events": list(events)}).encode()


def single_lines(text: str) -> list[str]:
    """The lines of ``text``, each checked to be one whole message (not the continuation of one)."""
    lines = text.splitlines()
    for line in lines:
        assert line.startswith(("ingesting ", "ingest: ", "ingest stopped: ", "warning: ", "error: ")), line
    return lines


# -- each event on its own --------------------------------------------------------------------------

BAD_EVENTS = [
    ({"seq": 2**64}, "seq 18446744073709551616 is not a whole number in 0..2**63-1"),
    ({"seq": 2**63}, "not a whole number in 0..2**63-1"),
    ({"seq": -1}, "seq -1 is not"),
    ({"seq": True}, "seq True is not"),
    ({"seq": 4.0}, "seq 4.0 is not"),
    ({"seq": "4"}, "seq '4' is not"),
    ({"id": "not-a-uuid"}, "id 'not-a-uuid' is not a UUID"),
    ({"id": 7}, "id 7 is not a UUID"),
    ({"ts": "2026-11-30T10:00:00"}, "has no time zone"),
    ({"ts": "2026-11-30T10:00:00+00:00\x00"}, "is not an ISO-8601 time"),
    ({"ts": "yesterday"}, "'yesterday' is not an ISO-8601 time"),
    ({"ts": 1700000000}, "is not an ISO-8601 time"),
    ({"ts": "0001-01-01T00:00:00+14:00"}, "outside years 1..9999 in UTC"),
    ({"type": "x" * 65}, "is not an identifier"),
    ({"type": "tick\nforged line"}, "is not an identifier"),
    ({"type": "tick\n"}, "is not an identifier"),
    ({"type": ""}, "is not an identifier"),
    ({"data": [1, 2]}, "data is [1, 2], not an object"),
    ({"data": {"text": "a\x00b"}}, "NUL character"),
    ({"data": {"a\x00": 1}}, "NUL character"),
    ({"data": {"deep": [{"text": "\ud800"}]}}, "lone surrogate"),
    ({"data": {"n": float("nan")}}, "holds the number nan"),
    ({"data": {"blob": "x" * MAX_DATA_BYTES}}, f"over the limit of {MAX_DATA_BYTES}"),
]


@pytest.mark.parametrize(("change", "reason"), BAD_EVENTS, ids=[reason for _, reason in BAD_EVENTS])
def test_each_event_is_checked_on_its_own(change: dict[str, Any], reason: str) -> None:
    good_before, bad, good_after = event(1), event(2, **change), event(3)
    parsed = EventBatch.parse(EVENTS, json.dumps({"device": DEVICE, "events": [good_before, bad, good_after]},
                                                 allow_nan=True).encode())
    rows, refused = parsed.check()
    assert [row.seq for row in rows] == [1, 3]
    assert [problem.index for problem in refused] == [1]
    assert refused[0].payload() == json.dumps(bad, separators=(",", ":")).encode()  # the event as sent
    assert reason in refused[0].reason and "event 1" in refused[0].reason, refused[0].reason


def test_events_in_every_form_a_device_may_send_are_accepted() -> None:
    upper = str(uuid.uuid4()).upper()
    no_data = event(3)
    del no_data["data"]
    sent = [event(1, ts="2026-11-30T10:00:00Z"), event(2, id=upper, ts="2026-11-30T11:00:00.123456+05:30"),
            no_data, event(2**63 - 1, type="session_start", data={"text": "Grüße ✓ 😀", "x": [1.5, None, True]})]
    rows, bad = EventBatch.parse(EVENTS, batch(*sent, historical=True)).check()
    assert bad == []
    assert [(row.seq, row.type, row.historical) for row in rows] == [
        (1, "tick", True), (2, "tick", True), (3, "tick", True), (2**63 - 1, "session_start", True)]
    assert rows[1].id == upper.lower() and rows[2].data_json == "{}"
    assert json.loads(rows[3].data_json) == sent[3]["data"]
    assert rows[0].ts.utcoffset().total_seconds() == 0 and rows[1].ts.utcoffset().total_seconds() == 19800


def test_a_missing_field_or_an_event_that_is_no_object_is_bad_alone() -> None:
    incomplete = event(2)
    del incomplete["ts"]
    parsed = EventBatch.parse(EVENTS, batch(event(1), incomplete, "tick", event(4)))
    rows, bad = parsed.check()
    assert [row.seq for row in rows] == [1, 4]
    assert [problem.reason for problem in bad] == [f"event 1 of {DEVICE} has no ts",
                                                   f"event 2 of {DEVICE} is 'tick', not an object"]


NOT_BATCHES = [
    (EVENTS, b"\xff\xfe not json", "not UTF-8 text"),
    (EVENTS, b"{not json", "is not JSON"),
    (EVENTS, b"[1, 2]", "is not a JSON object"),
    (EVENTS, b'{"device": "screen-a"}', 'has no "events" list'),
    (EVENTS, b'{"events": {}}', 'has no "events" list'),
    (EVENTS, b'{"events": [], "historical": "yes"}', "\"historical\" is 'yes', not true or false"),
    (EVENTS, b'{"events": [' + b",".join([b"1"] * (MAX_EVENTS + 1)) + b"]}", f"over the limit of {MAX_EVENTS}"),
    (EVENTS, b'{"events": [' + b"[" * 40 + b"]" * 40 + b"]}", "nests 42 levels deep"),
    (EVENTS, b'{"events": ["' + b"x" * MAX_MESSAGE_BYTES + b'"]}', f"over the limit of {MAX_MESSAGE_BYTES}"),
    ("oivis/v1/operator-x/events", b'{"events": []}', "a name reserved for the fleet's services"),
    ("oivis/v1/screen-a/status", b'{"events": []}', "is not a device's events topic"),
    ("other/screen-a/events", b'{"events": []}', "is not a device's events topic"),
]


@pytest.mark.parametrize(("topic", "payload", "reason"), NOT_BATCHES, ids=[r for _, _, r in NOT_BATCHES])
def test_a_message_that_is_no_events_batch_is_refused_whole(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(BadBatch) as refused:
        EventBatch.parse(topic, payload)
    assert reason in str(refused.value) and "\n" not in str(refused.value)


def test_the_device_is_the_topics_never_the_payloads() -> None:
    template = "acme/screens/{device_id}"
    parsed = EventBatch.parse("acme/screens/lobby-2/events", batch(event(1), device="other-9"), template)
    assert (parsed.device, parsed.claimed, parsed.misnamed) == ("lobby-2", "other-9", True)
    assert [row.device for row in parsed.check()[0]] == ["lobby-2"]
    parsed = EventBatch.parse("acme/screens/lobby-2/events", b'{"historical": true, "events": []}', template)
    assert (parsed.device, parsed.historical, parsed.misnamed) == ("lobby-2", True, False)
    with pytest.raises(ApplianceError, match="not a device's events topic under oivis/v1"):
        EventBatch.parse("acme/screens/lobby-2/events", b'{"events": []}')


# -- what the stores keep ---------------------------------------------------------------------------

def test_record_stores_the_good_events_and_quarantines_the_bad_with_their_raw_payload(database: Database) -> None:
    store = open_store(database.url)
    out = io.StringIO()
    ingest = Ingest(store, OPTIONS, out=out)
    overflow, nul = event(2, seq=2**64), event(3, data={"note": "a\x00b"})
    poison = batch(event(1), overflow, nul, event(4))
    garbage = b'{"events": "nope", "junk": "\\u0000"}'
    misnamed = batch(event(5), device="screen-b")
    try:
        ingest.record([(EVENTS, poison), (EVENTS, garbage), (EVENTS, misnamed)])
        ingest.record([(EVENTS, batch(event(6), event(7)))])
        assert [(device, seq) for _, device, seq, _, _ in database.rows()] == [(DEVICE, n) for n in (1, 4, 5, 6, 7)]
        quarantined = database.quarantine()
        assert [(device, topic, index) for device, topic, index, _, _ in quarantined] == [
            (DEVICE, EVENTS, 1), (DEVICE, EVENTS, 2), (DEVICE, EVENTS, None)]
        assert [json.loads(payload) for _, _, _, payload, _ in quarantined[:2]] == [overflow, nul]
        assert quarantined[2][3] == garbage
        reasons = [reason for *_, reason in quarantined]
        assert "seq 18446744073709551616 is not a whole number" in reasons[0]
        assert "NUL character" in reasons[1] and 'has no "events" list' in reasons[2]
        assert ingest.totals.line() == ("4 messages: 5 events stored, 0 duplicates skipped, 2 events quarantined, "
                                        "1 messages quarantined whole, 0 devices told what is stored")

        ingest.record([(EVENTS, poison), (EVENTS, garbage)])  # redelivered: nothing new, nothing twice
        assert len(database.rows()) == 5 and len(database.quarantine()) == 3
        assert ingest.totals.duplicates == 2
    finally:
        store.close()
    lines = single_lines(out.getvalue())
    assert lines[0] == (f"warning: {EVENTS}: 2 of 4 events quarantined, the first: event 1 of {DEVICE}: "
                        "seq 18446744073709551616 is not a whole number in 0..2**63-1")
    assert lines[1].startswith(f"warning: {EVENTS}: message quarantined whole: message on {EVENTS} has no")
    assert lines[2] == (f"warning: {EVENTS}: the payload names device 'screen-b'; its events are stored as "
                        f"{DEVICE}'s, the device in the topic (said once per device)")


def refuse_type(database: Database, store_url: str, kind: str) -> None:
    """Make the database itself refuse events of type ``kind``, as an operator's constraint would."""
    if database.kind == "sqlite":
        path = store_url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            db.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.type = '{kind}' "
                       "BEGIN SELECT RAISE(ABORT, 'this type is refused here'); END")
    else:
        database.query(f"ALTER TABLE events ADD CONSTRAINT refuse CHECK (type <> '{kind}')")


def test_rows_the_database_still_refuses_are_quarantined_alone_in_one_line(database: Database) -> None:
    store = open_store(database.url)
    refuse_type(database, database.url, "forbidden")
    out = io.StringIO()
    ingest = Ingest(store, OPTIONS, out=out)
    refused, bad = event(2, type="forbidden"), event(5, seq=-5)
    try:
        ingest.record([(EVENTS, batch(event(1), refused, event(3))), (EVENTS, batch(bad, event(4))),
                       (EVENTS, b"[]")])
    finally:
        store.close()
    assert [seq for _, _, seq, _, _ in database.rows()] == [1, 3, 4]
    assert database.query("SELECT device, stored_upto FROM device_progress") == [(DEVICE, 4)]  # 2 is quarantined
    quarantined = {index: (device, topic, payload, reason)
                   for device, topic, index, payload, reason in database.quarantine()}
    assert set(quarantined) == {0, 1, None}  # the checks' quarantine is kept beside the database's refusal
    device, topic, payload, reason = quarantined[1]
    assert (device, topic, json.loads(payload)) == (DEVICE, EVENTS, refused)
    assert "refused it" in reason and "\n" not in reason
    assert ("check constraint" if database.kind == "postgres" else "this type is refused here") in reason
    assert json.loads(quarantined[0][2]) == bad and quarantined[None][2] == b"[]"
    assert ingest.totals.line() == ("3 messages: 3 events stored, 0 duplicates skipped, 2 events quarantined, "
                                    "1 messages quarantined whole, 0 devices told what is stored")
    lines = single_lines(out.getvalue())
    assert lines[2].endswith("storing the events one by one") and len(lines) == 4
    assert lines[3].startswith(f"warning: {EVENTS}: event {refused['id']} (seq 2) quarantined: ")
    if database.kind == "postgres":
        assert "DETAIL: Failing row contains" in lines[2]  # PostgreSQL's message had three lines


def test_a_store_tells_a_refused_row_from_its_own_failure(database: Database) -> None:
    store = open_store(database.url)
    rows, _ = EventBatch.parse(EVENTS, batch(event(1), event(2))).check()
    overflowing = dataclasses.replace(rows[1], seq=2**64)  # past the checks, as a bug would let it
    with pytest.raises(RowsRefused):
        store.write([rows[0], overflowing], [])
    assert database.rows() == []
    written, refused = store.write_each([rows[0], overflowing])
    assert written.inserted == 1 and [row for row, _ in refused] == [overflowing]
    assert written.stored_upto == {DEVICE: 1}  # the refused row is not counted as stored
    assert store.write([], [overflowing.quarantined(refused[0][1])]).inserted == 0
    assert [index for _, _, index, _, _ in database.quarantine()] == [1]
    store.close()
    with pytest.raises(ApplianceError) as failed:
        store.write(rows, [])
    assert not isinstance(failed.value, RowsRefused)


def test_quarantine_texts_are_storable_whatever_was_sent() -> None:
    record = Quarantined.of("oivis/v1/screen-a/events", DEVICE, None, b"\x00",
                            "bad: '\x00'\nDETAIL: \ud800 " + "x" * 1000)
    assert "\x00" not in record.reason and "\n" not in record.reason and len(record.reason) == 500
    record.reason.encode("utf-8")
    assert record.payload == b"\x00"


# -- against a real broker --------------------------------------------------------------------------

class DeviceClient:
    """A device's own certificate publishing raw payloads on its events topic, as a broken or hostile device would."""

    def __init__(self, broker: Broker, device: str = DEVICE) -> None:
        identity = broker.pki.client(device)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(identity.ca), certfile=str(identity.cert), keyfile=str(identity.key),
                            cert_reqs=ssl.CERT_REQUIRED)
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        self.topic = f"oivis/v1/{device}/events"

    def publish(self, payload: bytes) -> None:
        info = self.client.publish(self.topic, payload, qos=1)
        info.wait_for_publish(10)
        assert info.is_published() and info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_ingest_keeps_going_past_poison_batches_from_a_device(broker: Broker, database: Database) -> None:
    ingest = Process("ingest", *tls(broker), "--db", database.url, "--client-id", "ingest-test", "--progress", "0.2")
    sender = None
    try:
        wait_for(lambda: ingest.said("ingesting oivis/v1/\\+/events"), 20, "ingest to subscribe")
        sender = DeviceClient(broker)
        overflow, nul = event(2, seq=2**64), event(3, data={"note": "a\x00b"})
        sender.publish(batch(event(1), overflow))                     # SQLite: OverflowError
        sender.publish(batch(nul, event(4)))                          # PostgreSQL: NUL in jsonb
        sender.publish(b"not json at all")
        sender.publish(batch(event(5), device="screen-b"))            # names another device
        sender.publish(batch(event(6), event(7)))
        wait_for(lambda: len(database.rows()) == 5, 20, "the good events in the database")
        wait_for(lambda: ingest.said(r"5 messages: 5 events stored, 0 duplicates skipped, 2 events quarantined, "
                                     r"1 messages quarantined whole"), 20, "the progress line")
        assert ingest.process.poll() is None, ingest.err
    finally:
        if sender is not None:
            sender.close()
        ingest.kill()
    assert [(device, seq) for _, device, seq, _, _ in database.rows()] == [(DEVICE, n) for n in (1, 4, 5, 6, 7)]
    quarantined = database.quarantine()
    assert {(device, topic) for device, topic, *_ in quarantined} == {(DEVICE, EVENTS)}
    by_payload = {payload: (index, reason) for _, _, index, payload, reason in quarantined}  # order varies
    assert set(by_payload) == {json.dumps(overflow, separators=(",", ":")).encode(),
                               json.dumps(nul, separators=(",", ":")).encode(), b"not json at all"}
    overflow_at, overflow_reason = by_payload[json.dumps(overflow, separators=(",", ":")).encode()]
    nul_at, nul_reason = by_payload[json.dumps(nul, separators=(",", ":")).encode()]
    whole_at, whole_reason = by_payload[b"not json at all"]
    assert (overflow_at, nul_at, whole_at) == (1, 0, None)
    assert "seq 18446744073709551616" in overflow_reason and "NUL character" in nul_reason
    assert "is not JSON" in whole_reason
    single_lines("\n".join(ingest.err))
    assert ingest.said("the payload names device 'screen-b'; its events are stored as screen-a's")


def test_ingest_stops_in_one_line_when_postgresql_goes_away_and_the_broker_keeps_the_events(
        broker: Broker, postgres_db: Database, tmp_path: Path) -> None:
    url = postgres_db.url
    application = url.rsplit("application_name=", 1)[1]
    ingest_args = ["ingest", *tls(broker), "--db", url, "--client-id", "ingest-test"]
    first = Process(*ingest_args)
    sender = None
    try:
        wait_for(lambda: first.said("ingesting oivis/v1/\\+/events"), 20, "ingest to subscribe")
        postgres_db.query(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
                          f"'{application}'")
        sender = DeviceClient(broker)
        sender.publish(batch(event(1), event(2)))
        assert first.finish(timeout=30) == 1, first.err
    finally:
        if sender is not None:
            sender.close()
        first.kill()
    *_, last = single_lines("\n".join(first.err))
    assert last.startswith(f"error: cannot store events in {url}: terminating connection"), last
    assert last.endswith("ingest stops, the messages not yet acknowledged stay with the broker (0 messages: "
                         "0 events stored, 0 duplicates skipped, 0 events quarantined, 0 messages quarantined whole, "
                         "0 devices told what is stored)")

    second = Process(*ingest_args, "--idle-exit", "2")
    assert second.finish(timeout=60) == 0, second.err
    assert [seq for _, _, seq, _, _ in postgres_db.rows()] == [1, 2]


# -- moved from test_fleet_ops ----------------------------------------------------------------------

def test_ingest_stores_each_event_once_through_duplicates_and_a_kill(
        broker: Broker, operator: Operator, devices: list[Device],  # noqa: F811 - the fixture imported above
        tmp_path: Path, database: Database) -> None:
    rows = database.rows
    ingest_args = ["ingest", *tls(broker), "--db", database.url, "--client-id", "ingest-test", "--progress", "0.2"]
    first = Process(*ingest_args)
    try:
        wait_for(lambda: first.said("ingesting oivis/v1/\\+/events"), 20, "ingest to subscribe")
        device = Device(broker, tmp_path / "device")
        devices.append(device)
        device.ticks(range(5))
        wait_for(lambda: len(rows()) == 6, 20, "boot and 5 ticks in the database")
        for message in operator.on(EVENTS):  # the same batches once more: a device replay, a re-sent batch
            operator.client.publish(EVENTS, message.payload, qos=1).wait_for_publish(5)
        operator.publish("oivis/v1/screen-z/events", {"not": "a batch"})
        wait_for(lambda: first.said(r"[1-9]\d* duplicates skipped, 0 events quarantined, 1 messages quarantined whole"),
                 20, "the duplicates skipped")
    finally:
        first.kill()  # -9: no clean disconnect

    device.ticks(range(5, 10))  # while ingest is down: queued in its persistent session
    wait_for(lambda: len(operator.events(EVENTS)) == 11, 20, "the broker to have the events")
    second = Process(*ingest_args, "--idle-exit", "2")
    assert second.finish(timeout=60) == 0, second.err
    assert second.said("ingest stopped: .* 5 events stored"), second.err
    stored = rows()
    assert [seq for _, _, seq, _, _ in stored] == list(range(1, 12))
    assert len({event_id for event_id, *_ in stored}) == 11
    assert {device for _, device, *_ in stored} == {"screen-a"}
    assert [type_ for _, _, _, type_, _ in stored] == ["boot"] + ["tick"] * 10
    heard = {event["id"] for event, _ in operator.events(EVENTS).values()}
    assert {event_id for event_id, *_ in stored} == heard


def test_ingest_refuses_an_unknown_database_url_in_one_line(broker: Broker, capsys) -> None:
    assert main(["ingest", *tls(broker), "--db", "mysql://x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "sqlite:///PATH or postgresql://" in err and err.count("\n") == 1


def test_ingest_names_an_unreachable_postgresql_in_one_line(broker: Broker, capsys) -> None:
    assert main(["ingest", *tls(broker), "--db", "postgresql://postgres@127.0.0.1:1/test"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: event database postgresql://postgres@127.0.0.1:1/test cannot be opened")
    assert err.count("\n") == 1


def _open_at_the_barrier(url: str, barrier: Any, outcomes: Any) -> None:
    try:
        barrier.wait(30)
        open_store(url).close()
        outcomes.put("opened")
    except Exception as exc:  # noqa: BLE001 - told to the test, whatever it was
        outcomes.put(f"{type(exc).__name__}: {exc}")


def test_two_workers_opening_one_new_sqlite_file_at_once_both_open_it(tmp_path: Path) -> None:
    """Before: SQLite refused the second journal-mode switch with "database is locked" at once (its busy
    handler is not called for it), so about half of the pairs of workers starting together lost one; in CI
    the shared-subscription test below waited for a worker that had already exited."""
    context = multiprocessing.get_context("spawn")
    outcomes = context.Queue()
    for pair in range(12):
        barrier = context.Barrier(2)
        url = f"sqlite:///{tmp_path / f'events-{pair}.db'}"
        openers = [context.Process(target=_open_at_the_barrier, args=(url, barrier, outcomes), daemon=True)
                   for _ in range(2)]
        try:
            for opener in openers:
                opener.start()
            assert [outcomes.get(timeout=60) for _ in openers] == ["opened", "opened"], f"pair {pair}"
        finally:
            for opener in openers:
                opener.join(5)
                if opener.is_alive():
                    opener.terminate()


def test_ingest_workers_share_the_load_through_a_shared_subscription(broker: Broker, database: Database) -> None:
    """Before: the handler was registered on the ``$share/...`` string, which no delivered topic matches, so
    two workers stored nothing.  Now each worker, with its own certificate and so its own client id, stores
    its share, and together every event exactly once."""
    workers = []
    for name in ("ingest-1", "ingest-2"):
        options = broker.operator_options(broker.pki.service(name))
        workers.append(Process("ingest", *options, "--db", database.url, "--filter", "$share/ingest/oivis/v1/+/events",
                               "--window", "4", "--progress", "0.2"))
    sender = None
    try:
        for worker in workers:
            wait_for(lambda worker=worker: worker.said(r"ingesting \$share/ingest/oivis/v1/\+/events .* as "
                                                       r"oivis-ingest-\d") or worker.process.poll() is not None,
                     20, "each worker to subscribe")
            assert worker.process.poll() is None, "\n".join(worker.err)
        sender = DeviceClient(broker)
        for n in range(1, 41):
            sender.publish(batch(event(n)))
        wait_for(lambda: len(database.rows()) == 40, 30, "every event in the database")
        for worker in workers:
            wait_for(lambda worker=worker: worker.said(r"ingest: \d+ messages: [1-9]\d* events stored"), 20,
                     "each worker's share")
    finally:
        if sender is not None:
            sender.close()
        for worker in workers:
            worker.kill()
    assert sorted(seq for _, _, seq, _, _ in database.rows()) == list(range(1, 41))


# -- end-to-end confirmation: what is stored, told back to each device ------------------------------

def rows_of(*events: dict[str, Any], device: str = DEVICE, historical: bool = False) -> list[Any]:
    rows, bad = EventBatch.parse(f"oivis/v1/{device}/events", batch(*events, device=device,
                                                                     historical=historical)).check()
    assert bad == []
    return rows


def dropped(n: int, first: int | None, last: int | None, reason: str = "spool_full") -> dict[str, Any]:
    count = None if first is None or last is None else last - first + 1
    return event(n, type="dropped", data={"reason": reason, "count": count, "first_seq": first, "last_seq": last})


def test_stored_upto_advances_over_contiguous_seqs_and_a_gap_holds_it_back(database: Database) -> None:
    store = open_store(database.url)
    try:
        written = store.write(rows_of(event(1), event(2), event(3)), [])
        assert (written.inserted, written.stored_upto, written.grown) == (3, {DEVICE: 3}, {DEVICE})
        written = store.write(rows_of(event(5), event(6)) + rows_of(event(1), device="screen-b"), [])
        assert (written.stored_upto, written.grown) == ({DEVICE: 3, "screen-b": 1}, {"screen-b"})  # 4 is missing
        assert store.stored_upto([DEVICE, "screen-b", "screen-c"]) == {DEVICE: 3, "screen-b": 1, "screen-c": 0}
        written = store.write(rows_of(event(4)), [])
        assert (written.stored_upto, written.grown) == ({DEVICE: 6}, {DEVICE})  # the gap closed: past 5 and 6
        written = store.write(rows_of(event(3, seq=8)), [])  # a seq above a gap: nothing moves
        assert (written.stored_upto, written.grown) == ({DEVICE: 6}, frozenset())
    finally:
        store.close()
    assert database.query("SELECT device, stored_upto FROM device_progress ORDER BY device") == [
        (DEVICE, 6), ("screen-b", 1)]


def test_a_dropped_range_and_a_replaced_spool_let_stored_upto_pass_the_gap(database: Database) -> None:
    store = open_store(database.url)
    try:
        assert store.write(rows_of(event(1), event(2), event(5)), []).stored_upto == {DEVICE: 2}
        # lost before they had a seq: no gap, nothing gone
        assert store.write(rows_of(dropped(6, None, None, "memory")), []).stored_upto == {DEVICE: 2}
        written = store.write(rows_of(dropped(7, 3, 4)), [])  # the spool's bounds dropped 3..4
        assert (written.stored_upto, written.grown) == ({DEVICE: 7}, {DEVICE})
        # a replaced spool goes on at its floor (20): every seq up to 19 not stored is gone
        assert store.write(rows_of(event(21)), []).stored_upto == {DEVICE: 7}
        written = store.write(rows_of(dropped(20, None, 19, "replaced")), [])
        assert (written.stored_upto, written.grown) == ({DEVICE: 21}, {DEVICE})
        # a dropped event that says nothing usable is stored like any other and moves nothing
        for n, data in ((22, {"first_seq": 30, "last_seq": 25}), (23, {"first_seq": True, "last_seq": 40}),
                        (24, {"first_seq": 1, "last_seq": "40"})):
            assert store.write(rows_of(event(n, type="dropped", data=data)), []).stored_upto == {DEVICE: n}
    finally:
        store.close()
    assert sorted(database.query("SELECT device, first_seq, last_seq FROM gone")) == [(DEVICE, 1, 19), (DEVICE, 3, 4)]
    assert [seq for _, _, seq, type_, _ in database.rows() if type_ == "dropped"] == [6, 7, 20, 22, 23, 24]


def test_duplicates_and_replays_change_nothing(database: Database) -> None:
    store = open_store(database.url)
    sent = [event(1), event(2), dropped(3, None, None, "memory"), event(5), dropped(6, 4, 4)]
    try:
        first = store.write(rows_of(*sent), [])
        assert (first.inserted, first.stored_upto, first.grown) == (5, {DEVICE: 6}, {DEVICE})
        for _ in range(2):  # a redelivered message, then the device's replay of its spool
            again = store.write(rows_of(*sent, historical=True), [])
            assert (again.inserted, again.stored_upto, again.grown) == (0, {DEVICE: 6}, frozenset())
        assert store.write_each(rows_of(*reversed(sent)))[0] == again
    finally:
        store.close()
    assert database.query("SELECT first_seq, last_seq FROM gone") == [(4, 4)]
    assert database.query("SELECT stored_upto FROM device_progress") == [(6,)]


def test_ingest_tells_devices_whose_value_grew_or_that_resent(sqlite_db: Database) -> None:
    store = open_store(sqlite_db.url)
    ingest = Ingest(store, OPTIONS, out=io.StringIO())
    try:
        ingest.record([(EVENTS, batch(event(1), event(2)))])
        assert ingest.notices._due == {DEVICE: 2}
        ingest.notices._due.clear()  # as if the broker had acknowledged it
        ingest.record([(EVENTS, batch(event(4)))])  # above a gap: nothing new to tell
        assert ingest.notices._due == {}
        ingest.record([(EVENTS, batch(event(4), historical=True))])  # a re-send: tell again what is stored
        assert ingest.notices._due == {DEVICE: 2}
    finally:
        store.close()
    assert ingest.notices.topic(DEVICE) == f"{EVENTS}/stored"


def test_a_quarantined_event_does_not_hold_stored_upto_back(database: Database) -> None:
    """It is in the database (the quarantine table) and a re-send would only be quarantined again."""
    store = open_store(database.url)
    ingest = Ingest(store, OPTIONS, out=io.StringIO())
    try:
        ingest.record([(EVENTS, batch(event(1), event(2, ts="yesterday"), event(3), event(5, seq="4")))])
        assert store.stored_upto([DEVICE]) == {DEVICE: 3}  # "4" is no seq: 4 is still missing
        assert ingest.notices._due == {DEVICE: 3}
        ingest.record([(EVENTS, batch(event(4, data={"n": float("nan")}), historical=True))])
        assert store.stored_upto([DEVICE]) == {DEVICE: 4} and ingest.notices._due == {DEVICE: 4}
    finally:
        store.close()
    assert sorted(database.query("SELECT first_seq, last_seq FROM gone")) == [(2, 2), (4, 4)]


def test_two_postgresql_writers_never_lose_or_lower_stored_upto(postgres_db: Database) -> None:
    """Two writers store seq 3 and seq 2 at once, each without seeing the other's uncommitted row: whichever
    commits last must see the other's, so the value reaches 3 (without the row lock it stayed at 1 or 2)."""
    import psycopg

    url = postgres_db.url
    application = url.rsplit("application_name=", 1)[1]
    stores = [open_store(url), open_store(url)]
    holder = psycopg.connect(url)
    try:
        stores[0].write(rows_of(event(1)), [])
        holder.execute("SELECT * FROM device_progress WHERE device = %s FOR UPDATE", (DEVICE,))
        results: dict[int, Any] = {}
        threads = [threading.Thread(target=lambda i=i, n=n: results.__setitem__(i, stores[i].write(
            rows_of(event(n)), []))) for i, n in ((0, 3), (1, 2))]
        for thread in threads:
            thread.start()
        wait_for(lambda: postgres_db.query(
            f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application}' "
            "AND wait_event_type = 'Lock'") == [(2,)], 10, "both writers to wait for the progress row")
        holder.commit()
        for thread in threads:
            thread.join(10)
        # the first to take the lock sees only its own row (1 with seq 3, 2 with seq 2), the second sees both
        assert sorted(written.stored_upto[DEVICE] for written in results.values()) in ([1, 3], [2, 3])
        assert postgres_db.query("SELECT stored_upto FROM device_progress") == [(3,)]

        # many writers, seqs in any order: the value seen only grows and ends at the top
        seqs = list(range(4, 404))
        random.Random(9).shuffle(seqs)
        seen: list[int] = []
        done = threading.Event()

        def watch() -> None:   # sampling, with a breath between samples: a busy loop starved the writers
            while not done.wait(0.005):
                seen.extend(value for (value,) in postgres_db.query("SELECT stored_upto FROM device_progress"))
            seen.extend(value for (value,) in postgres_db.query("SELECT stored_upto FROM device_progress"))

        def write(store: Any, part: list[int]) -> None:
            for chunk in range(0, len(part), 7):
                store.write(rows_of(*(event(n) for n in part[chunk:chunk + 7])), [])

        watcher = threading.Thread(target=watch)
        watcher.start()
        writers = [threading.Thread(target=write, args=(store, seqs[i::2])) for i, store in enumerate(stores)]
        for thread in writers:
            thread.start()
        for thread in writers:   # a deadline only a hung writer misses (60 s stopped them at seq 6 on a loaded machine)
            thread.join(600)
        done.set()
        watcher.join(10)
        assert seen == sorted(seen) and seen[-1] == 403
    finally:
        holder.close()
        for store in stores:
            store.close()


class StoredReader:
    """A client subscribed to every device's ``events/stored``, recording what it hears (and whether retained)."""

    def __init__(self, broker: Broker, name: str) -> None:
        self.operator = Operator(broker, subscriptions=("oivis/v1/+/events/stored",), client_id=name)

    def heard(self, device: str = DEVICE) -> list[tuple[int, bool]]:
        return [(json.loads(m.payload)["seq"], bool(m.retain))
                for m in self.operator.on(f"oivis/v1/{device}/events/stored")]

    def close(self) -> None:
        self.operator.close()


@pytest.mark.parametrize(("identity", "kind"), [("operator", "sqlite"), ("ingest", "postgres")])
def test_ingest_publishes_what_is_stored_retained_and_moves_it_past_a_closed_gap(
        broker: Broker, identity: str, kind: str, request: pytest.FixtureRequest) -> None:
    database: Database = request.getfixturevalue(f"{kind}_db")
    options = broker.operator_options(broker.pki.service(identity))
    ingest = Process("ingest", *options, "--db", database.url, "--progress", "0.2")
    live, sender, later = StoredReader(broker, "stored-live"), None, None
    try:
        wait_for(lambda: ingest.said("ingesting oivis/v1/\\+/events"), 20, "ingest to subscribe")
        sender = DeviceClient(broker)
        sender.publish(batch(event(1), event(2)))
        sender.publish(batch(event(4), event(5)))  # 3 went missing on the way
        wait_for(lambda: len(database.rows()) == 4, 20, "the events in the database")
        wait_for(lambda: (2, False) in live.heard(), 20, "ingest to tell the device 2")
        later = StoredReader(broker, "stored-later")  # subscribes now: gets the retained value
        wait_for(lambda: later.heard() == [(2, True)], 20, "the retained value 2")
        assert [seq for seq, _ in live.heard()] == [2]

        sender.publish(batch(event(3), historical=True))  # the device re-sends what was not confirmed
        wait_for(lambda: (5, False) in live.heard(), 20, "ingest to tell the device 5")
        wait_for(lambda: ingest.said(r"1 devices told what is stored"), 20, "the progress line")
        later.close()
        later = StoredReader(broker, "stored-last")
        wait_for(lambda: later.heard() == [(5, True)], 20, "the retained value 5")
        assert ingest.process.poll() is None, ingest.err
    finally:
        for client in (sender, live, later):
            if client is not None:
                client.close()
        ingest.kill()
    assert [seq for seq, _ in live.heard()] == [2, 5]
    assert not [line for line in single_lines("\n".join(ingest.err)) if line.startswith("warning: ")]


def test_a_stored_notice_the_broker_refused_is_sent_again_later(broker: Broker, sqlite_db: Database) -> None:
    """The broker refuses the notice (an ACL without the ingest's write line): ingest says so in one line and
    keeps it; once the broker accepts it again, the device's retained value arrives without a new event."""
    acl = broker.directory / "operators.acl"
    shipped = acl.read_text()
    acl.write_text("".join(line for line in shipped.splitlines(keepends=True) if "events/stored" not in line))
    broker.restart()
    ingest = Process("ingest", *broker.operator_options(broker.pki.service("ingest")), "--db", sqlite_db.url)
    sender = reader = None
    try:
        wait_for(lambda: ingest.said("ingesting oivis/v1/\\+/events"), 20, "ingest to subscribe")
        sender = DeviceClient(broker)
        sender.publish(batch(event(1), event(2)))
        wait_for(lambda: ingest.said(r"warning: 1 stored notices refused \(Not authorized\), the first "
                                     rf"{EVENTS}/stored; sent again in 5 s"), 20, "the refusal")
        sender.close()
        sender = None
        acl.write_text(shipped)
        broker.restart()
        reader = StoredReader(broker, "stored-after")
        wait_for(lambda: [seq for seq, _ in reader.heard()] == [2], 30, "the notice sent again")
        reader.close()
        reader = StoredReader(broker, "stored-retained")
        wait_for(lambda: reader.heard() == [(2, True)], 10, "the notice retained")
        assert ingest.process.poll() is None, ingest.err
    finally:
        for client in (sender, reader):
            if client is not None:
                client.close()
        ingest.kill()
    single_lines("\n".join(ingest.err))
