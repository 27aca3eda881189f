"""The one shape of background thread in the appliance: a loop that runs until stopped.

Workers never raise out of their loop: a failure is kept in ``problem`` (for the
screen, the health report and the logs) and the loop carries on.
"""

from __future__ import annotations

import logging
import threading
from typing import TypeVar

log = logging.getLogger(__name__)

#: Longest pause between retries of a step that keeps failing unexpectedly.
MAX_BACKOFF_S = 5.0

W = TypeVar("W", bound="Worker")


class Worker:
    def __init__(self, name: str) -> None:
        self.problem: str | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self: W) -> W:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2.0)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def pause(self, seconds: float) -> bool:
        """Sleep unless asked to stop first; True when stopping."""
        return self._stopping.wait(seconds)

    def _run(self) -> None:
        failures = 0
        while not self.stopping:
            try:
                self.step()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the thread is an edge: report, back off, carry on
                failures += 1
                if failures == 1:
                    log.exception("%s: unexpected failure; retrying", self._thread.name)
                self.problem = f"{type(exc).__name__}: {exc}"
                self.pause(min(0.1 * 2 ** failures, MAX_BACKOFF_S))

    def step(self) -> None:
        """One round of the worker's job; overridden by each worker."""
        raise NotImplementedError
