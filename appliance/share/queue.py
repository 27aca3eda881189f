"""Uploads as a queue on disk: photos survive a restart, are retried with backoff, and never outstay retention.

Layout under the queue directory (``queue_directory(state_dir)``): ``<photo_id>.jpg`` (the queue's own
copy of the photo, 0600) and ``<photo_id>.json`` (``created`` and ``next_try`` as wall-clock seconds,
``attempts``, ``uploaded``, the caller's ``labels`` and whether the upload was ``announced``).
One worker thread (``appliance.worker.Worker``) takes submissions in, uploads due jobs oldest first and
probes the storage between them, keeping ``online`` current for the screen.  The caller's side
(``submit``, ``announced``, ``done``, ``to_announce``) never touches the disk: it records in memory and
wakes the worker, the only one to read or write the queue's files, never while holding the lock the
caller's side takes.

Invariants:
- a submission reaches the disk when the worker takes it in, first thing in its next round (the
  caller's file copied, then the JSON, each written atomically), or in ``stop`` at the latest; until
  then it is in memory only and a crash loses it.  The caller's file must therefore stay until ``done``
  (an upload reads the queue's copy, so ``done`` comes after the copy) or until ``stop`` has returned;
  a submission whose file cannot be read when the worker takes it in (gone, unreadable) or cannot be
  written into the queue is dropped with a warning and never ``done``;
- ``announced`` is recorded in memory and written by the worker in its next round (or in ``stop``); a
  crash before that announces the upload again after the restart;
- a photo without its JSON is an unfinished take-in and is deleted at start, as are temporary files
  and the photo of a job already uploaded;
- the local photo is deleted as soon as it is uploaded, and photo and JSON both once ``retention_s``
  has passed since submission, uploaded or not (wall clock, so a restart does not extend it; a clock
  set back before the submission counts as expired too; the worker's first round after a start
  deletes what expired while the device was off) — except the JSON of an upload the caller has
  not yet taken from ``to_announce`` (ids and labels only), kept until ``announced``, so an upload that
  ended just before a crash or a stop is still announced after the restart;
- a job whose photo cannot be read is dropped with a warning (it does not make the storage offline);
- the caller's ``labels`` (campaign, session) go with the upload as the object's metadata (``store.METADATA``);
- a failed attempt waits 2 s, 4 s, 8 s… (at most 5 min, less up to 20 % jitter); when the storage
  answers again every waiting job is due at once;
- ``online`` is None until the first answer, then whether the last upload or probe succeeded;
- logs name a photo by its tag (``links.photo_tag``), never by its id (with a short link the id is the
  link's only secret), and never show a link or a key;
- ``purge_queue`` empties the directory without a store, for a device whose sharing is off.
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
from appliance.digest import photo_tag
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


def queue_directory(state_dir: Path) -> Path:
    return Path(state_dir) / "share" / "queue"


def purge_queue(state_dir: Path) -> int:
    """Sharing is off: delete every file an earlier run left in the queue (photos, records, temporary files),
    said in one warning; how many files.  ApplianceError (naming the directory) when it cannot be emptied."""
    directory = queue_directory(state_dir)
    try:
        files = [path for path in directory.iterdir() if path.is_file()] if directory.is_dir() else []
        for path in files:
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise ApplianceError(f"cannot empty the share queue {directory}: {exc.strerror}") from None
    if files:
        photos = sum(path.suffix == ".jpg" for path in files)
        log.warning("share: off; deleted %d photo(s) and %d other file(s) left in %s by an earlier run",
                    photos, len(files) - photos, directory)
    return len(files)


def _reason(exc: ApplianceError) -> str:
    """Why ``write_atomically`` failed, without its message (it names the file, so the photo id)."""
    cause = exc.__cause__
    return getattr(cause, "strerror", None) or type(cause or exc).__name__


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
        self._arriving: dict[str, tuple[Job, Path]] = {}   # submitted, not yet taken in (memory only)
        self._unsaved: set[str] = set()                    # announced, not yet written
        self._jobs = self._load()

    # -- disk (the worker's thread, or the starting and stopping one) ----------------------------------
    def _photo(self, photo_id: str) -> Path:
        return self.directory / f"{photo_id}.jpg"

    def _record(self, photo_id: str) -> Path:
        return self.directory / f"{photo_id}.json"

    def _write(self, path: Path, data: bytes, photo_id: str) -> bool:
        """``data`` atomically at ``path``; False, said with the photo's tag, when the disk refuses."""
        try:
            write_atomically(path, data, mode=SECRET_MODE)
        except ApplianceError as exc:
            log.warning("share: photo %s: cannot write its %s in %s (%s)", photo_tag(photo_id),
                        "copy" if path.suffix == ".jpg" else "record", self.directory, _reason(exc))
            return False
        return True

    def _unlink(self, path: Path, photo_id: str) -> None:
        """``path`` gone; an error said with the photo's tag (an OSError's text names the file: the id)."""
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("share: photo %s: cannot delete a file of it in %s (%s)", photo_tag(photo_id),
                        self.directory, exc.strerror)

    def _delete(self, photo_id: str) -> None:
        self._unlink(self._photo(photo_id), photo_id)
        self._unlink(self._record(photo_id), photo_id)

    def _load(self) -> dict[str, Job]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ApplianceError(f"cannot create the share queue {self.directory}: {exc.strerror}") from exc
        jobs: dict[str, Job] = {}
        for path in self.directory.iterdir():
            if path.name.startswith(".") and path.name.endswith(".tmp"):   # .<photo_id>.<suffix>.<random>.tmp
                self._unlink(path, path.name.split(".")[1])
            elif path.suffix == ".json":
                try:
                    job = Job(**json.loads(path.read_text()))
                    check_photo_id(job.photo_id)
                except (OSError, TypeError, ValueError) as exc:
                    log.warning("share: dropping unreadable queue entry of photo %s (%s)", photo_tag(path.stem),
                                type(exc).__name__)
                    self._delete(path.stem)
                    continue
                if job.uploaded or self._photo(job.photo_id).is_file():
                    jobs[job.photo_id] = job
                else:
                    log.warning("share: photo %s dropped: its file is gone", photo_tag(job.photo_id))
                    self._delete(job.photo_id)
        for path in self.directory.glob("*.jpg"):
            if path.stem not in jobs or jobs[path.stem].uploaded:
                self._unlink(path, path.stem)
        waiting = sum(not job.uploaded for job in jobs.values())
        if waiting:
            log.info("share: %d photo(s) waiting to upload from before the restart", waiting)
        return jobs

    # -- the caller's side: memory only ----------------------------------------------------------------
    def submit(self, photo_id: str, jpeg: Path, labels: dict[str, str | None] | None = None) -> None:
        """Queue ``jpeg``, copied by the worker in its next round (see the invariants: the caller's file stays
        until ``done`` or ``stop``), with ``labels`` for its announcement (``to_announce``)."""
        check_photo_id(photo_id)
        job = Job(photo_id, created=self._clock(), labels=dict(labels or {}))
        with self._lock:
            self._arriving[photo_id] = (job, Path(jpeg))
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
        """The caller has announced the upload: its record may go with the retention (written by the worker)."""
        with self._lock:
            job = self._jobs.get(photo_id)
            if job is not None and not job.announced:
                job.announced = True
                self._unsaved.add(photo_id)
        self._wake.set()

    def stop(self) -> None:
        """The worker stops; what is still only in memory (submissions, announcements) is written first."""
        self._stopping.set()
        self._wake.set()
        super().stop()
        self._take_in()
        self._persist()

    # -- the worker --------------------------------------------------------------------------------
    def step(self) -> None:
        self._take_in()
        self._persist()
        now = self._clock()
        self._expire(now)
        job = self._due(now)
        if job is not None:
            self._attempt(job)
        elif time.monotonic() - self._probed_at >= (PROBE_ONLINE_S if self.online else PROBE_OFFLINE_S):
            self._probe()
        self._wake.wait(IDLE_S)
        self._wake.clear()

    def _take_in(self) -> None:
        """Submissions onto the disk: the caller's file copied, then the record; into the queue once both are."""
        with self._lock:
            arriving, self._arriving = self._arriving, {}
        for job, source in arriving.values():
            try:
                data = source.read_bytes()
            except OSError as exc:
                log.warning("share: photo %s dropped: its file cannot be read (%s)", photo_tag(job.photo_id),
                            exc.strerror)
                continue
            if not (self._write(self._photo(job.photo_id), data, job.photo_id)
                    and self._write(self._record(job.photo_id), json.dumps(asdict(job)).encode(), job.photo_id)):
                log.warning("share: photo %s dropped: not copied into the queue", photo_tag(job.photo_id))
                self._delete(job.photo_id)
                continue
            with self._lock:
                self._jobs[job.photo_id] = job

    def _persist(self) -> None:
        """The announcements onto the disk."""
        with self._lock:
            jobs = [self._jobs[photo_id] for photo_id in self._unsaved if photo_id in self._jobs]
            self._unsaved.clear()
        for job in jobs:
            self._save(job)

    def _save(self, job: Job) -> None:
        with self._lock:
            record = json.dumps(asdict(job)).encode()
        self._write(self._record(job.photo_id), record, job.photo_id)

    def _expire(self, now: float) -> None:
        with self._lock:
            old = [job for job in self._jobs.values()
                   if not 0 <= now - job.created < self.retention_s and (job.announced or not job.uploaded)]
            for job in old:
                del self._jobs[job.photo_id]
        for job in old:
            if not job.uploaded:   # said before the files go, so whoever sees them gone finds it said
                log.warning("share: photo %s deleted after retention, never uploaded", photo_tag(job.photo_id))
            self._delete(job.photo_id)

    def _due(self, now: float) -> Job | None:
        with self._lock:
            due = [job for job in self._jobs.values() if not job.uploaded and job.next_try <= now]
            return min(due, key=lambda job: job.created) if due else None

    def _attempt(self, job: Job) -> None:
        try:
            self.store.upload(job.photo_id, self._photo(job.photo_id), job.labels)
        except StorageError as exc:
            self._answered(False, exc)
            with self._lock:
                job.attempts += 1
                job.next_try = self._clock() + backoff_s(job.attempts)
            self._save(job)
            if job.attempts == 1:
                log.warning("share: photo %s not uploaded yet: %s", photo_tag(job.photo_id), exc)
            return
        except ApplianceError as exc:
            log.warning("share: photo %s dropped: %s", photo_tag(job.photo_id), exc)
            with self._lock:
                del self._jobs[job.photo_id]
            self._delete(job.photo_id)
            return
        with self._lock:
            job.uploaded = True
        self._save(job)
        self._unlink(self._photo(job.photo_id), job.photo_id)
        log.info("share: photo %s uploaded", photo_tag(job.photo_id))
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
