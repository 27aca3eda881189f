"""One CUPS queue through pycups: its state and reasons, a file printed, a job followed or cancelled.

Invariants: every call opens its own connection (a pycups connection is not thread-safe, and a
scheduler that restarted is simply reached again); ``state`` never raises — a scheduler that cannot
be reached, a queue that does not exist (or vanished: ``lpadmin -x``, a USB printer unplugged) and
no default destination are states with a ``problem`` like a stopped queue; ``problem`` is None
exactly when a job sent now can print: the queue exists, is not stopped, accepts jobs and reports no
``-error`` reason.  The other calls raise PrinterError naming the queue and CUPS's message.

The queue is never re-enabled here: CUPS shows a queue a person paused (``cupsdisable``) and one
stopped after a paper-out the same way (``paused``), and printing into a printer under maintenance
is worse than a shopper sent to the QR code; jobs sent to a stopped queue wait in CUPS and print
once someone enables it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cups

IDLE, PROCESSING, STOPPED = cups.IPP_PRINTER_IDLE, cups.IPP_PRINTER_PROCESSING, cups.IPP_PRINTER_STOPPED
JOB_DONE = cups.IPP_JOB_COMPLETED
JOB_ENDED = (cups.IPP_JOB_CANCELED, cups.IPP_JOB_ABORTED, cups.IPP_JOB_COMPLETED)
QUEUE_ATTRIBUTES = ["printer-state", "printer-state-reasons", "printer-state-message", "printer-is-accepting-jobs"]
JOB_ATTRIBUTES = ["job-state", "job-state-reasons", "job-printer-state-message"]


class PrinterError(RuntimeError):
    """CUPS refused or could not be asked (the queue and CUPS's message are in the text)."""


@dataclass(frozen=True)
class QueueState:
    queue: str | None
    present: bool
    stopped: bool = False
    accepting: bool = False
    reasons: tuple[str, ...] = ()
    message: str = ""
    unreachable: str = ""

    @property
    def problem(self) -> str | None:
        """What keeps a job sent now from printing, in a technician's words; None when nothing does."""
        if self.unreachable:
            return f"CUPS cannot be reached: {self.unreachable}"
        if self.queue is None:
            return "no printer: CUPS has no default destination and [printing] queue is not set"
        if not self.present:
            return f"printer {self.queue} is gone from CUPS"
        detail = f" ({self.message})" if self.message else ""
        if self.stopped:
            return f"printer {self.queue} stopped: {', '.join(self.reasons) or 'no reason given'}{detail}"
        if not self.accepting:
            return f"printer {self.queue} refuses jobs (cupsreject){detail}"
        errors = [reason for reason in self.reasons if reason.endswith("-error")]
        if errors:
            return f"printer {self.queue}: {', '.join(errors)}{detail}"
        return None


@dataclass(frozen=True)
class JobState:
    job_id: int
    state: int
    reasons: tuple[str, ...]
    message: str

    @property
    def ended(self) -> bool:
        return self.state in JOB_ENDED

    @property
    def printed(self) -> bool:
        return self.state == JOB_DONE

    @property
    def cancelled(self) -> bool:
        return self.state == cups.IPP_JOB_CANCELED


class Printer:
    """The configured queue (``queue``), or CUPS's default destination when it is None."""

    def __init__(self, queue: str | None, server: str | None = None) -> None:
        self.queue = queue
        self.server = server

    def _connect(self) -> cups.Connection:
        return connect(self.server)

    def _destination(self, connection: cups.Connection) -> str | None:
        return self.queue or connection.getDefault()

    def state(self) -> QueueState:
        try:
            connection = self._connect()
            queue = self._destination(connection)
            if queue is None:
                return QueueState(None, present=False)
            attributes = connection.getPrinterAttributes(queue, requested_attributes=QUEUE_ATTRIBUTES)
        except cups.IPPError as exc:
            status = exc.args[0] if exc.args else None
            if status == cups.IPP_NOT_FOUND:
                return QueueState(queue, present=False)
            return QueueState(self.queue, present=False, unreachable=_ipp_message(exc))
        except RuntimeError as exc:
            return QueueState(self.queue, present=False, unreachable=str(exc))
        reasons = tuple(reason for reason in _as_list(attributes.get("printer-state-reasons")) if reason != "none")
        return QueueState(queue, present=True, stopped=attributes.get("printer-state") == STOPPED,
                          accepting=bool(attributes.get("printer-is-accepting-jobs", True)), reasons=reasons,
                          message=str(attributes.get("printer-state-message") or ""))

    def media_default(self) -> str | None:
        """The queue's ``media`` default as ``lpoptions -p <queue>`` shows it (None: not set, or CUPS not reached)."""
        try:
            connection = self._connect()
            queue = self._destination(connection)
            destination = connection.getDests().get((queue, None)) if queue else None
        except (cups.IPPError, RuntimeError):
            return None
        return destination.options.get("media") if destination is not None else None

    def print_file(self, path: Path, title: str, options: dict[str, str]) -> int:
        """The job id CUPS gave ``path``; CUPS copies the file into its spool before answering."""
        try:
            connection = self._connect()
            queue = self._destination(connection)
            if queue is None:
                raise PrinterError("no printer: CUPS has no default destination")
            return int(connection.printFile(queue, str(path), title, options))
        except cups.IPPError as exc:
            raise PrinterError(f"printer {self.queue or 'default'} refused the job: {_ipp_message(exc)}") from exc
        except RuntimeError as exc:
            raise PrinterError(f"CUPS cannot be reached: {exc}") from exc

    def job(self, job_id: int) -> JobState:
        try:
            attributes = self._connect().getJobAttributes(job_id, requested_attributes=JOB_ATTRIBUTES)
        except cups.IPPError as exc:
            raise PrinterError(f"job {job_id}: {_ipp_message(exc)}") from exc
        except RuntimeError as exc:
            raise PrinterError(f"CUPS cannot be reached: {exc}") from exc
        reasons = tuple(reason for reason in _as_list(attributes.get("job-state-reasons")) if reason != "none")
        return JobState(job_id, int(attributes["job-state"]), reasons,
                        str(attributes.get("job-printer-state-message") or ""))

    def cancel(self, job_id: int) -> None:
        """``job_id`` cancelled and its files purged from the spool (the photo must not stay there)."""
        try:
            self._connect().cancelJob(job_id, purge_job=True)
        except cups.IPPError as exc:
            raise PrinterError(f"job {job_id} not cancelled: {_ipp_message(exc)}") from exc
        except RuntimeError as exc:
            raise PrinterError(f"CUPS cannot be reached: {exc}") from exc


def connect(server: str | None) -> cups.Connection:
    """A new connection to ``server`` (a socket path or host:port), or to CUPS's own default when None;
    RuntimeError when it cannot be reached."""
    return cups.Connection(host=server) if server else cups.Connection()


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, (list, tuple)) else [str(value)]


def _ipp_message(exc: cups.IPPError) -> str:
    status, message = (exc.args + (None, None))[:2]
    return f"{message} (IPP status {status:#06x})" if isinstance(status, int) else str(exc)
