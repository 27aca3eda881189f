"""Jobs off the render loop: work longer than a frame (a full-resolution still, a composite, an upload,
a print, a slow model), run by one worker thread, its result handed back on the loop.

Invariants:

- ``submit`` never blocks the loop: it queues the function and returns a ``JobHandle``.
- Jobs run one at a time, in the order they were submitted (one thread: a print
  never races an upload of the same photo).
- A handle's ``done`` turns true only in ``deliver``, which the loop calls at the start
  of a frame: a scene sees a job finish between frames, never in the middle of one.
- Owners are tokens (a scene run's number, never reused): a job runs and is delivered
  only while its owner is open (``open`` … ``cancel``).  A job whose owner was
  cancelled (its scene exited) finishes if it had started, but its result is dropped;
  one not started yet is never run.  Only open owners are remembered.
- A job that raises keeps its exception, re-raised by ``result()`` on the loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from appliance.worker import Worker

log = logging.getLogger(__name__)

T = TypeVar("T")
_PENDING = object()


class JobHandle(Generic[T]):
    def __init__(self, function: Callable[[], T], name: str, owner: int) -> None:
        self.function, self.name, self.owner = function, name, owner
        self._done = False
        self._value: object = _PENDING
        self._error: BaseException | None = None
        self._finished = threading.Event()

    @property
    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        if not self._done:
            raise ValueError(f"job {self.name!r} is not done yet (check .done first)")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class JobRunner(Worker):
    def __init__(self) -> None:
        super().__init__("jobs")
        self._queue: queue.Queue[JobHandle] = queue.Queue()
        self._lock = threading.Lock()
        self._finished: list[JobHandle] = []
        self._open: set[int] = set()

    def open(self, owner: int) -> None:
        with self._lock:
            self._open.add(owner)

    def submit(self, function: Callable[[], T], name: str, owner: int) -> JobHandle[T]:
        handle: JobHandle[T] = JobHandle(function, name, owner)
        self._queue.put(handle)
        return handle

    def cancel(self, owner: int) -> None:
        """Drop the results of ``owner``'s jobs, and never start those still waiting (on the loop)."""
        with self._lock:
            self._open.discard(owner)

    def deliver(self) -> list[JobHandle]:
        """On the loop: mark the jobs finished since the last call done; returns them."""
        with self._lock:
            finished, self._finished = self._finished, []
            live = set(self._open)
        delivered = [handle for handle in finished if handle.owner in live]
        for handle in delivered:
            handle._done = True
        return delivered

    def step(self) -> None:
        try:
            handle = self._queue.get(timeout=0.2)
        except queue.Empty:
            return
        with self._lock:
            if handle.owner not in self._open:
                return
        try:
            handle._value = handle.function()
        except Exception as exc:  # noqa: BLE001 - the job's failure belongs to the scene that asked
            log.warning("job %s failed: %s", handle.name, exc)
            handle._error = exc
        with self._lock:
            self._finished.append(handle)
