"""A private PostgreSQL cluster the project starts itself, from Debian's server binaries (``make console``'s database).

Layout under the cluster's directory: ``data/`` (the cluster, made by ``initdb`` on the first
start and kept after), ``run/`` (the server's unix socket), ``postgres.log`` (the server's log,
``pg_ctl -l``).  The binaries are the newest ``/usr/lib/postgresql/<version>/bin`` that has
``initdb`` and ``pg_ctl`` (Debian's ``postgresql`` package); none: one line naming the package.

Access: the server listens on no TCP port at all, only on its unix socket in ``run/``, with
``trust`` authentication.  Who may connect is then who may enter the directory (0700): no password
to generate, keep, or leak into a URL that shows in ``ps``, a log or a page, and no port that can
clash with the machine's own PostgreSQL or another clone's.  psycopg reaches it with
``postgresql://postgres@/DB?host=<run dir>`` (``url``).

PostgreSQL refuses to run as root.  Run as root, the server runs as Debian's ``postgres`` system
user (as ``pg_ctlcluster`` does): the directory is made its own, and every parent directory must let
it through; otherwise, or without that user, one line says so.  The clients (running as root) still
reach the socket.  The cluster is stopped with ``pg_ctl stop -m fast`` (sessions ended, nothing lost);
a second ``start`` on the same directory reuses the cluster and its data.
"""

from __future__ import annotations

import os
import pwd
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from appliance.errors import ApplianceError, one_line

BINARIES = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
#: The system user the server runs as when started by root (Debian's).
SYSTEM_USER = "postgres"
#: The port only names the socket file (``.s.PGSQL.<port>``): nothing listens on TCP.
SOCKET_PORT = 5432
#: A unix socket path (``run/.s.PGSQL.5432``) longer than this is refused by the kernel.
MAX_SOCKET_PATH = 107
START_TIMEOUT_S = 60


