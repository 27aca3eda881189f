"""End-to-end confirmation of events (issue 9): the spool keeps what the broker acknowledged until the fleet's
stored side confirms it on ``{p}/events/stored``, sends it again meanwhile, and still keeps its bounds.

The spool and the worker are tested on their own (the worker with a link whose PUBACKs the test gives), then
against the real TLS broker of tests/broker.py with nobody storing anything: only an operator who hears the
events and, at the end, publishes the confirmation an ingest would.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import (  # noqa: F401 - fixtures
    Broker,
    Operator,
    broker_fixture,
    operator_fixture,
    pki_fixture,
    wait_for,
)
from test_commands_broker import Fleet, fleet_fixture  # noqa: F401 - the fixture
from test_spool import FakeLink, ticks

from appliance.config import FleetConfig
from appliance.errors import ApplianceError
from appliance.events import EventBus
from appliance.fleet.link import Incoming, Link
from appliance.fleet.shipper import Confirmations, EventShipper
from appliance.fleet.spool import MAX_RESEND_S, Spool

BIG = 64 * 2**20
MONTH = 30 * 86400.0
DEVICE = "screen-a"
EVENTS = f"oivis/v1/{DEVICE}/events"
STORED = f"oivis/v1/{DEVICE}/events/stored"


def seqs(events: list) -> list[int]:
    return [event.seq for event in events]


# -- the spool ------------------------------------------------------------------------------------


def test_confirming_mode_and_the_last_confirmed_seq_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    spool = Spool(path, BIG, MONTH)
    spool.append(ticks(5))
    assert not spool.confirming and spool.status()["stored_seq"] is None
    assert spool.confirm(0) == 0 and spool.confirming
    now = time.time()
    spool.mark_sent([1, 2, 3], now)
    spool.close(clean=True)

    spool = Spool(path, BIG, MONTH)
    assert spool.confirming and spool.stored_seq == 0 and spool.count == 5
    assert seqs(spool.due(now, 10, 100)) == [4, 5]  # never sent first
    spool.mark_sent([4, 5], now)
    assert spool.due(now + 9, 10, 100) == []
    again = spool.due(now + 10, 10, 100)
    assert seqs(again) == [1, 2, 3, 4, 5] and {event.attempts for event in again} == {1}
    assert spool.confirm(3) == 3 and seqs(spool.oldest(10)) == [4, 5]
    spool.close(clean=True)

    spool = Spool(path, BIG, MONTH)
    assert spool.confirming and spool.stored_seq == 3 and spool.status()["stored_seq"] == 3
    assert spool.confirm(2) == 0 and spool.stored_seq == 3  # a lower value changes nothing
    assert spool.confirm(5) == 2 and spool.count == 0
    spool.close(clean=True)


def test_a_sent_event_waits_twice_as_long_after_each_attempt_up_to_an_hour(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events.db", BIG, MONTH)
    spool.append(ticks(1))
    spool.confirm(0)
    now = time.time()
    assert spool.next_due(now, 5) is None  # nothing waits for a confirmation
    for attempt in range(1, 14):
        spool.mark_sent([1], now)
        wait = min(5.0 * 2 ** (attempt - 1), MAX_RESEND_S)
        assert spool.due(now + wait - 1, 5, 10) == [], attempt
        assert spool.next_due(now + 1, 5) == pytest.approx(wait - 1), attempt
        assert seqs(spool.due(now + wait, 5, 10)) == [1] and spool.due(now + wait, 5, 10, resend=False) == []
    assert seqs(spool.due(now - 60, 5, 10)) == [1]  # the clock went back: due now rather than in an hour
    assert spool.next_due(now - 60, 5) == 0
    spool.close(clean=True)


def test_a_spool_of_the_earlier_release_gains_the_new_columns_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with sqlite3.connect(path) as db:  # the schema and meta the spool had before confirmations
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, ts TEXT NOT NULL, "
                   "type TEXT NOT NULL, data TEXT NOT NULL, run INTEGER NOT NULL, mono REAL NOT NULL, "
                   "at REAL NOT NULL, size INTEGER NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('next_seq', 3), ('run', 1), ('running', 0)")
        for seq in (1, 2):
            db.execute("INSERT INTO events VALUES (?, ?, '2026-01-01T00:00:00Z', 'tick', ?, 1, 0, ?, 10)",
                       (seq, f"id-{seq}", json.dumps({"n": seq}), time.time()))
    spool = Spool(path, BIG, MONTH)
    assert spool.last_run == "clean" and not spool.confirming
    assert [(event.seq, event.data, event.attempts) for event in spool.due(time.time(), 60, 10)] == [
        (1, {"n": 1}, 0), (2, {"n": 2}, 0)]
    assert spool.append(ticks(1)) == [3]
    spool.confirm(2)
    spool.close(clean=True)
    spool = Spool(path, BIG, MONTH)
    assert spool.confirming and spool.stored_seq == 2 and seqs(spool.oldest(10)) == [3]
    spool.close(clean=True)


def test_the_bounds_drop_sent_unconfirmed_events_too_and_announce_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events.db", 256 * 1024, 3600)
    spool.confirm(0)
    now = time.time()
    for n in range(0, 2000, 5):
        spool.mark_sent(spool.append(ticks(5, start=n)), now)
    drops = [event for event in spool.oldest(10_000) if event.type == "dropped"]
    assert drops and all(event.data["reason"] == "size" for event in drops)
    held = {event.seq for event in spool.oldest(10_000)}
    announced = set().union(*(range(d.data["first_seq"], d.data["last_seq"] + 1) for d in drops))
    assert held | announced == set(range(1, spool.next_seq))
    assert spool.count + sum(d.data["count"] for d in drops) == spool.next_seq - 1
    before = spool.next_seq
    gone = spool.expire(time.time() + 3601)  # sent or not, old events go, and are announced
    assert gone == len(held)
    [report] = spool.oldest(10)
    assert report.seq == before and report.data["reason"] == "age"
    assert report.data["first_seq"] == 1 and report.data["last_seq"] == before - 1
    spool.close(clean=True)


def test_a_replaced_spool_announces_every_seq_below_its_floor_as_gone(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    spool = Spool(path, BIG, MONTH)
    spool.append(ticks(5))
    spool.close(clean=True)
    for leftover in tmp_path.glob("events.db*"):
        if not leftover.name.endswith(".seq-floor"):
            leftover.unlink()
    replaced = Spool(path, BIG, 3600)
    [report] = replaced.oldest(10)
    floor = report.seq
    assert floor > 5 and replaced.next_seq == floor + 1
    assert report.type == "dropped"
    assert report.data == {"reason": "replaced", "count": None, "first_seq": None, "last_seq": floor - 1}
    replaced.append(ticks(2))
    replaced.expire(time.time() + 3601)  # a bound that drops the report keeps its open start
    [folded] = replaced.oldest(10)
    assert folded.data == {"reason": "age", "count": 3, "first_seq": None, "last_seq": floor + 2}
    replaced.close(clean=True)


# -- the worker -----------------------------------------------------------------------------------


def stored(seq: object) -> Incoming:
    return Incoming(STORED, json.dumps({"seq": seq}).encode(), retain=True)


@pytest.fixture
def confirming(tmp_path: Path) -> Iterator[tuple[EventBus, FakeLink, Confirmations, Path]]:
    bus, link, confirmations = EventBus(), FakeLink(), Confirmations()
    yield bus, link, confirmations, tmp_path


def start(bus: EventBus, link: FakeLink, confirmations: Confirmations, state: Path) -> EventShipper:
    fleet = FleetConfig(batch_size=50, confirm_timeout_s=0.5)
    return EventShipper(bus, link, fleet, state, retry_s=0.1, confirmations=confirmations).start()  # type: ignore[arg-type]


def acknowledge_all(link: FakeLink) -> bool:
    """Give the PUBACK of every batch sent so far; True once at least one was."""
    for _, delivery in link.sent:
        if not delivery.done:
            delivery.resolve(True, "Success")
    return bool(link.sent)


def stop(shipper: EventShipper) -> None:
    shipper.link.connected = False
    shipper.stop(flush_timeout=0)


def test_once_confirmed_a_puback_keeps_the_batch_which_goes_again_until_stored_is_confirmed(
        confirming: tuple[EventBus, FakeLink, Confirmations, Path]) -> None:
    bus, link, confirmations, state = confirming
    shipper = start(bus, link, confirmations, state)
    try:
        bus.publish("tick", {"n": 0})
        wait_for(lambda: shipper.status()["pending"] == 2, what="boot and a tick spooled")
        confirmations.on_message(stored(0))
        wait_for(lambda: shipper.status().get("stored_seq") == 0, what="confirming mode")
        link.connect()
        wait_for(lambda: len(link.sent) == 1, what="the batch")
        link.sent[0][1].resolve(True, "Success")
        wait_for(lambda: len(link.sent) == 2, what="the unconfirmed batch again")
        assert shipper.status()["pending"] == 2  # the PUBACK deleted nothing
        assert link.seqs(1) == [1, 2] and link.sent[1][0]["historical"] is True
        link.sent[1][1].resolve(True, "Success")
        confirmations.on_message(stored(1))
        wait_for(lambda: shipper.status()["pending"] == 1, what="the confirmed event deleted")
        confirmations.on_message(stored("two"))  # not a confirmation: ignored
        confirmations.on_message(Incoming(STORED, b"", retain=True))
        confirmations.on_message(stored(2))
        wait_for(lambda: shipper.status()["pending"] == 0, what="everything confirmed")
    finally:
        stop(shipper)


def test_without_a_confirmation_a_puback_deletes_as_before(
        confirming: tuple[EventBus, FakeLink, Confirmations, Path]) -> None:
    bus, link, confirmations, state = confirming
    shipper = start(bus, link, confirmations, state)
    try:
        bus.publish("tick", {"n": 0})
        link.connect()
        wait_for(lambda: acknowledge_all(link) and shipper.status()["pending"] == 0, what="the batches deleted")
        assert shipper.status()["stored_seq"] is None
    finally:
        stop(shipper)


def test_confirming_mode_holds_after_a_restart_with_no_confirmation_heard_yet(
        confirming: tuple[EventBus, FakeLink, Confirmations, Path]) -> None:
    bus, link, confirmations, state = confirming
    shipper = start(bus, link, confirmations, state)
    confirmations.on_message(stored(0))
    wait_for(lambda: shipper.status().get("stored_seq") == 0, what="confirming mode")
    stop(shipper)
    link = FakeLink()
    shipper = start(bus, link, Confirmations(), state)  # the new run hears nothing (yet)
    try:
        link.connect()
        wait_for(lambda: len(link.sent) == 1, what="the batch")
        pending = len(link.sent[0][0]["events"])
        link.sent[0][1].resolve(True, "Success")
        wait_for(lambda: len(link.sent) == 2, what="the unconfirmed batch again")
        assert shipper.status()["pending"] == pending and shipper.status()["stored_seq"] == 0
    finally:
        stop(shipper)


# -- against the broker ---------------------------------------------------------------------------


@pytest.fixture
def device(broker: Broker, tmp_path: Path) -> Iterator[tuple[EventBus, Link, EventShipper]]:
    """A device as FleetRuntime wires it: the confirmations subscribed before the link connects."""
    fleet = broker.fleet_config(broker.pki.client(DEVICE), confirm_timeout_s=1.0)
    link, confirmations, bus = Link(DEVICE, fleet, tmp_path), Confirmations(), EventBus()
    link.subscribe(link.topics.events_stored, confirmations.on_message)
    link.start()
    shipper = EventShipper(bus, link, fleet, tmp_path, confirmations=confirmations)
    try:
        yield bus, link, shipper
    finally:
        shipper.stop(flush_timeout=0)
        link.stop(timeout=1)


def heard(operator: Operator, seq: int) -> list[bool]:
    """The historical flag of every batch the operator heard carrying ``seq``."""
    return [batch["historical"] for batch in operator.payloads(EVENTS)
            if any(event["seq"] == seq for event in batch["events"])]


def test_events_the_broker_acknowledged_but_nobody_stored_are_kept_sent_again_and_deleted_once_confirmed(
        broker: Broker, operator: Operator, device: tuple[EventBus, Link, EventShipper]) -> None:
    operator.publish(STORED, {"seq": 0}, retain=True)  # the fleet speaks the protocol; nothing of this device stored
    bus, link, shipper = device
    shipper.start()
    assert link.wait_connected(10)
    for n in range(5):
        bus.publish("tick", {"n": n})
    wait_for(lambda: len(operator.events(EVENTS)) == 6, what="boot and five ticks, acknowledged by the broker")
    wait_for(lambda: len(heard(operator, 6)) >= 2, timeout=15, what="the unconfirmed events sent again")
    assert heard(operator, 6)[1:] == [True] * (len(heard(operator, 6)) - 1)  # a re-send is historical
    assert shipper.status()["pending"] == 6 and shipper.status()["stored_seq"] == 0
    operator.publish(STORED, {"seq": 6}, retain=True)
    wait_for(lambda: shipper.status()["pending"] == 0, what="the confirmed events deleted")
    assert shipper.status()["stored_seq"] == 6
    sent = len(operator.payloads(EVENTS))
    time.sleep(2.5)  # longer than two timeouts: nothing goes again once confirmed
    assert len(operator.payloads(EVENTS)) == sent


def test_without_a_stored_side_the_broker_acknowledgement_deletes_as_before(
        broker: Broker, operator: Operator, device: tuple[EventBus, Link, EventShipper]) -> None:
    bus, link, shipper = device
    shipper.start()
    assert link.wait_connected(10)
    for n in range(5):
        bus.publish("tick", {"n": n})
    wait_for(lambda: len(operator.events(EVENTS)) == 6, what="boot and five ticks")
    wait_for(lambda: shipper.status()["pending"] == 0, what="deleted on PUBACK")
    assert shipper.status()["stored_seq"] is None and all(len(heard(operator, seq)) == 1 for seq in range(1, 7))


def test_a_confirmation_the_spool_could_not_record_is_applied_at_the_next_step(
        confirming: tuple[EventBus, FakeLink, Confirmations, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    bus, link, confirmations, state = confirming
    shipper = start(bus, link, confirmations, state)
    try:
        wait_for(lambda: shipper.status()["pending"] is not None, what="the spool open")
        spool, tried = shipper._spool, []
        assert spool is not None
        record = spool.confirm

        def full_disk_once(seq: int) -> int:
            tried.append(seq)
            if len(tried) == 1:
                raise ApplianceError(f"event spool {spool.path} cannot record a confirmation: disk full")
            return record(seq)

        monkeypatch.setattr(spool, "confirm", full_disk_once)
        confirmations.on_message(stored(0))
        wait_for(lambda: shipper.status().get("stored_seq") == 0, what="the confirmation recorded on the retry")
        assert tried[:2] == [0, 0]
    finally:
        stop(shipper)


def test_a_confirmation_above_every_seq_given_out_moves_the_events_up_instead_of_deleting_them(
        tmp_path: Path) -> None:
    """The whole state directory was lost (floor and all): the retained confirmation is of the earlier life."""
    path = tmp_path / "events.db"
    spool = Spool(path, BIG, 3600)
    spool.append(ticks(2))
    spool.expire(time.time() + 3601)  # seq 3 reports 1-2 gone
    spool.append(ticks(2, start=2))
    assert spool.confirm(100) == 0 and spool.stored_seq == 100
    moved = spool.oldest(10)
    assert seqs(moved) == [101, 102, 103] and [event.data.get("n") for event in moved[1:]] == [2, 3]
    assert moved[0].data == {"reason": "age", "count": 2, "first_seq": 99, "last_seq": 100}
    assert spool.append(ticks(1)) == [104]
    held = spool.bytes
    spool.close(clean=True)
    spool = Spool(path, BIG, 3600)
    assert spool.bytes == held  # the sizes of the rewritten reports were kept right
    assert spool.next_seq == 105 and seqs(spool.due(time.time(), 60, 10)) == [101, 102, 103, 104]
    spool.close(clean=True)


def test_the_fleet_runtime_hears_the_confirmation_at_connect_and_hands_it_to_the_events_worker(
        broker: Broker, operator: Operator, fleet: Fleet) -> None:
    """The retained confirmation arrives right after the CONNACK, before the kiosk (and the worker) are up."""
    operator.publish(STORED, {"seq": 0}, retain=True)
    runtime = fleet.start()
    screen = fleet.attach(runtime)
    assert runtime.shipper is not None
    wait_for(lambda: runtime.shipper.status().get("stored_seq") == 0, what="confirming mode")
    screen.events.publish("tick", {"n": 0})
    wait_for(lambda: any(event["type"] == "tick" for event, _ in operator.events(EVENTS).values()), what="the tick")
    last = max(operator.events(EVENTS))
    assert runtime.shipper.status()["pending"] >= last  # acknowledged or not, nothing confirmed yet
    operator.publish(STORED, {"seq": last}, retain=True)
    wait_for(lambda: runtime.shipper.status()["pending"] == 0, what="the confirmed events deleted")
