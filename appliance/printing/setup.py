"""The photo booth's CUPS queue set up through pycups: what a technician did by hand with ``lpadmin``,
``lpoptions`` and an edit of ``cupsd.conf``.

``set_up`` makes the queue (or changes it in place) with its device URI and driver (``lpinfo -v`` and
``lpinfo -m`` list them; ``devices`` and ``drivers`` here ask CUPS the same), enables it, lets it
accept jobs, sets its ``media`` default, optionally makes it CUPS's default destination, and sets the
scheduler's ``PreserveJobFiles No`` (a printed photo leaves CUPS's spool at once) and
``PreserveJobHistory`` to ``JOB_HISTORY_S`` (a finished job's record — the desk reads it to see the
photo printed — kept an hour rather than until MaxJobs).  Every step is idempotent: running it again
gives the same queue and the same scheduler.

Invariants: the scheduler's settings are read from and written to the scheduler itself (``GET`` /
``PUT /admin/conf/cupsd.conf``: the cupsd.conf of its own ServerRoot), never with pycups'
``adminSetServerSettings``: on a local connection that reads the *client's* ``/etc/cups/cupsd.conf``
and uploads it with the changes, which on any scheduler but the machine's replaces its whole
configuration (its Listen lines too).  Only those two top-level directives change, every other line
is kept; the file is put only when one differs, and the settings are set before the queue, because
cupsd reloads after the put (printers.conf reloaded too) and is waited for until it answers again.
Every failure is one ApplianceError naming the queue (or the scheduler) and CUPS's message.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cups

from appliance.errors import ApplianceError
from appliance.printing.layout import parse_media
from appliance.printing.printer import Printer, _ipp_message, connect

CUPSD_CONF = "/admin/conf/cupsd.conf"
JOB_HISTORY_S = 3600
SETTINGS = {"PreserveJobFiles": "No", "PreserveJobHistory": str(JOB_HISTORY_S)}
#: cupsd's own default when cupsd.conf says nothing (cupsd.conf(5)): job files kept a day.
DEFAULT_JOB_FILES = "86400"
NOT_KEPT = ("no", "off", "false", "0")
RELOAD_START_S = 3.0
RELOAD_TIMEOUT_S = 30.0
DEVICE_TIMEOUT_S = 10
_DIRECTIVE = re.compile(r"^(\w+)(?:\s+(.*?))?\s*$")


@dataclass(frozen=True)
class Scheduler:
    """Where CUPS is: ``server`` as ``[printing] server`` (a socket path or host:port), None for CUPS's own."""

    server: str | None
    queue: str | None = None  # the queue being set up, named in every error

    @property
    def name(self) -> str:
        return self.server or "the default scheduler"

    def _error(self, message: str) -> ApplianceError:
        return ApplianceError(f"printer {self.queue}: {message}" if self.queue else message)

    def connect(self) -> cups.Connection:
        try:
            return connect(self.server)
        except RuntimeError as exc:
            raise self._error(f"CUPS cannot be reached at {self.name}: {exc} (systemctl start cups)") from exc

    def conf(self) -> str:
        """The scheduler's own cupsd.conf."""
        connection = self.connect()
        with tempfile.NamedTemporaryFile("r", suffix=".conf") as copy:
            try:
                connection.getFile(CUPSD_CONF, filename=copy.name)
            except cups.HTTPError as exc:
                raise self._error(f"CUPS at {self.name} refused to send its cupsd.conf (HTTP {exc.args[0]}): "
                                     "run as root") from exc
            return Path(copy.name).read_text()

    def settings(self) -> dict[str, str]:
        """cupsd.conf's top-level directives (outside any <Location>/<Policy>), by their lower-case name."""
        return top_level(self.conf())

    def job_files_kept(self) -> str | None:
        """How long the scheduler keeps a printed job's files (``Yes`` or seconds); None when it does not."""
        value = self.settings().get("preservejobfiles", DEFAULT_JOB_FILES)
        return None if value.lower() in NOT_KEPT else value

    def apply(self, wanted: dict[str, str]) -> bool:
        """``wanted`` directives in the scheduler's cupsd.conf; False when it already had them."""
        current = self.conf()
        have = top_level(current)
        if all(have.get(name.lower()) == value for name, value in wanted.items()):
            return False
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as edited:
            edited.write(with_directives(current, wanted))
            edited.flush()
            try:
                self.connect().putFile(CUPSD_CONF, filename=edited.name)
            except cups.HTTPError as exc:
                raise self._error(f"CUPS at {self.name} refused the new cupsd.conf (HTTP {exc.args[0]}): "
                                     "run as root") from exc
        self._wait_for_reload()
        return True

    def _answers(self) -> bool:
        try:
            connect(self.server).getPrinters()
            return True
        except (RuntimeError, cups.IPPError):
            return False

    def _wait_for_reload(self) -> None:
        """cupsd reloads after a new cupsd.conf once it is idle (closing its sockets): wait until it is
        back.  One busy printing may not go away at once; it reloads when its jobs end."""
        deadline = time.monotonic() + RELOAD_START_S
        while self._answers() and time.monotonic() < deadline:
            time.sleep(0.05)
        deadline = time.monotonic() + RELOAD_TIMEOUT_S
        while not self._answers():
            if time.monotonic() > deadline:
                raise self._error(f"CUPS at {self.name} did not come back within {RELOAD_TIMEOUT_S:.0f} s "
                                     "after its cupsd.conf changed (journalctl -u cups; cupsd -t)")
            time.sleep(0.1)


