"""A latest-value slot: the hand-over between threads that never builds a queue.

A producer overwrites; a consumer takes the newest value, optionally waiting for
one newer than what it already has.  Old values are simply dropped, so latency
stays bounded however slow the consumer is.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._value: T | None = None
        self._version = 0

    def put(self, value: T) -> None:
        with self._condition:
            self._value = value
            self._version += 1
            self._condition.notify_all()

    def latest(self) -> tuple[int, T | None]:
        """(version, value) now; version 0 means nothing was ever put."""
        with self._condition:
            return self._version, self._value

    def newer_than(self, version: int, timeout: float) -> tuple[int, T | None]:
        """Wait up to ``timeout`` s for a value newer than ``version``; returns the latest either way."""
        with self._condition:
            self._condition.wait_for(lambda: self._version > version, timeout)
            return self._version, self._value
