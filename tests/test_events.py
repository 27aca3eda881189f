"""The event bus: stamping, the bounded buffer and its drop count, subscribers, two publishing threads."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta

import pytest

from appliance.events import Event, EventBus


def test_events_are_stamped_and_their_data_copied() -> None:
    bus = EventBus()
    data = {"experience": "rps"}
    first = bus.publish("experience_chosen", data)
    data["experience"] = "mirror"
    second = bus.publish("session_end", {"dwell_s": 12.5})
    assert first.data == {"experience": "rps"}
    assert uuid.UUID(first.id).version == 4 and first.id != second.id
    assert first.monotonic <= second.monotonic
    stamped = datetime.fromisoformat(first.ts)
    assert stamped.utcoffset() == timedelta(0)
    assert abs((datetime.now(stamped.tzinfo) - stamped).total_seconds()) < 5
    assert bus.drain(10) == [first, second] and len(bus) == 0


def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    bus = EventBus(capacity=3)
    published = [bus.publish("gesture", {"n": n}) for n in range(5)]
    assert len(bus) == 3 and bus.dropped == 2
    assert bus.drain(2) == published[2:4]
    assert bus.drain(10) == published[4:]
    assert bus.drain(10) == [] and bus.dropped == 2


def test_subscribers_hear_every_event_until_they_unsubscribe_and_a_broken_one_harms_nobody() -> None:
    bus = EventBus()
    heard: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(broken)
    stop = bus.subscribe(heard.append)
    bus.publish("session_start", {})
    stop()
    bus.publish("session_end", {})
    assert [event.type for event in heard] == ["session_start"]
    assert len(bus) == 2


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EventBus(capacity=0)


@pytest.mark.parametrize("capacity", [100_000, 500])
def test_two_publisher_threads_and_a_drainer_lose_nothing_unaccounted(capacity: int) -> None:
    bus = EventBus(capacity=capacity)
    per_thread, drained = 5000, []
    done = threading.Event()

    def publisher(name: str) -> None:
        for n in range(per_thread):
            bus.publish("gesture", {"thread": name, "n": n})

    def drainer() -> None:
        while not done.is_set():
            drained.extend(bus.drain(64))

    threads = [threading.Thread(target=publisher, args=(name,)) for name in "ab"]
    draining = threading.Thread(target=drainer)
    draining.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    draining.join()
    drained.extend(bus.drain(capacity))
    assert len(drained) + bus.dropped == 2 * per_thread
    assert len({event.id for event in drained}) == len(drained)
    for name in "ab":
        numbers = [event.data["n"] for event in drained if event.data["thread"] == name]
        assert numbers == sorted(numbers), "each publisher's events stay in order"
    if capacity >= 2 * per_thread:
        assert bus.dropped == 0


def test_a_session_runs_from_presence_to_its_loss_with_dwell_and_gesture_counts() -> None:
    from scripted import state

    from appliance.kiosk.navigation import Navigator
    from appliance.kiosk.session import Sessions

    bus, navigator = EventBus(), Navigator()
    sessions = Sessions(bus, navigator)
    navigator.update(state("rock"), 0.0)                 # before the session: not counted
    sessions.update(True, 10.0)
    sessions.update(True, 11.0)
    navigator.update(state("scissors"), 11.0)
    navigator.update(state("rock"), 12.0)
    sessions.update(False, 22.5)
    sessions.update(False, 23.0)
    start, end = bus.drain(10)
    assert (start.type, end.type) == ("session_start", "session_end")
    assert start.data["session"] == end.data["session"] and sessions.current is None
    assert end.data["dwell_s"] == 12.5 and end.data["gestures"] == {"victory": 1, "fist": 1}
