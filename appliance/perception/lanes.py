"""An inference lane: one perception stage on a thread of its own, so stages of one frame run at once.

Invariants:

- A lane is a Worker (the one shape of thread) between two latest-value slots:
  jobs in, results out.  Its owner submits one job and waits for its result
  before submitting the next, so no job is ever dropped and results come back
  in order; a result carries the number of the job it answers.
- The stage's temporal state is touched only by the lane's thread.
- A stage that raises does not kill the lane: the exception travels back as the
  job's result and is raised in the owner's thread, where perception reports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from appliance.errors import ApplianceError
from appliance.slot import LatestSlot
from appliance.worker import Worker

#: How often a waiting owner checks that the lane is still running.
POLL_S = 0.2


class Lane(Worker):
    def __init__(self, name: str) -> None:
        super().__init__(f"lane-{name}")
        self.name = name
        self._jobs: LatestSlot[Callable[[], Any]] = LatestSlot()
        self._results: LatestSlot[tuple[int, Any, BaseException | None]] = LatestSlot()
        self._seen = 0
        self._submitted = 0

    def submit(self, job: Callable[[], Any]) -> int:
        """Queue ``job`` (the previous one must have been collected); returns its number for ``collect``."""
        self._jobs.put(job)
        self._submitted += 1
        return self._submitted

    def collect(self, number: int) -> Any:
        """Wait for job ``number``'s result; re-raise what it raised."""
        version = 0
        while True:
            version, result = self._results.newer_than(version, POLL_S)
            if result is not None and result[0] == number:
                _, value, error = result
                if error is not None:
                    raise error
                return value
            if self.stopping:
                raise ApplianceError(f"inference lane {self.name} stopped before job {number} finished")

    def step(self) -> None:
        version, job = self._jobs.newer_than(self._seen, POLL_S)
        if job is None or version == self._seen:
            return
        self._seen = version
        try:
            self._results.put((version, job(), None))
        except Exception as exc:  # noqa: BLE001 - handed to the owner's thread, which reports it
            self._results.put((version, None, exc))
