"""The print desk: a worker that prints queued photos and keeps a truthful status for the screen.

Invariants:
- ``submit`` never blocks (the render loop calls it); the worker thread alone talks to CUPS and writes
  the desk's files.  A request is in memory only until the worker's next round (or ``stop``) writes it
  to ``<state_dir>/printing/requests.json`` (0600, replaced atomically): photo id, labels, submission
  wall-clock time, the page counted, the CUPS job id once sent, the outcome once known.  A crash in
  that moment loses the request (no outcome); one that cannot be written ends failed, never sent.
- Every request ends exactly once, as printed or failed, within ``job_timeout_s`` of its ``submit``
  (plus one poll): the outcome is written to the file, then handed to ``on_outcome(photo_id, status,
  labels)`` (the core turns it into a ``photo_printed`` / ``print_failed`` event with the labels'
  campaign and session), then dropped from the file; so an outcome recorded before a crash is handed
  over at the next start (a crash between handing it over and dropping it hands it over twice; it is
  never lost).  ``status`` shows it until ``forget``.  Whatever goes wrong while handling one request
  (a page count that cannot be written on a full disk, a broken photo) ends that request as failed
  with the error as its reason; the others carry on.
- At start: page files a crash left in the work directory are deleted; a request already sent to CUPS
  is followed again to its end (its deadline still counted from its submission on the wall clock, a
  clock set back giving it at most ``job_timeout_s`` more), one not yet sent ends failed ("the kiosk
  restarted before it was printed": the shopper has gone and the photo files are deleted, so a photo
  is never printed after a restart).  A crash between CUPS taking a job and the file recording its id
  (a moment) leaves that job unfollowed and its request failed as not sent.  Requests from before a
  restart have no ``status`` (no screen waits for them): ``on_outcome`` alone reports them.
- A job CUPS has not finished by the deadline is cancelled and purged from CUPS's spool, so a photo
  never comes out of the printer after the shopper was told it would not.
- The page counter counts a page when the job is sent and gives it back when CUPS refuses, cancels or
  aborts the job (a cancel at the deadline too), never when it completed; a photo over the day's limit
  is never sent.
- The alert ``printer`` is up while the queue has a problem (stopped, gone, refusing, an ``-error``
  reason, CUPS unreachable) and after a job missed its deadline, until a job prints or the queue,
  having shown a problem since the miss (a paper-out, a paused queue), shows none with no job of ours
  left in it.  A queue that merely looks idle because the late job was cancelled proves nothing, so
  that alone does not clear it.  Its reason is the printer's reason; ``printer_ok`` is False while it
  is up.
- The page CUPS prints is a ``page-*.pdf`` made by ``mkstemp`` (0600) in the work directory (0700) and
  deleted as soon as CUPS has its copy (or refused it): CUPS's job title (``JOB_TITLE``) and document
  name (the file's name) never carry the photo's id, and neither do the logs: they name a photo by its
  ``photo_tag`` (appliance.digest: 8 hex digits of a hash, no way back to the id) and CUPS's job id;
  a reason that would name the photo's id (an error about its file) names its tag instead.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.alerts import Alerts
from appliance.atomicfile import SECRET_MODE, write_atomically
from appliance.digest import photo_tag
from appliance.errors import ApplianceError, one_line
from appliance.printing.counter import PageCounter
from appliance.printing.layout import PrintLayout, parse_media
from appliance.printing.printer import Printer, PrinterError, QueueState
from appliance.worker import Worker

if TYPE_CHECKING:
    from appliance.config import Config

log = logging.getLogger(__name__)

ALERT_CODE = "printer"
JOB_TITLE = "oivis photo"
REQUESTS_FILE = "requests.json"
WORK_DIR_MODE = 0o700
#: What a crash can leave in the work directory: the page files CUPS was (or was not) given.
LEFTOVER_PAGES = ("*.pdf", "page-*")
RESTARTED = "the kiosk restarted before it was printed"

#: What the shopper is told, by the photo's state.
PRINTING = "printing…"
PRINTED = "printed: take your photo below"
#: The end of the lines that send the shopper to the QR code instead (``PrintStatus.line``).
TO_QR = ": scan the QR"
ATTENTION = "printer needs attention" + TO_QR
LIMIT_REACHED = "no more prints today" + TO_QR


@dataclass(frozen=True)
class PrintStatus:
    """``state``: waiting, printing, printed or failed; ``screen``: the line to show; ``reason``: why, for logs."""

    state: str
    screen: str
    reason: str = ""

    @property
    def ended(self) -> bool:
        return self.state in ("printed", "failed")

    def line(self, qr: bool) -> str:
        """The line for a shopper who has a QR code (``qr``) or not: the latter is not sent to one."""
        return self.screen if qr else self.screen.removesuffix(TO_QR)


Labels = dict[str, str | None]
Outcome = Callable[[str, PrintStatus, Labels], None]


@dataclass
class _Request:
    photo_id: str
    labels: Labels
    submitted: float                  # wall clock: the deadline survives a restart
    deadline: float                   # on the desk's clock
    image: Path | None = None         # None: accepted before a restart, never to be sent
    shown: bool = True                # ``status`` follows it (not one from before a restart)
    page_day: str | None = None       # the day the counter counted its page on, until given back
    job_id: int | None = None
    outcome: PrintStatus | None = None

    @property
    def campaign(self) -> str:
        return self.labels.get("campaign") or ""

    def record(self) -> dict[str, Any]:
        return {"photo_id": self.photo_id, "labels": self.labels, "submitted": self.submitted,
                "page_day": self.page_day, "job_id": self.job_id,
                "outcome": asdict(self.outcome) if self.outcome is not None else None}


class PrintService(Worker):
    def __init__(self, printer: Printer, layout: PrintLayout, counter: PageCounter, alerts: Alerts,
                 work_dir: Path, options: dict[str, str], job_timeout_s: float, poll_s: float,
                 on_outcome: Outcome | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        super().__init__("print-desk")
        self.printer, self.layout, self.counter, self.alerts = printer, layout, counter, alerts
        self.work_dir, self.options = work_dir, options
        self.job_timeout_s, self.poll_s = job_timeout_s, poll_s
        self.on_outcome = on_outcome
        self._clock, self._wall_clock = clock, wall_clock
        self._lock = threading.Lock()
        self._incoming: deque[_Request] = deque()
        self._requests: list[_Request] = []          # the worker's: accepted, not yet handed over
        self._loaded = False
        self._statuses: dict[str, PrintStatus] = {}
        self._queue_state: QueueState | None = None
        self._missed: str | None = None
        self._problem_since_missed = False

    @classmethod
    def from_config(cls, config: Config, alerts: Alerts, state_dir: Path,
                    on_outcome: Outcome | None = None) -> PrintService | None:
        """The started desk for ``config.printing`` (a Config), or None when printing is switched off."""
        settings = config.printing
        if not settings.enabled:
            return None
        work_dir = Path(state_dir) / "printing"
        layout = PrintLayout(parse_media(settings.media), settings.bleed_mm, settings.dpi)
        options = {"media": settings.media, "print-scaling": settings.scaling}
        return cls(Printer(settings.queue, settings.server), layout,
                   PageCounter(work_dir / "pages.json", settings.daily_limit), alerts, work_dir, options,
                   settings.job_timeout_s, settings.poll_s, on_outcome).start()

    @property
    def requests_path(self) -> Path:
        return self.work_dir / REQUESTS_FILE

    def submit(self, photo_id: str, image_path: Path, labels: Mapping[str, str | None]) -> None:
        """``image_path`` (the print-size photo) queued for printing; ``status(photo_id)`` follows it and
        ``on_outcome`` gets ``labels`` back (``campaign``: the page counter's; ``session``…)."""
        kept = {str(key): None if value is None else str(value) for key, value in labels.items()}
        request = _Request(photo_id, kept, self._wall_clock(), self._clock() + self.job_timeout_s, Path(image_path))
        with self._lock:
            self._incoming.append(request)
            self._statuses[photo_id] = self._waiting_status()

    def status(self, photo_id: str) -> PrintStatus | None:
        with self._lock:
            return self._statuses.get(photo_id)

    def forget(self, photo_id: str) -> None:
        """The ended photo's status dropped (the screen has shown it)."""
        with self._lock:
            status = self._statuses.get(photo_id)
            if status is not None and status.ended:
                del self._statuses[photo_id]

    @property
    def printer_ok(self) -> bool:
        """True when the last look at the queue found nothing wrong and no missed deadline stands."""
        with self._lock:
            return self._queue_state is not None and self._queue_state.problem is None and self._missed is None

    def stop(self) -> None:
        """The worker stopped, and the requests it had not yet taken written, to end at the next start."""
        super().stop()
        if self._thread.is_alive():
            log.warning("print desk still busy with CUPS at stop: requests submitted since its last round are lost")
            return
        with self._lock:
            incoming = list(self._incoming)
            self._incoming.clear()
        if incoming:
            try:
                if not self._loaded:
                    self._load()
            except OSError as exc:
                log.warning("print requests of the last run not read at stop: %s", exc)
                return
            self._requests.extend(incoming)
            self._save()

    def step(self) -> None:
        if not self._loaded:
            self._load()
        state = self.printer.state()
        with self._lock:
            self._queue_state = state
            incoming = list(self._incoming)
            self._incoming.clear()
        if incoming:
            self._accept(incoming)
        for request in list(self._requests):
            try:
                self._advance(request, state)
            except Exception as exc:  # noqa: BLE001 - one request's failure ends it, never the others
                self._fail(request, exc)
        self._update_missed(state)
        self._update_alert(state)
        self.problem = state.problem
        self.pause(self.poll_s)

    # -- the requests on disk -----------------------------------------------------------------------------

    def _load(self) -> None:
        """The work directory made private, the page files of a crash deleted, the requests of the last
        run taken back (``_advance`` ends or follows them)."""
        self._prepare_dir()
        left = [path for pattern in LEFTOVER_PAGES for path in self.work_dir.glob(pattern) if path.is_file()]
        for path in set(left):
            path.unlink(missing_ok=True)
        if left:
            log.warning("deleted %d page file(s) left in %s by an earlier run", len(set(left)), self.work_dir)
        wall, now = self._wall_clock(), self._clock()
        for record in self._read():
            elapsed = max(0.0, wall - record["submitted"])
            request = _Request(record["photo_id"], record["labels"], record["submitted"],
                               now + self.job_timeout_s - elapsed, shown=False, page_day=record["page_day"],
                               job_id=record["job_id"],
                               outcome=PrintStatus(**record["outcome"]) if record["outcome"] else None)
            self._requests.append(request)
        if self._requests:
            log.info("%d print request(s) from before the restart", len(self._requests))
        self._loaded = True

    def _read(self) -> list[dict[str, Any]]:
        if not self.requests_path.is_file():
            return []
        try:
            records = json.loads(self.requests_path.read_text())["requests"]
            return [{"photo_id": str(record["photo_id"]),
                     "labels": {str(key): None if value is None else str(value)
                                for key, value in record["labels"].items()},
                     "submitted": float(record["submitted"]),
                     "page_day": None if record["page_day"] is None else str(record["page_day"]),
                     "job_id": None if record["job_id"] is None else int(record["job_id"]),
                     "outcome": None if record["outcome"] is None else {
                         "state": str(record["outcome"]["state"]), "screen": str(record["outcome"]["screen"]),
                         "reason": str(record["outcome"]["reason"])}}
                    for record in records]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s: unreadable (%s); the print requests of the last run are lost", self.requests_path, exc)
            return []

    def _save(self) -> str | None:
        """The requests written; the reason when they could not be (logged: the desk carries on)."""
        document = {"requests": [request.record() for request in self._requests]}
        try:
            write_atomically(self.requests_path, json.dumps(document, sort_keys=True).encode(), SECRET_MODE)
        except ApplianceError as exc:
            log.warning("print requests not kept: %s", exc)
            return str(exc)
        return None

    def _prepare_dir(self) -> None:
        self.work_dir.mkdir(mode=WORK_DIR_MODE, parents=True, exist_ok=True)
        self.work_dir.chmod(WORK_DIR_MODE)

    def _accept(self, incoming: list[_Request]) -> None:
        self._requests.extend(incoming)
        problem = self._save()
        if problem:
            for request in incoming:
                self._end(request, PrintStatus("failed", ATTENTION, f"the request could not be kept: {problem}"))

    # -- one request ----------------------------------------------------------------------------------------

    def _advance(self, request: _Request, state: QueueState) -> None:
        if request.outcome is not None:    # ended before a crash, not handed over then
            self._hand_over(request)
        elif request.job_id is not None:
            self._follow(request, state)
        elif request.image is None:
            self._end(request, PrintStatus("failed", ATTENTION, RESTARTED))
        elif state.present:
            self._send(request, state)
        elif self._overdue(request):
            self._end(request, PrintStatus("failed", ATTENTION, state.problem or "no printer"))
        else:                              # waits for the printer to come back, until its deadline
            self._set(request, PrintStatus("waiting", ATTENTION, state.problem or ""))

    def _fail(self, request: _Request, exc: Exception) -> None:
        reason = _untold(request, one_line(exc))
        log.error("print desk: %s: %s", type(exc).__name__, reason)
        if request.outcome is None:
            self._end(request, PrintStatus("failed", ATTENTION, reason))
        elif request in self._requests:    # its outcome was handed over: it must not be again
            self._requests.remove(request)
            self._save()

    def _waiting_status(self) -> PrintStatus:
        problem = self._queue_state.problem if self._queue_state is not None else None
        return _underway("waiting", problem)

    def _send(self, request: _Request, state: QueueState) -> None:
        request.page_day = self.counter.take(request.campaign)
        if request.page_day is None:
            self._end(request, PrintStatus("failed", LIMIT_REACHED,
                                           f"daily limit of {self.counter.daily_limit} pages reached"))
            return
        try:
            request.job_id = self._print(request.image)
        except Exception as exc:  # noqa: BLE001 - whatever stopped it, CUPS has no job: no paper used
            self._give_back(request)
            self._end(request, PrintStatus("failed", ATTENTION, one_line(exc)))
            return
        self._save()
        log.info("photo %s sent to the printer as job %d", photo_tag(request.photo_id), request.job_id)
        problem = state.problem
        self._set(request, _underway("printing", problem))

    def _print(self, image: Path) -> int:
        """The page for ``image`` in a private file CUPS copies, deleted once it has (or refused it)."""
        self._prepare_dir()
        handle, name = tempfile.mkstemp(prefix="page-", suffix=".pdf", dir=self.work_dir)
        os.close(handle)
        page = Path(name)
        try:
            self.layout.write_pdf(image, page)
            return self.printer.print_file(page, JOB_TITLE, self.options)
        finally:
            page.unlink(missing_ok=True)

    def _follow(self, request: _Request, state: QueueState) -> None:
        try:
            job = self.printer.job(request.job_id)
        except PrinterError as exc:
            if self._overdue(request):
                self._end(request, PrintStatus("failed", ATTENTION, str(exc)))
            return
        if job.printed:
            self._missed = None
            self._purge(job.job_id)
            self._end(request, PrintStatus("printed", PRINTED))
        elif job.ended:
            self._purge(job.job_id)
            self._give_back(request)
            self._end(request, PrintStatus("failed", ATTENTION,
                                           f"job {job.job_id} {'cancelled' if job.cancelled else 'aborted'}: "
                                           f"{job.message or ', '.join(job.reasons)}"))
        elif self._overdue(request):
            why = state.problem or job.message or ", ".join(job.reasons) or "no reason given"
            self._missed = f"a job was not printed within {self.job_timeout_s:g} s: {why}"
            self._problem_since_missed = state.problem is not None
            self._update_alert(state)   # up before the photo's failure is told, so whoever sees one sees both
            try:
                self.printer.cancel(job.job_id)
            except PrinterError as exc:
                log.warning("%s", exc)
            else:
                self._give_back(request)
            self._end(request, PrintStatus("failed", ATTENTION, self._missed))
        else:
            self._set(request, _underway("printing", state.problem))

    def _purge(self, job_id: int) -> None:
        """An ended job's files out of CUPS's spool (a shopper's photo must not stay there, whatever
        cupsd.conf's PreserveJobFiles says)."""
        try:
            self.printer.cancel(job_id)
        except PrinterError as exc:
            log.warning("%s", exc)

    def _give_back(self, request: _Request) -> None:
        if request.page_day is not None:
            day, request.page_day = request.page_day, None
            self.counter.give_back(request.campaign, day)

    def _overdue(self, request: _Request) -> bool:
        return self._clock() > request.deadline

    def _set(self, request: _Request, status: PrintStatus) -> None:
        if request.shown:
            with self._lock:
                self._statuses[request.photo_id] = status

    def _end(self, request: _Request, status: PrintStatus) -> None:
        """``status`` recorded (on disk first, so a crash cannot lose it) and handed over, once."""
        status = PrintStatus(status.state, status.screen, _untold(request, status.reason))
        request.outcome = status
        self._set(request, status)
        self._save()
        job = f" (job {request.job_id})" if request.job_id is not None else ""
        reason = f": {status.reason}" if status.reason else ""
        (log.info if status.state == "printed" else log.warning)(
            "photo %s: print %s%s%s", photo_tag(request.photo_id), status.state, job, reason)
        self._hand_over(request)

    def _hand_over(self, request: _Request) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(request.photo_id, request.outcome, dict(request.labels))
            except Exception:  # noqa: BLE001 - the caller's bug must not stop the desk
                log.exception("print outcome listener failed")
        if request in self._requests:
            self._requests.remove(request)
        self._save()

    # -- the printer as a whole -----------------------------------------------------------------------------

    def _update_missed(self, state: QueueState) -> None:
        """A missed deadline stands until a job prints (``_follow``) or the queue, having shown a problem
        since, shows none with no job of ours left in it: someone dealt with the printer."""
        if self._missed is None:
            return
        if state.problem is not None:
            self._problem_since_missed = True
        elif self._problem_since_missed and not any(request.job_id is not None for request in self._requests):
            log.info("printer fine again after a missed deadline")
            self._missed = None

    def _update_alert(self, state: QueueState) -> None:
        self.alerts.set(ALERT_CODE, state.problem or self._missed)


def _untold(request: _Request, text: str) -> str:
    """``text`` (an error: it may name the photo's file) with the photo's id replaced by its tag."""
    return text.replace(request.photo_id, photo_tag(request.photo_id))


def _underway(state: str, problem: str | None) -> PrintStatus:
    """A photo waiting or printing: the printer's problem for the shopper when it has one, else "printing…"."""
    return PrintStatus(state, ATTENTION, problem) if problem else PrintStatus(state, PRINTING)
