"""Where the appliance's log goes: the journal, with structured fields, under systemd; stderr otherwise.

Under systemd the native journal protocol (systemd-python's ``JournalHandler``;
Debian's ``python3-systemd`` on boards) keeps each record's logger, thread,
source line and any UPPERCASE ``extra=`` keys as fields, and every record
carries what the kiosk is doing at that moment: ``OIVIS_DEVICE``,
``OIVIS_CAMPAIGN`` and ``OIVIS_SESSION`` from ``journal_context``, which the
kiosk updates as campaigns and sessions change, so
``journalctl -u oivis-appliance OIVIS_SESSION=42 -o json`` is one shopper's
session.  A field not known yet (no session while nobody is in front) is
absent, never empty.

Without systemd-python the unit's stderr still reaches the journal: one error
line names the missing package, and lines then carry a ``<N>``
syslog-priority prefix, which journald turns into the record's priority, and
no timestamp (journald adds its own) — but no structured fields.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import TextIO

IDENTIFIER = "oivis-appliance"
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: logging level → syslog priority, for stderr lines journald reads.
PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
#: ``journal_context.update`` keyword → journal field.
CONTEXT_FIELDS = {"device": "OIVIS_DEVICE", "campaign": "OIVIS_CAMPAIGN", "session": "OIVIS_SESSION"}

log = logging.getLogger(__name__)


class JournalContext(logging.Filter):
    """What the kiosk is doing now, stamped on every record as journal fields.

    Thread-safe: writers replace the whole mapping under a lock, and a record
    (logged from any thread) reads one consistent mapping.  A field an
    ``extra=`` of the call already sets is left as the call set it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._fields: Mapping[str, str] = {}

    def update(self, **values: str | int | None) -> None:
        """``update(campaign="Winter", session=7)``; None removes a field (the session ended)."""
        unknown = sorted(values.keys() - CONTEXT_FIELDS.keys())
        if unknown:
            raise TypeError(f"unknown journal context field(s) {', '.join(unknown)}; "
                            f"known: {', '.join(CONTEXT_FIELDS)}")
        with self._lock:
            fields = dict(self._fields)
            for name, value in values.items():
                if value is None:
                    fields.pop(CONTEXT_FIELDS[name], None)
                else:
                    fields[CONTEXT_FIELDS[name]] = str(value)
            self._fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for field, value in self._fields.items():
            if not hasattr(record, field):
                setattr(record, field, value)
        return True


#: The process's one context: the kiosk updates it, the journal handler applies it.
journal_context = JournalContext()


def under_journal(environ: Mapping[str, str], stream: TextIO) -> bool:
    """True when systemd connected ``stream`` to the journal (``$JOURNAL_STREAM`` names its device:inode)
    or started this process as a unit (``$INVOCATION_ID``)."""
    if environ.get("INVOCATION_ID"):
        return True
    expected = environ.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


class PriorityFormatter(logging.Formatter):
    """``<3>appliance.kiosk.app: message`` — the syslog prefix journald understands on a stderr stream."""

    def format(self, record: logging.LogRecord) -> str:
        priority = next((value for level, value in PRIORITIES if record.levelno >= level), 7)
        return f"<{priority}>" + super().format(record).replace("\n", f"\n<{priority}>")


def configure_logging(verbose: bool = False, fields: Mapping[str, str] | None = None,
                      environ: Mapping[str, str] | None = None, stream: TextIO | None = None) -> str:
    """Install the root handler and return where logs go: ``journal``, ``stderr-journal`` or ``stderr``.

    ``fields`` are constant journal fields added to every record (e.g. ``{"OIVIS_BUILD": ...}``);
    what changes while the kiosk runs goes through ``journal_context``.
    """
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    level = logging.DEBUG if verbose else logging.INFO
    if not under_journal(environ, stream):
        logging.basicConfig(level=level, format=CONSOLE_FORMAT, stream=stream, force=True)
        return "stderr"
    try:
        from systemd.journal import JournalHandler
    except ImportError as exc:
        plain = logging.StreamHandler(stream)
        plain.setFormatter(PriorityFormatter("%(name)s: %(message)s"))
        logging.basicConfig(level=level, handlers=[plain], force=True)
        log.error("systemd-python is not installed (%s; Debian's python3-systemd on boards): logging to stderr, "
                  "without the journal fields OIVIS_DEVICE, OIVIS_CAMPAIGN and OIVIS_SESSION", exc)
        return "stderr-journal"
    handler = JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER, **(fields or {}))
    handler.setFormatter(logging.Formatter("%(message)s"))  # level, logger, time: fields of their own
    handler.addFilter(journal_context)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    return "journal"
