"""The in-process event bus: what happened on the screen, stamped, buffered for the fleet link.

Publishers are the render loop and the scenes; the fleet link drains the buffer
from its own thread later, so the buffer is bounded and a slow or absent link
costs the oldest events (counted in ``dropped``), never memory or a blocked frame.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

#: Events kept while nobody drains: a few hours of busy sessions.
DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    monotonic: float = field(default_factory=time.monotonic)
    ts: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))


Subscriber = Callable[[Event], None]


class EventBus:
    """Thread-safe: any thread may publish, subscribe or drain."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"event buffer capacity must be at least 1, got {capacity}")
        self._lock = threading.Lock()
        self._buffer: deque[Event] = deque(maxlen=capacity)
        self._subscribers: list[Subscriber] = []
        self._dropped = 0

    def publish(self, type: str, data: dict[str, Any] | None = None) -> Event:
        """Stamp, buffer and hand the event to the subscribers (in the publisher's thread)."""
        event = Event(type, dict(data or {}))
        with self._lock:
            if len(self._buffer) == self._buffer.maxlen:
                self._dropped += 1
            self._buffer.append(event)
            subscribers = tuple(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - a listener's bug must not break the screen that published
                log.exception("event subscriber %r failed on %s", subscriber, event.type)
        return event

    def drain(self, max_n: int) -> list[Event]:
        """Take up to ``max_n`` of the oldest buffered events, in publication order."""
        with self._lock:
            return [self._buffer.popleft() for _ in range(min(max_n, len(self._buffer)))]

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` on every event from now on; returns the function that stops it."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    @property
    def dropped(self) -> int:
        """Events lost to a full buffer since start (the oldest go first)."""
        with self._lock:
            return self._dropped

    def __len__(self) -> int:
        with self._lock:
            return len(self._buffer)
