"""Nothing lost end to end, whatever the broker does (issue 9, item 1): a broker that drops what it
queues for an ingest that is away, and an ingest killed with -9 for longer than that queue.

Before the stored side confirmed (``{p}/events/stored``), the device deleted each batch at the broker's
PUBACK, so what the broker then dropped for ingest was lost for good.  Now the device keeps what it sent
until ingest says it is stored, and sends again what is not: every event ends up stored exactly once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import MOSQUITTO, Broker, Pki, pki_fixture, wait_for  # noqa: F401 - fixtures
from test_fleet_ops import Process

from appliance.events import EventBus
from appliance.fleet.link import Link
from appliance.fleet.shipper import Confirmations, EventShipper

DEVICE = "mall-01-screen-3"


@pytest.fixture
def dropping_broker(tmp_path: Path, pki: Pki) -> Iterator[Broker]:
    """The shipped config with a queue of 5 messages for a client that is away: the rest is dropped."""
    if not MOSQUITTO.exists():
        pytest.skip(f"{MOSQUITTO} is not installed")
    running = Broker(tmp_path / "broker", pki, {"max_queued_messages 10000": "max_queued_messages 5"}).start()
    try:
        yield running
    finally:
        running.stop()


def stored(database: Path) -> list[tuple[str, int]]:
    try:
        with sqlite3.connect(database) as db:
            return db.execute("SELECT id, seq FROM events WHERE device = ? ORDER BY seq", (DEVICE,)).fetchall()
    except sqlite3.OperationalError:
        return []


def test_every_event_is_stored_exactly_once_through_a_dropping_broker_and_a_killed_ingest(
        dropping_broker: Broker, tmp_path: Path) -> None:
    broker, database = dropping_broker, tmp_path / "events.db"
    ingest_args = ["ingest", *broker.operator_options(broker.pki.service("ingest")), "--db", f"sqlite:///{database}",
                   "--progress", "0.5"]
    fleet = broker.fleet_config(broker.pki.client(DEVICE), batch_size=1, confirm_timeout_s=1.0)
    bus = EventBus()
    link, confirmations = Link(DEVICE, fleet, tmp_path / "device"), Confirmations()
    link.subscribe(link.topics.events_stored, confirmations.on_message)
    ingest = Process(*ingest_args)
    shipper = None
    try:
        wait_for(lambda: ingest.said(r"ingesting oivis/v1/\+/events"), 20, "ingest to subscribe")
        link.start()
        shipper = EventShipper(bus, link, fleet, tmp_path / "device", confirmations=confirmations).start()
        for n in range(5):
            bus.publish("tick", {"n": n})
        wait_for(lambda: len(stored(database)) == 6, 30, "boot and 5 ticks stored")
        wait_for(lambda: shipper.status().get("stored_seq") == 6, 30, "the device to hear what is stored")

        ingest.kill()                                 # -9, and away for longer than its queue of 5
        for n in range(5, 45):
            bus.publish("tick", {"n": n})
        wait_for(lambda: shipper.status()["pending"] == 40 and unsent(tmp_path / "device") == 0, 30,
                 "the broker to acknowledge all 40 (it keeps only 5 of them for ingest)")

        ingest = Process(*ingest_args)
        wait_for(lambda: len(stored(database)) == 46, 90, "every event stored after the device sent again")
        wait_for(lambda: shipper.status()["pending"] == 0, 30, "the device's spool emptied by the confirmation")
    finally:
        ingest.kill()
        if shipper is not None:
            shipper.stop()
        link.stop(timeout=1)
    rows = stored(database)
    assert [seq for _, seq in rows] == list(range(1, 47)) and len({event_id for event_id, _ in rows}) == 46
    assert "Outgoing messages are being dropped for client oivis-ingest" in broker.log_text()


def unsent(state_dir: Path) -> int:
    """Events in the device's spool that the broker has not acknowledged once (read beside the device)."""
    with sqlite3.connect(state_dir / "fleet" / "events.db") as db:
        return db.execute("SELECT COUNT(*) FROM events WHERE sent_at IS NULL").fetchone()[0]
