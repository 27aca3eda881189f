"""The event spool and its worker without a broker: seq forever, bounds and ``dropped``, kill -9, PUBACK-only
deletion, the historical flag, and an unwritable state directory."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker import python_env, wait_for

from appliance.config import FleetConfig
from appliance.events import Event, EventBus
from appliance.fleet.link import Delivery
from appliance.fleet.shipper import SPOOL_FILE, EventShipper
from appliance.fleet.spool import Spool
from appliance.fleet.topics import Topics

BIG = 64 * 2**20
MONTH = 30 * 86400.0


def ticks(n: int, start: int = 0) -> list[Event]:
    return [Event("tick", {"n": i, "pad": "x" * 40}) for i in range(start, start + n)]


def test_seq_increases_by_one_per_event_forever_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    spool = Spool(path, BIG, MONTH)
    assert spool.last_run == "first" and spool.run == 1
    assert spool.append(ticks(3)) == [1, 2, 3]
    assert spool.acknowledge(1, 2) == 2
    spool.close(clean=True)
    spool = Spool(path, BIG, MONTH)
    assert spool.last_run == "clean" and spool.run == 2
    assert spool.append(ticks(1)) == [4]
    assert [e.seq for e in spool.oldest(10)] == [3, 4] and spool.count == 2
    spool.close(clean=False)
    spool = Spool(path, BIG, MONTH)
    assert spool.last_run == "crash" and spool.append(ticks(1)) == [5]
    again = Event("tick", {}, id=spool.oldest(1)[0].id)  # an event stored twice takes no second seq
    assert spool.append([again]) == [] and spool.append(ticks(1)) == [6]
    spool.close(clean=True)


def covered(spool: Spool) -> set[int]:
    """The seqs a receiver can account for: still spooled, or inside an announced drop."""
    seqs: set[int] = set()
    for event in spool.oldest(10_000):
        seqs.add(event.seq)
        if event.type == "dropped":
            seqs.update(range(event.data["first_seq"], event.data["last_seq"] + 1))
    return seqs


def on_disk(path: Path) -> int:
    """What a spool at ``path`` takes: the database, its WAL and the WAL index."""
    return sum(Path(f"{path}{suffix}").stat().st_size for suffix in ("", "-wal", "-shm")
               if Path(f"{path}{suffix}").exists())


def test_the_size_bound_drops_the_oldest_and_announces_which(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events.db", 256 * 1024, MONTH)
    for n in range(0, 2000, 5):
        spool.append(ticks(5, start=n))
        assert on_disk(spool.path) <= spool.max_bytes
    drops = [e for e in spool.oldest(10_000) if e.type == "dropped"]
    assert drops and all(d.data["reason"] == "size" for d in drops)
    assert covered(spool) == set(range(1, spool.next_seq))
    # every seq ever issued is either still spooled or counted once (reports fold the reports they drop)
    assert spool.count + sum(d.data["count"] for d in drops) == spool.next_seq - 1
    newest = [e.data["n"] for e in spool.oldest(10_000) if e.type == "tick"]
    assert newest == list(range(2000 - len(newest), 2000))  # the oldest went first
    spool.close(clean=True)


def test_the_bound_counts_the_wal_and_acknowledgements_give_the_space_back(tmp_path: Path) -> None:
    """One transaction per event (the shipper's pace when events trickle in) grew the WAL past the bound."""
    path = tmp_path / "events.db"
    spool = Spool(path, 1 << 20, MONTH)
    largest = 0
    for n in range(400):
        spool.append(ticks(1, start=n))
        largest = max(largest, on_disk(path))
        assert on_disk(path) <= spool.max_bytes, f"{on_disk(path)} bytes on disk after {n + 1} appends"
    assert spool.count == 400 and not [e for e in spool.oldest(1000) if e.type == "dropped"]
    assert spool.disk_bytes() == on_disk(path) and spool.status()["disk_bytes"] == on_disk(path)
    before = on_disk(path)
    assert spool.acknowledge(1, 400) == 400
    assert Path(f"{path}-wal").stat().st_size == 0  # checkpointed and truncated
    assert on_disk(path) < before / 2  # the deleted events' pages went back to the filesystem
    spool.close(clean=True)


def test_the_age_bound_drops_old_events_and_announces_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "events.db", BIG, 3600)
    spool.append(ticks(5))
    assert spool.expire(time.time()) == 0
    assert spool.expire(time.time() + 3601) == 5
    [report] = spool.oldest(10)
    assert report.type == "dropped" and report.seq == 6
    assert report.data == {"reason": "age", "count": 5, "first_seq": 1, "last_seq": 5}
    spool.close(clean=True)


WRITER = """
import sys
from pathlib import Path
from appliance.events import Event
from appliance.fleet.spool import Spool
spool = Spool(Path(sys.argv[1]), 64 * 2**20, 86400)
while True:
    [seq] = spool.append([Event("tick", {"pad": "x" * 200})])
    print(seq, flush=True)
"""


