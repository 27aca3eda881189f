"""The print desk: a worker that prints queued photos and keeps a truthful status for the screen.

Invariants:
- ``submit`` never blocks (the render loop calls it); the worker thread alone talks to CUPS.
- Every photo ends exactly once, as printed or failed, within ``job_timeout_s`` of its ``submit``
  (plus one poll): the outcome is handed to ``on_outcome`` (the core turns it into a
  ``photo_printed`` / ``print_failed`` event) and ``status`` shows it until ``forget``.
- A job CUPS has not finished by the deadline is cancelled and purged from CUPS's spool, so a photo
  never comes out of the printer after the shopper was told it would not.
- The page counter counts a page when CUPS takes the job and gives it back when CUPS refuses it; a
  photo over the day's limit is never sent.
- The alert ``printer`` is up exactly while the queue has a problem (stopped, gone, refusing, an
  ``-error`` reason, CUPS unreachable) or since a job missed its deadline with no job printed after;
  its reason is the printer's reason.
- The page file CUPS prints is written under ``<state_dir>/printing`` and deleted as soon as CUPS has
  its copy (or refused it); the job title never carries the photo's id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.alerts import Alerts
from appliance.printing.counter import PageCounter
from appliance.printing.layout import PrintLayout, parse_media
from appliance.printing.printer import Printer, PrinterError, QueueState
from appliance.worker import Worker

if TYPE_CHECKING:
    from appliance.config import Config

log = logging.getLogger(__name__)

ALERT_CODE = "printer"
JOB_TITLE = "oivis photo"

#: What the shopper is told, by the photo's state.
PRINTING = "printing…"
PRINTED = "printed: take your photo below"
ATTENTION = "printer needs attention: scan the QR"
LIMIT_REACHED = "no more prints today: scan the QR"


@dataclass(frozen=True)
class PrintStatus:
    """``state``: waiting, printing, printed or failed; ``screen``: the line to show; ``reason``: why, for logs."""

    state: str
    screen: str
    reason: str = ""

    @property
    def ended(self) -> bool:
        return self.state in ("printed", "failed")


Outcome = Callable[[str, PrintStatus], None]


@dataclass
class _Request:
    photo_id: str
    image: Path
    campaign: str
    submitted: float
    job_id: int | None = None


class PrintService(Worker):
    def __init__(self, printer: Printer, layout: PrintLayout, counter: PageCounter, alerts: Alerts,
                 work_dir: Path, options: dict[str, str], job_timeout_s: float, poll_s: float,
                 on_outcome: Outcome | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("print-desk")
        self.printer, self.layout, self.counter, self.alerts = printer, layout, counter, alerts
        self.work_dir, self.options = work_dir, options
        self.job_timeout_s, self.poll_s = job_timeout_s, poll_s
        self.on_outcome = on_outcome
        self._clock = clock
        self._lock = threading.Lock()
        self._incoming: deque[_Request] = deque()
        self._active: list[_Request] = []
        self._statuses: dict[str, PrintStatus] = {}
        self._queue_state: QueueState | None = None
        self._missed: str | None = None

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

    def submit(self, photo_id: str, image_path: Path, campaign: str = "") -> None:
        """``image_path`` (the print-size photo) queued for printing; ``status(photo_id)`` follows it."""
        request = _Request(photo_id, Path(image_path), campaign, self._clock())
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
        """True when the last look at the queue found nothing wrong and no job has missed its deadline since."""
        with self._lock:
            return self._queue_state is not None and self._queue_state.problem is None and self._missed is None

    def step(self) -> None:
        state = self.printer.state()
        with self._lock:
            self._queue_state = state
            incoming = list(self._incoming)
            self._incoming.clear()
        for request in incoming:
            self._send(request, state)
        for request in list(self._active):
            self._follow(request, state)
        self._update_alert(state)
        self.problem = state.problem
        self.pause(self.poll_s)

    def _waiting_status(self) -> PrintStatus:
        problem = self._queue_state.problem if self._queue_state is not None else None
        return PrintStatus("waiting", ATTENTION, problem) if problem else PrintStatus("waiting", PRINTING)

    def _send(self, request: _Request, state: QueueState) -> None:
        if not state.present:
            self._active.append(request)   # waits for the printer to come back, until its deadline
            self._set(request, PrintStatus("waiting", ATTENTION, state.problem or ""))
            return
        if not self.counter.take(request.campaign):
            self._end(request, PrintStatus("failed", LIMIT_REACHED,
                                           f"daily limit of {self.counter.daily_limit} pages reached"))
            return
        page = self.work_dir / f"{request.photo_id}.pdf"
        try:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self.layout.write_pdf(request.image, page)
            request.job_id = self.printer.print_file(page, JOB_TITLE, self.options)
        except (OSError, ValueError, PrinterError) as exc:
            self.counter.give_back(request.campaign)
            self._end(request, PrintStatus("failed", ATTENTION, str(exc)))
            return
        finally:
            page.unlink(missing_ok=True)
        log.info("photo sent to the printer as job %d", request.job_id)
        self._active.append(request)
        problem = state.problem
        self._set(request, PrintStatus("printing", ATTENTION, problem) if problem else PrintStatus("printing", PRINTING))

    def _follow(self, request: _Request, state: QueueState) -> None:
        if request.job_id is None:
            if state.present:
                self._active.remove(request)
                self._send(request, state)
            elif self._overdue(request):
                self._end(request, PrintStatus("failed", ATTENTION, state.problem or "no printer"))
            return
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
            self._end(request, PrintStatus("failed", ATTENTION,
                                           f"job {job.job_id} {'cancelled' if job.cancelled else 'aborted'}: "
                                           f"{job.message or ', '.join(job.reasons)}"))
        elif self._overdue(request):
            why = state.problem or job.message or ", ".join(job.reasons) or "no reason given"
            self._missed = f"a job was not printed within {self.job_timeout_s:g} s: {why}"
            try:
                self.printer.cancel(job.job_id)
            except PrinterError as exc:
                log.warning("%s", exc)
            self._end(request, PrintStatus("failed", ATTENTION, self._missed))
        elif state.problem:
            self._set(request, PrintStatus("printing", ATTENTION, state.problem))
        else:
            self._set(request, PrintStatus("printing", PRINTING))

    def _purge(self, job_id: int) -> None:
        """An ended job's files out of CUPS's spool (a shopper's photo must not stay there, whatever
        cupsd.conf's PreserveJobFiles says)."""
        try:
            self.printer.cancel(job_id)
        except PrinterError as exc:
            log.warning("%s", exc)

    def _overdue(self, request: _Request) -> bool:
        return self._clock() - request.submitted > self.job_timeout_s

    def _set(self, request: _Request, status: PrintStatus) -> None:
        with self._lock:
            self._statuses[request.photo_id] = status

    def _end(self, request: _Request, status: PrintStatus) -> None:
        if request in self._active:
            self._active.remove(request)
        self._set(request, status)
        (log.info if status.state == "printed" else log.warning)("print %s%s", status.state,
                                                                 f": {status.reason}" if status.reason else "")
        if self.on_outcome is not None:
            try:
                self.on_outcome(request.photo_id, status)
            except Exception:  # noqa: BLE001 - the caller's bug must not stop the desk
                log.exception("print outcome listener failed")

    def _update_alert(self, state: QueueState) -> None:
        self.alerts.set(ALERT_CODE, state.problem or self._missed)
