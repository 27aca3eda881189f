"""A real CUPS scheduler of the test's own, with a cups-pdf queue: never the machine's service.

``Cups()`` starts ``cupsd -f`` as root with a ServerRoot, spool, cache, state, logs and a Unix socket
in one fresh directory under /tmp (0755, so the filters that cupsd runs as ``lp`` can reach its
TempDir); ``add_pdf_queue`` creates the queue ``oivis-pdf`` with ``lpadmin … -v cups-pdf:/<instance> -m
lsb/usr/cups-pdf/CUPS-PDF_opt.ppd -E``.  Commands (``lpadmin``, ``cupsdisable`` …) run with
``CUPS_SERVER`` set to the private socket.

cups-pdf does not follow the scheduler's ServerRoot: it reads its configuration from the compiled-in
``/etc/cups`` only — ``cups-pdf.conf`` for the URI ``cups-pdf:/``, ``cups-pdf-<instance>.conf`` for
``cups-pdf:/<instance>``.  So the queue is an instance named after the process id, whose own file
there sends the PDFs to ``out_dir`` and cups-pdf's log and spool into the test's directory; the
machine's ``cups-pdf.conf`` is never touched.

Invariants: every command is bounded in time and a failure names the command and its output (and
the scheduler's error log); ``close`` (the context manager's exit) stops the scheduler it started
(SIGTERM, then SIGKILL), removes the directory and the queue's ``/etc/cups`` file, even after a
failed start; files of a killed run (a process id that is gone) are removed by the next.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CUPSD = "/usr/sbin/cupsd"
CUPS_PDF_BACKEND = "/usr/lib/cups/backend/cups-pdf"
CUPS_PDF_PPD = "lsb/usr/cups-pdf/CUPS-PDF_opt.ppd"
CUPS_PDF_CONFIG_DIR = Path("/etc/cups")
INSTANCE_PREFIX = "oivis-test-"
COMMAND_TIMEOUT_S = 20.0
START_TIMEOUT_S = 15.0

CUPSD_CONF = """\
Listen {socket}
LogLevel debug
MaxLogSize 0
Browsing No
BrowseLocalProtocols none
DefaultAuthType None
WebInterface No
JobRetryInterval 2
<Location />
  Order allow,deny
  Allow all