def find_binaries(root: Path = BINARIES) -> Path:
    """The newest ``root/<version>/bin`` holding ``initdb`` and ``pg_ctl``."""
    found = []
    for candidate in root.glob("*/bin") if root.is_dir() else ():
        version = candidate.parent.name
        if version.isdigit() and (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            found.append((int(version), candidate))
    if not found:
        raise ApplianceError(f"PostgreSQL's server binaries (initdb, pg_ctl under {root}/<version>/bin) are not "
                             "installed: apt-get install postgresql")
    return max(found)[1]


@dataclass(frozen=True)
class RunAs:
    """Who the server runs as: this process's user, or (as root) the ``postgres`` system user."""

    uid: int
    gid: int
    name: str

    @classmethod
    def choose(cls, directory: Path) -> RunAs:
        if os.geteuid() != 0:
            return cls(os.getuid(), os.getgid(), pwd.getpwuid(os.getuid()).pw_name)
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise ApplianceError(f"PostgreSQL refuses to run as root and there is no {SYSTEM_USER!r} system user to "
                                 f"run it as: run make console as an ordinary user, or apt-get install postgresql "
                                 "(it creates that user)") from None
        blocked = _first_closed_parent(directory, entry.pw_uid, entry.pw_gid)
        if blocked is not None:
            raise ApplianceError(f"PostgreSQL refuses to run as root, and the {SYSTEM_USER!r} user it would run as "
                                 f"cannot enter {blocked} on the way to {directory}: run as an ordinary user, or "
                                 f"chmod o+x {blocked}")
        return cls(entry.pw_uid, entry.pw_gid, entry.pw_name)

    @property
    def switches(self) -> bool:
        return self.uid != os.getuid()


def _first_closed_parent(directory: Path, uid: int, gid: int) -> Path | None:
    """The first existing parent of ``directory`` the user ``uid``/``gid`` may not pass through (x), if any
    (missing ones are made by ``start``, searchable by all under the usual umask)."""
    for parent in reversed(directory.resolve().parents):
        if not parent.exists():
            return None
        info = parent.stat()
        if info.st_uid == uid:
            allowed = info.st_mode & 0o100
        elif info.st_gid == gid:
            allowed = info.st_mode & 0o010
        else:
            allowed = info.st_mode & 0o001
        if not allowed:
            return parent
    return None


class PrivateCluster:
    """One cluster in ``directory``: ``start`` (initdb the first time) → ``url``; ``stop``."""

    def __init__(self, directory: Path, database: str = "oivis", binaries: Path | None = None) -> None:
        self.directory = Path(directory).resolve()
        self.database = database
        self.data = self.directory / "data"
        self.socket_dir = self.directory / "run"
        self.log = self.directory / "postgres.log"
        self._binaries = binaries
        socket = self.socket_dir / f".s.PGSQL.{SOCKET_PORT}"
        if len(str(socket)) > MAX_SOCKET_PATH:
            raise ApplianceError(f"the cluster directory {self.directory} is too deep for a unix socket "
                                 f"({len(str(socket))} characters, at most {MAX_SOCKET_PATH}): choose a shorter path")

    @property
    def url(self) -> str:
        """The database's URL for psycopg: its superuser, over the unix socket."""
        return f"postgresql://{SUPERUSER}@/{self.database}?host={quote(str(self.socket_dir), safe='/')}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SUPERUSER}@/postgres?host={quote(str(self.socket_dir), safe='/')}"

    @property
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").is_file()

    @property
    def running(self) -> bool:
        if not self.initialised:
            return False
        return self._pg_ctl(["status"], check=False).returncode == 0

    def start(self) -> str:
        """Initialise (first time), start (unless running) and create the database (unless there); its URL."""
        binaries = self._binaries or find_binaries()
        self._binaries = binaries
        user = RunAs.choose(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        for path in (self.directory, self.socket_dir):
            path.chmod(0o700)
            if user.switches:
                os.chown(path, user.uid, user.gid)
        if not self.initialised:
            self._initdb(user)
        if not self.running:
            options = f"-h '' -k {shlex.quote(str(self.socket_dir))} -p {SOCKET_PORT}"
            result = self._pg_ctl(["start", "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log), "-o", options],
                                  check=False)
            if result.returncode != 0:
                raise ApplianceError(f"PostgreSQL did not start in {self.data}: {one_line(result.stdout)} "
                                     f"{self._log_tail()}")
        self._create_database()
        return self.url

    def stop(self) -> None:
        """Stop the server (``-m fast``: sessions ended, data kept); nothing when it is not running."""
        if not self.running:
            return
        result = self._pg_ctl(["stop", "-w", "-m", "fast", "-t", str(START_TIMEOUT_S)], check=False)
        if result.returncode != 0:
            raise ApplianceError(f"PostgreSQL in {self.data} did not stop: {one_line(result.stdout)}")

    def _initdb(self, user: RunAs) -> None:
        self.data.mkdir(mode=0o700, exist_ok=True)
        if user.switches:
            os.chown(self.data, user.uid, user.gid)
        command = [str(self._binaries / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "--auth", "trust",
                   "--encoding", "UTF8", "--locale", "C.UTF-8", "--no-instructions"]
        result = self._run(command, user)
        if result.returncode != 0:
            raise ApplianceError(f"initdb failed in {self.data}: {one_line(result.stdout)}")

    def _create_database(self) -> None:
        import psycopg
        from psycopg import sql

        try:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        except psycopg.Error as exc:
            raise ApplianceError(f"cannot create the database {self.database} in {self.data}: {one_line(exc)}") \
                from exc

    def _pg_ctl(self, arguments: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        binaries = self._binaries or find_binaries()
        self._binaries = binaries
        user = RunAs.choose(self.directory)
        return self._run([str(binaries / "pg_ctl"), "-D", str(self.data), *arguments], user)

    def _run(self, command: list[str], user: RunAs) -> subprocess.CompletedProcess[str]:
        """``command`` as ``user``, from a directory it may enter (the server inherits its working directory), in a
        session of its own: the terminal's Ctrl+C reaches whoever started the cluster, who stops it in turn."""
        identity = {"user": user.uid, "group": user.gid, "extra_groups": []} if user.switches else {}
        env = {**os.environ, "LC_ALL": "C.UTF-8"}
        if user.switches:
            env["HOME"] = str(self.directory)
        try:
            return subprocess.run(command, cwd=self.directory, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, timeout=120,
                                  start_new_session=True, **identity)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ApplianceError(f"{command[0]} could not run: {exc}") from exc

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "(log: " + " | ".join(text.strip().splitlines()[-lines:]) + ")"

