"""``make console``: the console's trial on this machine — database, broker, ingest, screens and the console, alive.

What runs, on 127.0.0.1 only, everything under one directory (``.console/`` in the clone, git-ignored):

- ``postgres/``: a private PostgreSQL cluster (``pgserver``: Debian's binaries, its unix socket only);
- ``broker/``: mosquitto from the shipped fleet configuration (``appliance.ops.testbroker``) with a PKI made at each
  start (its certificates last two days) in ``pki/``, on free ports (printed), its persistence kept;
- ingest (``python -m appliance.ops ingest``, certificate CN ``ingest``) from the broker into the database;
- the screens: simulated ones (``simscreen``, one process each) in two sites, each with its own certificate,
  configuration and state under ``screens/<id>/``; optionally (``kiosk=True``) a real headless kiosk with the
  demo source, off by default: its perception keeps a core busy, and the trial shares two;
- the console (``python -m appliance.console serve``) at a fixed address (default 127.0.0.1:8600, so bookmarks
  survive a restart), as the broker's ``operator`` (operators' CA), signing campaigns with ``keys/operator.key``
  (made once, 0600) that every screen trusts (``keys/operator.pub``), its data in ``console/``.

The database, the keys, the broker's persistence, the screens' spools and campaigns and the console's data are
kept, so a second run picks up where the first stopped.  Every child runs in a session of its own: Ctrl+C
reaches only the trial, which stops them in order (console, screens, ingest, broker, database), each with
SIGINT and then SIGKILL after a bound.  A screen that ends with the restart status (a simulated reboot, a
set-config) is started again, as systemd would; any other child that ends stops the trial with its log's
last lines.  Each part has its own ``start_*`` method, so tests start only what they need.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from appliance.campaigns.signing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, write_keypair
from appliance.console.client import answers
from appliance.console.pgserver import PrivateCluster
from appliance.console.settings import FIRST_RUN_FILE
from appliance.console.simscreen import write_config
from appliance.errors import ApplianceError, command_line, one_line
from appliance.ops.testbroker import MOSQUITTO, OPERATOR, Broker, Pki
from appliance.service.status import RESTART_STATUS

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / ".console"
DEFAULT_LISTEN = "127.0.0.1:8600"
SCREENS = ("demo-mall-screen-1", "demo-station-screen-1")
KIOSK = "demo-mall-screen-2"
#: The shipped operators.acl's stanza for a single ingest worker.
INGEST = "ingest"
STOP_TIMEOUT_S = 15.0
READY_TIMEOUT_S = 60.0
#: The screens' [fleet] timings: the console's health charts fill within a minute, a restarted broker is found fast.
SCREEN_FLEET = {"health_period_s": 10.0, "reconnect_min_s": 0.5, "reconnect_max_s": 5.0, "will_delay_s": 15}


class Child:
    """One child process with its log file: started in a session of its own, stopped with SIGINT then SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Child:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=REPO, start_new_session=True)
        self.starts += 1
        return self

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 5) -> str:
        return " | ".join(self.text().strip().splitlines()[-lines:])

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT_S) -> None:
        """Until ``ready()``; ApplianceError with the log's tail when the process ends first or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            if not self.running:
                raise ApplianceError(f"{self.name} ended (status {self.returncode}) before {what}: {self.tail()}")
            if time.monotonic() > deadline:
                raise ApplianceError(f"{self.name}: no {what} within {timeout:.0f} s: {self.tail()}")
            time.sleep(0.2)


@dataclass(frozen=True)
class Credentials:
    address: str
    user: str
    password: str | None


class Trial:
    """The trial's parts under ``root``; ``start`` brings them all up, ``stop`` takes down whatever runs."""

    def __init__(self, root: Path = DEFAULT_ROOT, listen: str = DEFAULT_LISTEN, screens: Sequence[str] = SCREENS,
                 kiosk: bool = False, sessions_per_minute: float = 4.0, out: TextIO = sys.stdout) -> None:
        self.root = Path(root).resolve()
        self.listen = listen
        self.screen_ids = list(screens)
        self.kiosk = kiosk
        self.sessions_per_minute = sessions_per_minute
        self.out = out
        self.logs = self.root / "logs"
        self.keys = self.root / "keys"
        self.data_dir = self.root / "console"
        self.cluster = PrivateCluster(self.root / "postgres")
        self.db_url: str | None = None
        self.broker: Broker | None = None
        self.ingest: Child | None = None
        self.screens: list[Child] = []
        self.console: Child | None = None
        self._screens_started = datetime.now(timezone.utc)

    @property
    def address(self) -> str:
        return f"http://{self.listen}"

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    # -- the parts, in the order they start -----------------------------------------------------------

    def start_database(self) -> str:
        self.say(f"database: private PostgreSQL in {self.cluster.directory} …")
        self.db_url = self.cluster.start()
        self.say(f"database: ready at {self.db_url}")
        return self.db_url

    def start_broker(self) -> Broker:
        if not MOSQUITTO.exists():
            raise ApplianceError(f"{MOSQUITTO} is not installed: apt-get install mosquitto")
        self.say("broker: mosquitto with the shipped fleet configuration, a new test PKI …")
        pki = Pki(self.root / "pki")
        # mosquitto is started in the trial's process group: with SIGINT blocked (a mask it inherits), the
        # terminal's Ctrl+C does not take it down before the screens and ingest it serves are stopped.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.broker = Broker(self.root / "broker", pki, log_all=False).start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        self.say(f"broker: devices on {self.broker.address}, operators on {self.broker.operator_address}")
        return self.broker

    def start_ingest(self) -> Child:
        broker, url = self._need_broker(), self._need_db()
        identity = broker.pki.service(INGEST)
        self.ingest = Child("ingest", [sys.executable, "-m", "appliance.ops", "ingest",
                                       *broker.operator_options(identity), "--db", url, "--progress", "60"],
                            self.logs / "ingest.log").start()
        self.ingest.wait_for(lambda: "ingesting " in self.ingest.text(), "subscription")
        self.say(f"ingest: storing the fleet's events (log {self.ingest.log})")
        return self.ingest

    def signing_keys(self) -> tuple[Path, Path]:
        """The console's campaign key and the screens' trusted key: made on the first run, kept after."""
        private, public = self.keys / PRIVATE_KEY_FILE, self.keys / PUBLIC_KEY_FILE
        if not (private.is_file() and public.is_file()):
            private, public, key_id = write_keypair(self.keys)
            self.say(f"keys: new campaign signing key {key_id} in {private} (0600); screens trust {public}")
        return private, public

    def start_screens(self) -> list[Child]:
        broker = self._need_broker()
        _, public = self.signing_keys()
        self._screens_started = datetime.now(timezone.utc)
        for device in self.screen_ids:
            config = self._screen_config(device, public)
            child = Child(device, [sys.executable, "-m", "appliance.console.simscreen", "--config", str(config),
                                   "--sessions-per-minute", f"{self.sessions_per_minute:g}"],
                          self.logs / f"{device}.log").start()
            self.screens.append(child)
            self.say(f"screen: {device} (simulated: the device's fleet code, a scripted shopper)")
        if self.kiosk:
            config = self._screen_config(KIOSK, public, display={"fullscreen": False, "width": 640, "height": 360})
            self.screens.append(Child(KIOSK, [sys.executable, "-m", "appliance", "run", "--headless", "--config",
                                              str(config)], self.logs / f"{KIOSK}.log").start())
            self.say(f"screen: {KIOSK} (a real headless kiosk, demo source)")
        self.say(f"screens: connecting to {broker.address}")
        return self.screens

    def _screen_config(self, device: str, trusted: Path, **tables: dict[str, Any]) -> Path:
        broker = self._need_broker()
        identity = broker.pki.client(device)
        fleet = {"broker": broker.address, "ca_file": identity.ca, "cert_file": identity.cert,
                 "key_file": identity.key, **SCREEN_FLEET}
        directory = self.root / "screens" / device
        return write_config(directory / "appliance.toml", device, fleet, trusted, directory / "state", **tables)

    def start_console(self) -> Child:
        broker, url = self._need_broker(), self._need_db()
        private, _ = self.signing_keys()
        identity = broker.pki.service(OPERATOR)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.say(f"console: starting at {self.address} …")
        self.console = Child("console", [
            sys.executable, "-m", "appliance.console", "serve", "--db", url, "--listen", self.listen,
            "--data-dir", str(self.data_dir), "--public-url", self.address, "--broker", broker.operator_address,
            "--ca", str(identity.ca), "--cert", str(identity.cert), "--key-file", str(identity.key),
            "--signing-key", str(private)], self.logs / "console.log").start()
        self.console.wait_for(lambda: answers(f"{self.address}/login"), f"answer on {self.address}")
        return self.console

    def credentials(self) -> Credentials:
        """The first-run user and password, from the file ``serve`` writes (its user's name, then the password)."""
        try:
            lines = (self.data_dir / FIRST_RUN_FILE).read_text(encoding="utf-8").split()
        except OSError:
            lines = []
        user = lines[0] if len(lines) == 2 else "admin"
        return Credentials(self.address, user, lines[-1] if lines else None)

    # -- the whole -------------------------------------------------------------------------------------

    def start(self) -> Credentials:
        """Everything, in order; what started is stopped again when a part fails."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self.start_database()
            self.start_broker()
            self.start_ingest()
            self.start_screens()
            self.wait_registered()
            self.start_console()
        except BaseException:
            self.stop()
            raise
        return self.credentials()

    def wait_registered(self, timeout: float = 30.0) -> list[str]:
        """Until ingest has stored every screen's ``ready`` (or ``alert``) of this run in the device registry; the
        screens that are registered."""
        import psycopg

        wanted = {child.name for child in self.screens}
        since = self._screens_started
        deadline = time.monotonic() + timeout
        found: set[str] = set()
        while time.monotonic() < deadline and found != wanted:
            try:
                with psycopg.connect(self._need_db()) as conn:
                    found = {row[0] for row in conn.execute(
                        "SELECT device FROM devices WHERE device = ANY(%s) AND status->>'state' IN ('ready', 'alert') "
                        "AND status_at >= %s", (list(wanted), since))}
            except psycopg.Error:
                found = set()  # ingest makes the tables when it starts
            time.sleep(0.5)
        for device in sorted(found):
            self.say(f"screen: {device} registered")
        for device in sorted(wanted - found):
            self.say(f"screen: {device} not registered yet (its log: {self.logs / (device + '.log')})")
        return sorted(found)

    def supervise(self, poll_s: float = 0.5) -> None:
        """Until a child ends for good: a screen that asks for a restart is started again; ApplianceError else."""
        while True:
            for child in self.screens:
                if child.returncode == RESTART_STATUS:
                    self.say(f"screen: {child.name} restarts (simulated reboot or new configuration)")
                    child.start()
            for child in [self.console, self.ingest, *self.screens]:
                if child is not None and child.returncode is not None:
                    raise ApplianceError(f"{child.name} ended with status {child.returncode}: {child.tail()}")
            time.sleep(poll_s)

    def stop(self) -> None:
        """Stop whatever runs, in order: console, screens, ingest (the screens' last events stored), broker,
        database."""
        for child in [self.console, *self.screens, self.ingest]:
            if child is not None and child.running:
                self.say(f"stopping {child.name} …")
                child.stop()
        if self.broker is not None:
            self.say("stopping the broker …")
            self.broker.stop()
        if self.cluster.running:
            self.say("stopping the database …")
            self.cluster.stop()

    def _need_broker(self) -> Broker:
        if self.broker is None:
            raise ApplianceError("start the broker first (start_broker)")
        return self.broker

    def _need_db(self) -> str:
        if self.db_url is None:
            raise ApplianceError("start the database first (start_database)")
        return self.db_url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m appliance.console.trial", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The trial's options (also those of ``python -m appliance.console trial``)."""
    parser.add_argument("--dir", type=Path, default=DEFAULT_ROOT, metavar="DIR",
                        help=f"where everything is kept between runs (default {DEFAULT_ROOT})")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"the console's address (default {DEFAULT_LISTEN})")
    parser.add_argument("--screens", type=int, default=len(SCREENS), choices=range(0, len(SCREENS) + 1),
                        help=f"simulated screens (default {len(SCREENS)}: {', '.join(SCREENS)})")
    parser.add_argument("--kiosk", action="store_true", help=f"also a real headless kiosk ({KIOSK}, demo source; "
                        "needs `make models`, and keeps a core busy)")
    parser.add_argument("--sessions-per-minute", type=float, default=4.0, metavar="N",
                        help="shoppers per simulated screen and minute (default 4)")


def run(args: argparse.Namespace) -> int:
    """Start the trial, print the address and credentials last, supervise until Ctrl+C, stop it."""
    trial = Trial(args.dir, args.listen, SCREENS[:args.screens], args.kiosk, args.sessions_per_minute)
    stop_requested = False

    def interrupted(*_: object) -> None:
        nonlocal stop_requested
        if not stop_requested:
            stop_requested = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        credentials = trial.start()
        trial.say(f"logs: {trial.logs}; Ctrl+C stops everything (the data stays in {trial.root})")
        trial.say(f"open {credentials.address}")
        if credentials.password is not None:
            trial.say(f"log in as {credentials.user}, password {credentials.password} (first run: change it under "
                      "your account)")
        else:
            trial.say(f"log in as {credentials.user} with the password you gave it (the first-run password file "
                      f"{trial.data_dir / FIRST_RUN_FILE} is gone)")
        trial.supervise()
    except KeyboardInterrupt:
        trial.say("stopping …")
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        trial.stop()
        trial.say("stopped")
        return 0
    except ApplianceError as exc:
        trial.say(f"error: {one_line(exc)}")
        trial.stop()
        return 1
    return 0


@command_line
def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return run(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