</Location>
<Policy default>
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
"""

CUPS_FILES_CONF = """\
ServerRoot {root}/etc
RequestRoot {root}/spool
TempDir {root}/spool/tmp
CacheDir {root}/cache
StateDir {root}/state
ServerBin /usr/lib/cups
DataDir /usr/share/cups
DocumentRoot /usr/share/cups/doc-root
AccessLog {root}/log/access_log
ErrorLog {root}/log/error_log
PageLog {root}/log/page_log
User lp
Group lp
SystemGroup root
FileDevice No
"""

CUPS_PDF_CONF = """\
Out {out}
AnonDirName {out}
Spool {root}/cups-pdf-spool
Log {root}/log
LogType 7
Grp root
UserUMask 0022
"""


class CupsError(RuntimeError):
    """The private scheduler or one of its commands failed (the command and its output are in the message)."""


def refusal() -> str | None:
    """Why a private cupsd with a cups-pdf queue cannot run here (not root, a package missing), or None."""
    if os.geteuid() != 0:
        return "a private cupsd runs as root (its backends, cups-pdf among them, start as root)"
    for path, package in ((CUPSD, "cups"), (CUPS_PDF_BACKEND, "printer-driver-cups-pdf")):
        if not os.path.exists(path):
            return f"{path} is missing (apt-get install -y {package})"
    for command in ("lpadmin", "lpstat", "cupsdisable", "cupsenable"):
        if shutil.which(command) is None:
            return f"`{command}` is not installed (apt-get install -y cups-client)"
    return None


class Cups:
    """One private scheduler; ``server`` is what pycups' ``Connection(host=…)`` and ``CUPS_SERVER`` take."""

    def __init__(self) -> None:
        remove_leftovers()
        self.queue = "oivis-pdf"
        self.instance = f"{INSTANCE_PREFIX}{os.getpid()}"
        self.cups_pdf_conf = CUPS_PDF_CONFIG_DIR / f"cups-pdf-{self.instance}.conf"
        self.root = Path(tempfile.mkdtemp(prefix="oivis-cups-"))
        self.root.chmod(0o755)
        self.server = str(self.root / "cups.sock")
        self.out_dir = self.root / "pdf"
        self.error_log = self.root / "log" / "error_log"
        self._process: subprocess.Popen[bytes] | None = None
        try:
            self._configure()
            self._start()
        except BaseException:
            self.close()
            raise

    def _configure(self) -> None:
        etc = self.root / "etc"
        for directory in (etc / "ppd", etc / "ssl", self.root / "spool" / "tmp", self.root / "cache",
                          self.root / "state", self.root / "log", self.root / "cups-pdf-spool"):
            directory.mkdir(parents=True)
        self.out_dir.mkdir(mode=0o777)
        self.out_dir.chmod(0o777)
        (etc / "cupsd.conf").write_text(CUPSD_CONF.format(socket=self.server))
        (etc / "cups-files.conf").write_text(CUPS_FILES_CONF.format(root=self.root))
        self.cups_pdf_conf.write_text(CUPS_PDF_CONF.format(root=self.root, out=self.out_dir))

    def _start(self) -> None:
        etc = self.root / "etc"
        self._process = subprocess.Popen(
            [CUPSD, "-f", "-c", str(etc / "cupsd.conf"), "-s", str(etc / "cups-files.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise CupsError(f"cupsd exited {self._process.returncode}: "
                                f"{self._process.stderr.read().decode(errors='replace') if self._process.stderr else ''}"
                                f"{self.log_tail()}")
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(self.server)
                return
            except OSError:
                time.sleep(0.1)
        raise CupsError(f"cupsd did not listen on {self.server} within {START_TIMEOUT_S:.0f} s{self.log_tail()}")

    def environ(self) -> dict[str, str]:
        return {**os.environ, "CUPS_SERVER": self.server}

    def run(self, *command: str) -> str:
        """``command`` against this scheduler; its standard output, or CupsError naming it and its output."""
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                                  env=self.environ())
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CupsError(f"{' '.join(command)}: {exc}{self.log_tail()}") from exc
        if done.returncode != 0:
            raise CupsError(f"{' '.join(command)} exited {done.returncode}: "
                            f"{(done.stderr or done.stdout).strip()}{self.log_tail()}")
        return done.stdout

    def add_pdf_queue(self, default: bool = True) -> str:
        """The cups-pdf queue ``queue``, enabled and accepting (and the default destination when asked)."""
        self.run("lpadmin", "-p", self.queue, "-v", f"cups-pdf:/{self.instance}", "-m", CUPS_PDF_PPD, "-E")
        if default:
            self.run("lpadmin", "-d", self.queue)
        return self.queue

    def pdfs(self) -> list[Path]:
        """The PDFs cups-pdf has finished writing, oldest first."""
        return sorted(self.out_dir.glob("*.pdf"), key=lambda path: path.stat().st_mtime)

    def log_tail(self, lines: int = 30) -> str:
        if not self.error_log.is_file():
            return ""
        tail = self.error_log.read_text(errors="replace").splitlines()[-lines:]
        return "\ncupsd error_log (tail):\n" + "\n".join(tail)

    def __enter__(self) -> Cups:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """The scheduler stopped (its whole process group: backends and filters too), the directory removed."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self.cups_pdf_conf.unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)


def remove_leftovers() -> None:
    """The ``/etc/cups`` files of instances whose test process is gone (a killed run)."""
    for path in CUPS_PDF_CONFIG_DIR.glob(f"cups-pdf-{INSTANCE_PREFIX}*.conf"):
        match = re.fullmatch(rf"cups-pdf-{INSTANCE_PREFIX}(\d+)\.conf", path.name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            path.unlink(missing_ok=True)


def pdf_queue() -> Iterator[Cups]:
    """For a fixture: a private cupsd with its cups-pdf queue, stopped after (skipped with the reason where
    this machine cannot run one)."""
    reason = refusal()
    if reason:
        pytest.skip(reason)
    with Cups() as server:
        server.add_pdf_queue()
        yield server
