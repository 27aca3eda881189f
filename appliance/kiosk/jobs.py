"""Jobs off the render loop: work longer than a frame (a full-resolution still, a composite, an upload,
a print, a slow model), run beside the loop, its result handed back on the loop.

Invariants:

- ``submit`` never blocks the loop: it queues the function and returns a ``JobHandle``.
- Each owner (a scene run's token, never reused) has its own lane, a worker thread made at its first
  job: its jobs run one at a time in submission order, and a job that hangs holds up only its own
  run's later jobs, never another run's or another experience's.
- A handle's ``done`` turns true only in ``deliver``, which the loop calls at the start of a frame:
  a scene sees a job finish between frames, never in the middle of one.
- ``cancel`` (the run exited) is told to the lane without waiting for it: a job that had started
  finishes on its thread and its result is dropped; one not started yet never runs; the lane's
  thread then ends.  Only open owners' lanes are kept.
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

    @property
    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        if not self._done:
            raise ValueError(f"job {self.name!r} is not done yet (check .done first)")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class _Lane(Worker):
    """One owner's jobs, in order, on a thread of their own; finished ones go to ``finished``."""

    def __init__(self, owner: int, finished: Callable[[JobHandle], None]) -> None:
        super().__init__(f"jobs-{owner}")
        self.queue: queue.Queue[JobHandle] = queue.Queue()
        self._finished = finished

    def close(self) -> None:
        """Stop after the job running now (if any), without waiting for it."""
        self._stopping.set()

    def step(self) -> None:
        try:
            handle = self.queue.get(timeout=0.2)
        except queue.Empty:
            return
        if self.stopping:
            return
        try:
            handle._value = handle.function()
        except Exception as exc:  # noqa: BLE001 - the job's failure belongs to the scene that asked
            log.warning("job %s failed: %s", handle.name, exc)
            handle._error = exc
        self._finished(handle)


class JobRunner:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lanes: dict[int, _Lane] = {}
        self._finished: list[JobHandle] = []

    def open(self, owner: int) -> None:
        """``owner`` may submit; its lane's thread starts with its first job."""
        with self._lock:
            self._lanes.setdefault(owner, _Lane(owner, self._done))

    def submit(self, function: Callable[[], T], name: str, owner: int) -> JobHandle[T]:
        handle: JobHandle[T] = JobHandle(function, name, owner)
        with self._lock:
            lane = self._lanes.get(owner)
            if lane is None:
                raise ValueError(f"job {name!r}: its scene has exited")
            if not lane._thread.is_alive():
                lane.start()
        lane.queue.put(handle)
        return handle

    def cancel(self, owner: int) -> None:
        """Drop ``owner``'s jobs' results, and never start those still waiting (on the loop; never waits)."""
        with self._lock:
            lane = self._lanes.pop(owner, None)
        if lane is not None:
            lane.close()

    def _done(self, handle: JobHandle) -> None:
        with self._lock:
            self._finished.append(handle)

    def deliver(self) -> list[JobHandle]:
        """On the loop: mark the jobs finished since the last call done (their owners still open); returns them."""
        with self._lock:
            finished, self._finished = self._finished, []
            live = set(self._lanes)
        delivered = [handle for handle in finished if handle.owner in live]
        for handle in delivered:
            handle._done = True
        return delivered

    def stop(self) -> None:
        """Close every lane (the kiosk is stopping); threads still in a job end with it (daemon threads)."""
        with self._lock:
            lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            lane.close()
