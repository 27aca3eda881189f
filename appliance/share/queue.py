"""Uploads as a queue on disk: photos survive a restart, are retried with backoff, and never outstay retention.

Layout under the queue directory: ``<photo_id>.jpg`` (the queue's own copy of the photo, 0600) and
``<photo_id>.json`` (``created`` and ``next_try`` as wall-clock seconds, ``attempts``, ``uploaded``, the
caller's ``labels`` and whether the upload was ``announced``).
One worker thread (``appliance.worker.Worker``) uploads due jobs oldest first and probes the storage
between them, keeping ``online`` current for the screen.

Invariants:
- a job is on disk before ``submit`` returns (the photo, then its JSON, each written atomically); a
  photo without its JSON is an unfinished submission and is deleted at start, as are temporary files;
- the local photo is deleted as soon as it is uploaded, and photo and JSON both once ``retention_s``
  has passed since submission, uploaded or not (wall clock, so a restart does not extend it; a clock
  set back before the submission counts as expired too) — except the JSON of an upload the caller has
  not yet taken from ``to_announce`` (ids and labels only), kept until ``announced``, so an upload that
  ended just before a crash or a stop is still announced after the restart;
- a job whose photo cannot be read is dropped with a warning (it does not make the storage offline);
- a failed attempt waits 2 s, 4 s, 8 s… (at most 5 min, less up to 20 % jitter); when the storage
  answers again every waiting job is due at once;
- ``online`` is None until the first answer, then whether the last upload or probe succeeded;
- logs name photo ids only, never a link or a key.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from appliance.atomicfile import SECRET_MODE, write_atomically
from appliance.errors import ApplianceError
from appliance.share.links import check_photo_id
from appliance.share.store import StorageError, Store
from appliance.worker import Worker

log = logging.getLogger(__name__)

BACKOFF_FIRST_S = 2.0
BACKOFF_MAX_S = 300.0
#: Between probes while the storage answers, and while it does not.
PROBE_ONLINE_S = 30.0
PROBE_OFFLINE_S = 5.0
#: Longest sleep of the worker between rounds when nothing wakes it.
IDLE_S = 0.5


@dataclass
class Job:
    photo_id: str
    created: float
    attempts: int = 0
    next_try: float = 0.0
    uploaded: bool = False
    labels: dict[str, str | None] = field(default_factory=dict)
    announced: bool = False


def backoff_s(attempts: int) -> float:
    return min(BACKOFF_FIRST_S * 2 ** (attempts - 1), BACKOFF_MAX_S) * random.uniform(0.8, 1.0)


class ShareQueue(Worker):
    def __init__(self, directory: Path, store: Store, retention_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__("share-upload")
        self.directory = directory
        self.store = store
        self.retention_s = retention_s
        self.online: bool | None = None
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._probed_at = -math.inf
        self._jobs = self._load()

    # -- disk --------------------------------------------------------------------------------------
    def _photo(self, photo_id: str) -> Path:
        return self.directory / f"{photo_id}.jpg"

    def _record(self, photo_id: str) -> Path:
        return self.directory / f"{photo_id}.json"

    def _save(self, job: Job) -> None:
        write_atomically(self._record(job.photo_id), json.dumps(asdict(job)).encode(), mode=SECRET_MODE)

    def _delete(self, photo_id: str) -> None:
        self._photo(photo_id).unlink(missing_ok=True)
        self._record(photo_id).unlink(missing_ok=True)

    def _load(self) -> dict[str, Job]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ApplianceError(f"cannot create the share queue {self.directory}: {exc.strerror}") from exc
        jobs: dict[str, Job] = {}
        for path in self.directory.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
            elif path.suffix == ".json":
                try:
                    job = Job(**json.loads(path.read_text()))
                    check_photo_id(job.photo_id)
                except (OSError, TypeError, ValueError) as exc:
                    log.warning("share: dropping unreadable queue entry %s (%s)", path.name, type(exc).__name__)
                    self._delete(path.stem)
                    continue
                if job.uploaded or self._photo(job.photo_id).is_file():
                    jobs[job.photo_id] = job
                else:
                    log.warning("share: photo %s dropped: its file is gone", job.photo_id)
                    self._delete(job.photo_id)
        for path in self.directory.glob("*.jpg"):
            if path.stem not in jobs:
                path.unlink(missing_ok=True)
        waiting = sum(not job.uploaded for job in jobs.values())
        if waiting:
            log.info("share: %d photo(s) waiting to upload from before the restart", waiting)
        return jobs

    # -- the caller's side -------------------------------------------------------------------------
    def submit(self, photo_id: str, jpeg: Path, labels: dict[str, str | None] | None = None) -> None:
        """Queue a copy of ``jpeg`` (the caller keeps and deletes its own file), with ``labels`` for its
        announcement (``to_announce``)."""
        check_photo_id(photo_id)
        try:
            data = jpeg.read_bytes()
        except OSError as exc:
            raise ApplianceError(f"cannot read photo {photo_id} at {jpeg}: {exc.strerror}") from exc
        job = Job(photo_id, created=self._clock(), labels=dict(labels or {}))
        with self._lock:
            write_atomically(self._photo(photo_id), data, mode=SECRET_MODE)
            self._save(job)
            self._jobs[photo_id] = job
        self._wake.set()

    def done(self, photo_id: str) -> bool:
        with self._lock:
            job = self._jobs.get(photo_id)
            return job is not None and job.uploaded

    def to_announce(self) -> list[tuple[str, dict[str, str | None]]]:
        """The uploads done and not yet ``announced`` (those from before a restart too), oldest first, with
        their labels."""
        with self._lock:
            jobs = sorted((job for job in self._jobs.values() if job.uploaded and not job.announced),
                          key=lambda job: job.created)
            return [(job.photo_id, dict(job.labels)) for job in jobs]

    def announced(self, photo_id: str) -> None:
        """The caller has announced the upload: its record may go with the retention."""
        with self._lock:
            job = self._jobs.get(photo_id)
            if job is not None and not job.announced:
                job.announced = True
                self._save(job)
        self._wake.set()

    def discard(self, photo_id: str) -> None:
        """The photo leaves the device now; not uploaded if it was still waiting."""
        with self._lock:
            self._jobs.pop(photo_id, None)
            self._delete(photo_id)

    def pending(self) -> list[str]:
        with self._lock:
            return [job.photo_id for job in self._jobs.values() if not job.uploaded]

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        super().stop()

    # -- the worker --------------------------------------------------------------------------------
    def step(self) -> None:
        now = self._clock()
        self._expire(now)
        job = self._due(now)
        if job is not None:
            self._attempt(job)
        elif time.monotonic() - self._probed_at >= (PROBE_ONLINE_S if self.online else PROBE_OFFLINE_S):
            self._probe()
        self._wake.wait(IDLE_S)
        self._wake.clear()

    def _expire(self, now: float) -> None:
        with self._lock:
            old = [job for job in self._jobs.values()
                   if not 0 <= now - job.created < self.retention_s and (job.announced or not job.uploaded)]
            for job in old:
                del self._jobs[job.photo_id]
                if not job.uploaded:   # said before the files go, so whoever sees them gone finds it said
                    log.warning("share: photo %s deleted after retention, never uploaded", job.photo_id)
                self._delete(job.photo_id)

    def _due(self, now: float) -> Job | None:
        with self._lock:
            due = [job for job in self._jobs.values() if not job.uploaded and job.next_try <= now]
            return min(due, key=lambda job: job.created) if due else None

    def _attempt(self, job: Job) -> None:
        try:
            self.store.upload(job.photo_id, self._photo(job.photo_id))
        except StorageError as exc:
            self._answered(False, exc)
            with self._lock:
                if job.photo_id in self._jobs:
                    job.attempts += 1
                    job.next_try = self._clock() + backoff_s(job.attempts)
                    self._save(job)
            if job.attempts == 1:
                log.warning("share: photo %s not uploaded yet: %s", job.photo_id, exc)
            return
        except ApplianceError as exc:
            log.warning("share: photo %s dropped: %s", job.photo_id, exc)
            self.discard(job.photo_id)
            return
        with self._lock:
            if job.photo_id not in self._jobs:  # discarded while uploading
                return
            job.uploaded = True
            self._photo(job.photo_id).unlink(missing_ok=True)
            self._save(job)
        log.info("share: photo %s uploaded", job.photo_id)
        self._answered(True)

    def _probe(self) -> None:
        self._probed_at = time.monotonic()
        try:
            self.store.probe()
        except StorageError as exc:
            self._answered(False, exc)
        else:
            self._answered(True)

    def _answered(self, ok: bool, problem: StorageError | None = None) -> None:
        """Track whether the storage answers; when it comes back, every waiting job is due now."""
        was, self.online = self.online, ok
        self.problem = None if ok else str(problem)
        if ok and was is not True:
            log.info("share: storage reachable")
            with self._lock:
                for job in self._jobs.values():
                    job.next_try = 0.0
        elif not ok and was is not False:
            log.warning("share: storage not available: %s", problem)
