"""Where the appliance's log goes: the journal, with structured fields, under systemd; stderr otherwise.

Under systemd the native journal protocol (systemd-python's ``JournalHandler``)
keeps each record's logger, thread, source line and any UPPERCASE ``extra=``
keys as fields, so ``journalctl -u oivis-appliance LOGGER=appliance.kiosk.app``
works.  Without systemd-python the unit's stderr still reaches the journal;
lines then carry a ``<N>`` syslog-priority prefix, which journald turns into
the record's priority, and no timestamp (journald adds its own).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

IDENTIFIER = "oivis-appliance"
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: logging level → syslog priority, for stderr lines journald reads.
PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))


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


def journal_handler(fields: Mapping[str, str]) -> logging.Handler | None:
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER, **fields)


def configure_logging(verbose: bool = False, fields: Mapping[str, str] | None = None,
                      environ: Mapping[str, str] | None = None, stream: TextIO | None = None) -> str:
    """Install the root handler and return where logs go: ``journal``, ``stderr-journal`` or ``stderr``.

    ``fields`` are added to every journal record (e.g. ``{"OIVIS_DEVICE_ID": ...}``).
    """
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    level = logging.DEBUG if verbose else logging.INFO
    if under_journal(environ, stream):
        handler = journal_handler(fields or {})
        if handler is not None:
            logging.basicConfig(level=level, handlers=[handler], force=True)
            return "journal"
        plain = logging.StreamHandler(stream)
        plain.setFormatter(PriorityFormatter("%(name)s: %(message)s"))
        logging.basicConfig(level=level, handlers=[plain], force=True)
        return "stderr-journal"
    logging.basicConfig(level=level, format=CONSOLE_FORMAT, stream=stream, force=True)
    return "stderr"