def _lines(conf: str) -> Iterator[tuple[str, re.Match[str] | None]]:
    """Each line of ``conf`` with its directive when it is one at the top level (outside every section)."""
    depth = 0
    for line in conf.splitlines():
        text = line.strip()
        if text.startswith("</"):
            depth -= 1
        elif text.startswith("<"):
            depth += 1
        elif depth == 0:
            yield line, _DIRECTIVE.match(text)
            continue
        yield line, None


def top_level(conf: str) -> dict[str, str]:
    return {match.group(1).lower(): match.group(2) or "" for _, match in _lines(conf) if match}


def with_directives(conf: str, wanted: dict[str, str]) -> str:
    """``conf`` with each top-level ``wanted`` directive set (replaced where it is, appended where not)."""
    remaining = {name.lower(): (name, value) for name, value in wanted.items()}
    lines = []
    for line, match in _lines(conf):
        if match and match.group(1).lower() in remaining:
            name, value = remaining.pop(match.group(1).lower())
            line = f"{name} {value}"
        lines.append(line)
    lines += [f"{name} {value}" for name, value in remaining.values()]
    return "\n".join(lines) + "\n"


def set_up(queue: str, uri: str, driver: str, media: str, server: str | None = None,
           default: bool = False) -> list[str]:
    """The queue and the scheduler as the photo booth needs them; one line per thing done, for the technician."""
    try:
        parse_media(media)
    except ValueError as exc:
        raise ApplianceError(f"printer {queue}: {exc}") from exc
    scheduler = Scheduler(server, queue)
    changed = scheduler.apply(SETTINGS)
    settings = ", ".join(f"{name} {value}" for name, value in SETTINGS.items())
    done = [f"{scheduler.name}: {settings} ({'set, cupsd reloaded' if changed else 'already set'})"]
    connection = scheduler.connect()
    existed = queue in connection.getPrinters()
    try:
        connection.addPrinter(queue, device=uri, ppdname=driver)
    except cups.IPPError as exc:
        if driver not in connection.getPPDs():
            raise ApplianceError(f"printer {queue}: CUPS has no driver {driver!r} (lpinfo -m, or "
                                 f"python -m appliance.printing drivers, lists them): {_ipp_message(exc)}") from exc
        raise ApplianceError(f"printer {queue}: CUPS refused {uri} with {driver}: {_ipp_message(exc)}") from exc
    done.append(f"{queue}: {'changed' if existed else 'created'}: {uri}, driver {driver}")
    try:
        connection.enablePrinter(queue)
        connection.acceptJobs(queue)
        connection.addPrinterOptionDefault(queue, "media", media)
        if default:
            connection.setDefault(queue)
    except cups.IPPError as exc:
        raise ApplianceError(f"printer {queue}: {_ipp_message(exc)}") from exc
    done.append(f"{queue}: enabled, accepting jobs, media {media}{', the default destination' if default else ''}")
    problem = Printer(queue, server).state().problem
    if problem:
        raise ApplianceError(f"printer {queue} set up but cannot print: {problem}")
    return done


def devices(server: str | None = None) -> list[tuple[str, str]]:
    """(URI, description) of the devices CUPS's backends find now (``lpinfo -v``), printers first."""
    connection = Scheduler(server).connect()
    try:
        found = connection.getDevices(timeout=DEVICE_TIMEOUT_S)
    except cups.IPPError as exc:
        raise ApplianceError(f"CUPS at {Scheduler(server).name} did not list its devices: {_ipp_message(exc)}") from exc
    listed = [(uri, f"{about.get('device-make-and-model') or about.get('device-info', '')}")
              for uri, about in found.items() if ":" in uri]
    return sorted(listed, key=lambda item: item[1] in ("", "Unknown"))


def drivers(server: str | None = None, match: str = "") -> list[tuple[str, str]]:
    """(driver, make and model) CUPS can use (``lpinfo -m``), those whose make and model contain ``match``."""
    connection = Scheduler(server).connect()
    try:
        found = connection.getPPDs()
    except cups.IPPError as exc:
        raise ApplianceError(f"CUPS at {Scheduler(server).name} did not list its drivers: {_ipp_message(exc)}") from exc
    listed = [(name, str(about.get("ppd-make-and-model", ""))) for name, about in found.items()]
    return sorted(item for item in listed if match.lower() in item[1].lower())