def test_kill_9_while_spooling_leaves_no_corruption_and_no_gap(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                              env=python_env())
    assert writer.stdout is not None
    last = 0
    for line in writer.stdout:
        last = int(line)
        if last >= 300:
            break
    writer.kill()
    writer.wait(timeout=5)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    spool = Spool(path, 64 * 2**20, 86400)
    assert spool.last_run == "crash"
    seqs = [e.seq for e in spool.oldest(100_000)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= last
    assert spool.append(ticks(1)) == [len(seqs) + 1]
    spool.close(clean=True)


class FakeLink:
    """The two things the worker asks of a link, with deliveries the test resolves by hand."""

    device_id = "screen-a"
    topics = Topics.for_device("screen-a")

    def __init__(self) -> None:
        self.connected = False
        self.connected_since: float | None = None
        self.sent: list[tuple[dict[str, Any], Delivery]] = []

    def connect(self) -> None:
        self.connected_since = time.monotonic()
        self.connected = True

    def publish(self, topic: str, payload: dict[str, Any], qos: int = 1, retain: bool = False,
                expiry_s: float | None = None) -> Delivery:
        assert topic == self.topics.events and qos == 1
        delivery = Delivery(len(self.sent) + 1)
        self.sent.append((payload, delivery))
        return delivery

    def seqs(self, index: int) -> list[int]:
        return [event["seq"] for event in self.sent[index][0]["events"]]


@pytest.fixture
def shipping(tmp_path: Path) -> Iterator[tuple[EventBus, FakeLink, EventShipper]]:
    bus, link = EventBus(), FakeLink()
    shipper = EventShipper(bus, link, FleetConfig(batch_size=50), tmp_path, retry_s=0.1)  # type: ignore[arg-type]
    yield bus, link, shipper.start()
    if shipper._spool is not None:
        shipper.link.connected = False
        shipper.stop(flush_timeout=0)


def test_events_leave_the_spool_only_after_puback_and_a_refused_batch_goes_again(
        shipping: tuple[EventBus, FakeLink, EventShipper]) -> None:
    bus, link, shipper = shipping
    for event in ticks(3):
        bus.publish(event.type, event.data)
    wait_for(lambda: shipper.status()["pending"] == 4, what="boot and three events spooled")
    assert link.sent == []  # not connected: nothing goes out
    link.connect()
    wait_for(lambda: len(link.sent) == 1, what="the first batch")
    assert link.seqs(0) == [1, 2, 3, 4] and link.sent[0][0]["historical"] is True
    link.sent[0][1].resolve(False, "Quota exceeded")
    wait_for(lambda: len(link.sent) == 2, what="the batch again")
    assert link.seqs(1) == [1, 2, 3, 4] and shipper.status()["pending"] == 4
    link.connected = False  # a disconnect before the PUBACK: the batch stays
    time.sleep(0.2)
    assert shipper.status()["pending"] == 4 and len(link.sent) == 2
    link.connected = True
    link.sent[1][1].resolve(True, "Success")
    wait_for(lambda: shipper.status()["pending"] == 0, what="the acknowledged batch deleted")


def test_events_after_the_connect_are_live_and_earlier_ones_historical(
        shipping: tuple[EventBus, FakeLink, EventShipper]) -> None:
    bus, link, shipper = shipping
    bus.publish("offline_event")
    wait_for(lambda: shipper.status()["pending"] == 2, what="two spooled")
    link.connect()
    bus.publish("live_event")
    wait_for(lambda: len(link.sent) == 1, what="the historical batch")
    assert link.sent[0][0]["historical"] is True
    assert [e["type"] for e in link.sent[0][0]["events"]] == ["boot", "offline_event"]
    link.sent[0][1].resolve(True, "Success")
    wait_for(lambda: len(link.sent) == 2, what="the live batch")
    assert link.sent[1][0] == {"device": "screen-a", "historical": False, "events": link.sent[1][0]["events"]}
    [live] = link.sent[1][0]["events"]
    assert live["type"] == "live_event" and live["seq"] == 3 and set(live) == {"id", "seq", "ts", "type", "data"}


def test_an_unwritable_state_dir_costs_nothing_silently(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.write_text("a file where the state directory should be")
    bus, link = EventBus(capacity=5), FakeLink()
    shipper = EventShipper(bus, link, FleetConfig(), state, retry_s=0.1).start()  # type: ignore[arg-type]
    try:
        wait_for(lambda: shipper.problem, what="the spool problem")
        started = time.monotonic()
        for n in range(20):
            bus.publish("tick", {"n": n})
        assert time.monotonic() - started < 0.5  # the kiosk never waits
        assert "cannot be opened" in shipper.problem and "cannot be opened" in caplog.text
        state.unlink()
        state.mkdir()
        wait_for(lambda: shipper.problem is None and shipper.status()["pending"] == 7, what="the spool back")
    finally:
        shipper.stop(flush_timeout=0)
    spool = Spool(state / SPOOL_FILE, BIG, MONTH)
    events = spool.oldest(100)
    assert [e.type for e in events] == ["boot", "dropped", "tick", "tick", "tick", "tick", "tick", "shutdown"]
    assert events[1].data == {"reason": "memory", "count": 15, "first_seq": None, "last_seq": None}
    assert [e.data["n"] for e in events[2:7]] == [15, 16, 17, 18, 19]
    assert spool.last_run == "clean"
    spool.close(clean=True)


def test_a_replaced_spool_numbers_on_above_every_seq_it_gave_out(tmp_path: Path) -> None:
    """seq increases forever, even when the database had to be moved aside (corrupt) or was lost."""
    from appliance.events import Event
    from appliance.fleet.spool import Spool

    path = tmp_path / "events.db"
    spool = Spool(path, 1 << 20, 86400)
    given = spool.append([Event("n", {"i": i}) for i in range(5)])
    spool.close(clean=True)
    for leftover in tmp_path.glob("events.db*"):
        if not leftover.name.endswith(".seq-floor"):
            leftover.unlink()
    replaced = Spool(path, 1 << 20, 86400)
    assert replaced.append([Event("n", {"i": 5})])[0] > max(given)
    replaced.close(clean=True)


FULL_DISK = """
import json, shutil, sys, time
from pathlib import Path
from broker import wait_for
from test_spool import FakeLink
from appliance.config import FleetConfig
from appliance.events import EventBus
from appliance.fleet.shipper import EventShipper

state = Path(sys.argv[1])
bus, link = EventBus(capacity=3000), FakeLink()
shipper = EventShipper(bus, link, FleetConfig(batch_size=50), state, retry_s=0.1).start()
n = 0
while shipper.problem is None and n < 50_000:  # the link is down: everything goes to the spool
    bus.publish("tick", {"n": n, "pad": "x" * 200})
    n += 1
    if n % 50 == 0:
        wait_for(lambda: len(bus) == 0 or shipper.problem, what="the worker draining the bus")
full = {"problem": shipper.problem, "spooled": shipper.status()["pending"], "free": shutil.disk_usage(state).free}
for _ in range(3600):  # the bus keeps what it can (more than the disk takes at once) and drops the rest
    bus.publish("tick", {"n": n, "pad": "x" * 200})
    n += 1
link.connect()
acked = 0
deadline = time.monotonic() + 30
while (shipper.problem or len(bus) or shipper.status()["pending"]) and time.monotonic() < deadline:
    for _, delivery in link.sent[acked:]:
        delivery.resolve(True, "Success")
        acked += 1
    time.sleep(0.02)
status = shipper.status()
shipper.stop(flush_timeout=0)
events = [event for batch, _ in link.sent for event in batch["events"]]
print(json.dumps({"full": full, "published": n, "bus_dropped": bus.dropped, "status": status,
                  "free_after": shutil.disk_usage(state).free,
                  "seqs": sorted({event["seq"] for event in events}),
                  "ticks": sorted({event["data"]["n"] for event in events if event["type"] == "tick"}),
                  "dropped": [event["data"] for event in events if event["type"] == "dropped"]}))
"""


def in_small_filesystem(tmp_path: Path, size: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (argv[1]: the mount point) in a private mount namespace with a tmpfs of ``size`` mounted;
    skip with the reason when the kernel or the user may not do that."""
    mount = tmp_path / "state"
    mount.mkdir()
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mount -t tmpfs -o size="$1" oivis-test "$2" || exit 77; shift 2; exec "$@"', "sh", size, str(mount)]
    probe = subprocess.run([*command, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs in a private mount namespace: {probe.stderr.strip()}")
    env = python_env()
    env["PYTHONPATH"] = f"{Path(__file__).parent}:{env['PYTHONPATH']}"
    return subprocess.run([*command, sys.executable, "-c", script, str(mount)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_a_full_state_filesystem_recovers_once_events_are_acknowledged(tmp_path: Path) -> None:
    """A 1 MiB state filesystem, the default bound (64 MiB): the spool fills it, then must come back by itself."""
    run = in_small_filesystem(tmp_path, "1m", FULL_DISK)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    full = result["full"]
    assert "cannot store events" in full["problem"] and full["spooled"] > 1000, full
    assert full["free"] > 0  # refused before the last byte: deleting needs room too
    status = result["status"]
    assert status["problem"] is None and status["pending"] == 0, status  # writable again, no restart
    assert result["free_after"] > 700 * 1024  # the acknowledged events gave their space back
    assert result["seqs"] == list(range(1, len(result["seqs"]) + 1))  # no gap
    [memory] = [report for report in result["dropped"] if report["reason"] == "memory"]
    assert memory["count"] == result["bus_dropped"] > 0
    assert len(result["ticks"]) + memory["count"] == result["published"]  # every tick arrived or was counted


def test_a_spool_made_before_auto_vacuum_is_converted_and_keeps_its_events(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    spool = Spool(path, BIG, MONTH)
    spool.append(ticks(3))
    spool.close(clean=True)
    with sqlite3.connect(path) as db:  # as the spool of an earlier release left it
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA auto_vacuum=NONE")
        db.execute("VACUUM")
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    spool = Spool(path, BIG, MONTH)
    assert [e.data["n"] for e in spool.oldest(10)] == [0, 1, 2] and spool.append(ticks(1)) == [4]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 1
    spool.close(clean=True)
