"""``ops fleet load``: a bounded fleet on this machine — broker, ingest workers, database, screens — and its figures.

What runs, all on 127.0.0.1 and in one temporary directory that is removed at the end:

- mosquitto from the shipped ``provisioning/mosquitto/fleet.conf`` (``appliance.ops.testbroker``:
  generated fleet and operators' CAs, free ports, the shipped log types);
- ``workers`` ingest processes (``python -m appliance.ops ingest``) on the shared subscription
  ``$share/ingest/oivis/v1/+/events``, each with its own certificate ``ingest-1``.. (the shipped
  operators.acl has stanzas for ingest-1..4), into PostgreSQL in a schema of their own that is
  dropped afterwards, or into SQLite in the directory;
- ``devices`` simulated screens, each with its own certificate (CN ``load-01-screen-0001``..), its own
  spool, and the device's own code: ``Link`` and ``EventShipper`` with the ``{p}/events/stored``
  subscription made before the link connects, as ``FleetRuntime`` wires them.  Each screen publishes a
  batch of 1–20 events every 2–6 s.  They run in a few processes (``device_processes``), a paho thread
  and a shipper thread per screen.

Bounds: the screens send for ``seconds``, then wait at most ``grace`` seconds for every spool to be
confirmed (empty); every process is stopped (SIGINT, then SIGKILL) and the schema dropped whatever
happens.  ``kill_after``/``kill_for`` SIGKILL ingest-1 in the middle and start it again.

Figures: sent (events the screens made), acknowledged by the broker (distinct events with a PUBACK),
stored (distinct (device, seq) in the database), lost (sent, not stored), stored twice (rows beyond
one per (device, seq)), ingest lag (received_at - ts of the newest event, and the largest over the
last 5 s of sending), CPU seconds of the broker, the ingest workers and the screens, and events/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError
from appliance.ops.testbroker import MOSQUITTO, Broker, Identity, Pki

POSTGRES = "postgresql://postgres@127.0.0.1/test"
SHARED_FILTER = "$share/ingest/oivis/v1/+/events"
#: The type of the screens' events: only these are counted (boot and shutdown events are the spool's own).
LOAD_TYPE = "load"
#: The operators.acl shipped has a stanza for ingest-1..4.
MAX_WORKERS = 4
#: Screens per device process by default.  paho's loop uses select(), which takes no descriptor above 1023,
#: and a screen holds about six (its socket, paho's wake-up pair, the spool's database, WAL and index):
#: a process stops connecting screens at about 170 (measured), so the ceiling is MAX_SCREENS_PER_PROCESS.
SCREENS_PER_PROCESS = 125
MAX_SCREENS_PER_PROCESS = 150
#: Events a screen makes per second on average: 1-20 (10.5) every 2-6 (4) seconds.
SCHEDULED_PER_S = 10.5 / 4.0
#: Seconds at the end of sending over which the largest lag is reported.
LAG_WINDOW_S = 5.0
STOP_TIMEOUT_S = 15.0
#: How long a screen process waits for its screens to connect before it starts the clock.
CONNECT_S = 30.0
#: How much longer than planned the screen processes may take (starting screens on a busy machine) before
#: the run is abandoned.
OVERRUN_S = 180.0
#: The screens' spools go to tmpfs by default: a real screen fsyncs its own disk, a thousand simulated
#: ones on this host's one disk would measure that disk instead of the fleet.
SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else None

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadSettings:
    devices: int = 200
    seconds: float = 60.0
    workers: int = 2
    db: str = POSTGRES  # or "sqlite"
    device_processes: int = 0  # 0: one per SCREENS_PER_PROCESS
    grace: float = 60.0
    confirm_timeout: float = 15.0
    kill_after: float | None = None
    kill_for: float = 0.0
    keep: bool = False  # leave the directory (logs, spools, broker state) for a look
    spool_dir: Path | None = SHM  # where the screens' state directories go (None: with the rest)

    def check(self) -> LoadSettings:
        if not 1 <= self.devices <= 10_000:
            raise ApplianceError(f"--devices {self.devices}: 1 to 10000")
        if not 1 <= self.seconds <= 600:
            raise ApplianceError(f"--seconds {self.seconds:g}: 1 to 600")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ApplianceError(f"--workers {self.workers}: 1 to {MAX_WORKERS} (operators.acl has ingest-1..4)")
        if not 0 <= self.grace <= 600:
            raise ApplianceError(f"--grace {self.grace:g}: 0 to 600")
        if self.kill_after is not None and (self.kill_after < 0 or not 0 < self.kill_for <= 600):
            raise ApplianceError(f"--kill-ingest-after {self.kill_after:g} --for {self.kill_for:g}: both >= 0, "
                                 "--for 1 to 600")
        if math.ceil(self.devices / self.processes) > MAX_SCREENS_PER_PROCESS:
            raise ApplianceError(f"--device-processes {self.device_processes}: at most {MAX_SCREENS_PER_PROCESS} "
                                 "screens per process (paho's select() takes no descriptor above 1023)")
        if not self.db.startswith(("postgresql://", "postgres://")) and self.db != "sqlite":
            raise ApplianceError(f"--db {self.db!r}: postgresql://... or sqlite")
        return self

    @property
    def processes(self) -> int:
        wanted = self.device_processes or math.ceil(self.devices / SCREENS_PER_PROCESS)
        return max(1, min(wanted, self.devices))


def device_id(index: int) -> str:
    return f"load-01-screen-{index:04d}"


# -- the screens (one device process) -----------------------------------------------------------


class Screen:
    """One simulated screen: the device's Link and EventShipper on its own spool, fed by its own bus."""

    def __init__(self, name: str, broker: str, identity: Identity, state_dir: Path, confirm_timeout: float) -> None:
        from appliance.config import FleetConfig
        from appliance.events import EventBus
        from appliance.fleet.shipper import Confirmations

        self.fleet = FleetConfig(broker=broker, ca_file=identity.ca, cert_file=identity.cert,
                                 key_file=identity.key, keepalive_s=30, reconnect_min_s=0.5, reconnect_max_s=5.0,
                                 confirm_timeout_s=confirm_timeout)
        self.state_dir = state_dir
        self.bus = EventBus(capacity=100_000)
        self.link = _counting_link(name, self.fleet, state_dir)
        self.confirmations = Confirmations()
        self.link.subscribe(self.link.topics.events_stored, self.confirmations.on_message)
        self.shipper: Any = None
        self.sent = 0

    def start(self) -> None:
        from appliance.fleet.shipper import EventShipper

        self.link.start()
        self.shipper = EventShipper(self.bus, self.link, self.fleet, self.state_dir,
                                    confirmations=self.confirmations).start()

    def emit(self, count: int) -> None:
        for _ in range(count):
            self.bus.publish(LOAD_TYPE, {"n": self.sent})
            self.sent += 1

    @property
    def pending(self) -> int:
        """Events not yet confirmed: in the bus or in the spool."""
        waiting = self.shipper.status().get("pending") if self.shipper else None
        return len(self.bus) + (self.sent + 1 if waiting is None else waiting)

    def stop(self) -> None:
        if self.shipper is not None:
            self.shipper.stop(flush_timeout=0.0)
        self.link.stop(timeout=2.0)


def _counting_link(name: str, fleet: Any, state_dir: Path) -> Any:
    """The device's Link, counting the distinct load events the broker acknowledged (PUBACK)."""
    from appliance.fleet.link import Link

    class CountingLink(Link):
        def __init__(self) -> None:
            super().__init__(name, fleet, state_dir)
            self.acknowledged: set[int] = set()

        def publish(self, topic: str, payload: dict[str, Any], qos: int = 1, retain: bool = False,
                    expiry_s: float | None = None) -> Any:
            delivery = super().publish(topic, payload, qos, retain, expiry_s)
            if topic == self.topics.events:
                seqs = [event["seq"] for event in payload["events"] if event["type"] == LOAD_TYPE]
                delivery.on_done(lambda done: done.ok and self.acknowledged.update(seqs))
            return delivery

    return CountingLink()


def run_screens(spec: dict[str, Any], result_file: Path) -> dict[str, Any]:
    """One device process: start its screens, send for ``seconds``, wait ``grace`` for confirmations, write the
    figures to ``result_file``, stop the screens."""
    rng = random.Random(spec["seed"])
    screens = [Screen(item["id"], spec["broker"], Identity(Path(item["ca"]), Path(item["cert"]), Path(item["key"])),
                      Path(item["state"]), spec["confirm_timeout"]) for item in spec["screens"]]
    for screen in screens:
        screen.start()
        time.sleep(0.005)  # no connect storm: about 200 TLS handshakes a second per process
    deadline = time.monotonic() + CONNECT_S
    while time.monotonic() < deadline and not all(screen.link.connected for screen in screens):
        time.sleep(0.1)
    connected = sum(screen.link.connected for screen in screens)
    problems = Counter(f"{screen.link.state}: {screen.link.problem}" for screen in screens if not screen.link.connected)
    start = time.monotonic()
    due = [start + rng.uniform(0.0, 6.0) for _ in screens]
    while (now := time.monotonic()) < start + spec["seconds"]:
        for index, screen in enumerate(screens):
            if due[index] <= now:
                screen.emit(rng.randint(1, 20))
                due[index] = now + rng.uniform(2.0, 6.0)
        time.sleep(max(0.0, min(min(due), start + spec["seconds"]) - time.monotonic()))
    sending = time.monotonic() - start
    deadline = time.monotonic() + spec["grace"]
    while time.monotonic() < deadline and any(screen.pending for screen in screens):
        time.sleep(0.2)
    result = {"screens": len(screens), "connected": connected, "sending_s": sending,
              "settled_s": time.monotonic() - start - sending,
              "sent": sum(screen.sent for screen in screens),
              "acknowledged": sum(len(screen.link.acknowledged) for screen in screens),
              "unconfirmed": sum(screen.pending for screen in screens), "problems": dict(problems)}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    partial = result_file.with_suffix(".partial")
    partial.write_text(json.dumps(result))
    partial.replace(result_file)  # before the stop (an overloaded process takes long to stop), whole or not at all
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(Screen.stop, screens))
    return result


# -- the database --------------------------------------------------------------------------------


class Database:
    """The run's own database: a fresh PostgreSQL schema (dropped by ``close``) or a SQLite file."""

    def __init__(self, setting: str, directory: Path) -> None:
        self.kind = "sqlite" if setting == "sqlite" else "postgresql"
        self._admin: Any = None
        if self.kind == "sqlite":
            self.url = f"sqlite:///{directory / 'events.db'}"
            self._path = directory / "events.db"
            return
        import psycopg

        self.schema = f"load_{uuid.uuid4().hex[:12]}"
        try:
            self._admin = psycopg.connect(setting, autocommit=True)
            self._admin.execute(f"CREATE SCHEMA {self.schema}")
        except psycopg.Error as exc:
            raise ApplianceError(f"cannot create a schema in {setting}: {exc}") from exc
        separator = "&" if "?" in setting else "?"
        self.url = f"{setting}{separator}options=-csearch_path%3D{self.schema}"

    def query(self, sql: str, *params: Any) -> tuple[Any, ...]:
        if self.kind == "sqlite":
            import sqlite3

            with sqlite3.connect(self._path, timeout=30) as db:
                return db.execute(sql.replace("%s", "?"), params).fetchone()
        self._admin.execute(f"SET search_path TO {self.schema}")
        return self._admin.execute(sql, params).fetchone()

    def counts(self) -> tuple[int, int]:
        """(rows, distinct (device, seq)) of the screens' events."""
        try:
            rows, distinct = self.query("SELECT count(*), count(DISTINCT device || ':' || seq) FROM events "
                                        "WHERE type = %s", LOAD_TYPE)
        except Exception:  # noqa: BLE001 - the table appears with the first write
            return 0, 0
        return rows or 0, distinct or 0

    def lags(self, since_epoch: float) -> tuple[float | None, float | None]:
        """The newest event's age when stored, and the largest age of the events made after ``since_epoch``."""
        if self.kind == "sqlite":
            age = "(julianday(received_at) - julianday(ts)) * 86400.0"
            since = "julianday(ts) >= julianday(%s, 'unixepoch')"
            newest = self.query(f"SELECT {age} FROM events WHERE type = %s ORDER BY ts DESC LIMIT 1", LOAD_TYPE)
            worst = self.query(f"SELECT max({age}) FROM events WHERE type = %s AND {since}", LOAD_TYPE, since_epoch)
        else:
            age = "extract(epoch FROM received_at - ts)"
            newest = self.query(f"SELECT {age} FROM events WHERE type = %s ORDER BY ts DESC LIMIT 1", LOAD_TYPE)
            worst = self.query(f"SELECT max({age}) FROM events WHERE type = %s AND ts >= to_timestamp(%s)",
                               LOAD_TYPE, since_epoch)
        return (float(newest[0]) if newest and newest[0] is not None else None,
                float(worst[0]) if worst and worst[0] is not None else None)

    def close(self) -> None:
        if self._admin is not None:
            self._admin.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
            self._admin.close()
            self._admin = None


# -- processes and their CPU ---------------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a running process (None once it is gone)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class IngestWorker:
    """One ``ops ingest`` process with its own certificate; its CPU is summed over its restarts."""

    def __init__(self, number: int, broker: Broker, db_url: str, directory: Path) -> None:
        self.name = f"ingest-{number}"
        identity = broker.pki.service(self.name)
        self.command = [sys.executable, "-m", "appliance.ops", "ingest", *broker.operator_options(identity),
                        "--filter", SHARED_FILTER, "--db", db_url, "--progress", "5"]
        self.log = directory / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.cpu_done = 0.0
        self._cpu_now = 0.0

    def start(self) -> IngestWorker:
        self.starts += 1
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=_env())
        return self

    def wait_listening(self, timeout: float = 30.0) -> None:
        """Until the worker says it is ingesting (connected and subscribed), so no event finds no subscriber."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.log.read_text(errors="replace").count("ingesting ") < self.starts:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ApplianceError(f"{self.name} did not start: {self.tail()}")
            time.sleep(0.1)

    def sample(self) -> None:
        value = cpu_seconds(self.process.pid if self.process else None)
        if value is not None:
            self._cpu_now = value

    @property
    def cpu(self) -> float:
        return self.cpu_done + self._cpu_now

    def kill(self) -> None:
        self.sample()
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.cpu_done, self._cpu_now = self.cpu_done + self._cpu_now, 0.0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.sample()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return " | ".join(text.strip().splitlines()[-3:])


def _env() -> dict[str, str]:
    """This interpreter's environment with the package importable from any working directory."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(part for part in (root, env.get("PYTHONPATH")) if part)
    return env


# -- the run -------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    devices: int
    seconds: float
    workers: int
    database: str
    connected: int
    sent: int
    acknowledged: int
    stored: int
    lost: int
    duplicates: int
    unconfirmed: int
    settled_s: float
    lag_newest_s: float | None
    lag_end_max_s: float | None
    cpu_broker_s: float
    cpu_ingest_s: float
    cpu_devices_s: float
    stored_per_s: float
    per_worker_per_s: float
    per_ingest_core_per_s: float
    killed: str
    problems: dict[str, int]

    @property
    def scheduled(self) -> int:
        """What the screens would send if their processes kept the schedule."""
        return round(self.devices * self.seconds * SCHEDULED_PER_S)

    def table(self) -> str:
        def lag(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f} s"

        rows = [
            ("screens (connected)", f"{self.devices} ({self.connected}"
                                    + (f"; not: {self.problems})" if self.problems else ")")),
            ("sending", f"{self.seconds:g} s, then {self.settled_s:.1f} s until confirmed"),
            ("ingest workers", f"{self.workers} into {self.database}{self.killed}"),
            ("sent", f"{self.sent} (the schedule: about {self.scheduled}; fewer: the screens' processes "
                     "could not keep up)" if self.sent < 0.9 * self.scheduled else f"{self.sent}"),
            ("acknowledged by the broker", f"{self.acknowledged}"),
            ("stored", f"{self.stored}"),
            ("lost", f"{self.lost}"),
            ("stored twice", f"{self.duplicates}"),
            ("unconfirmed at the end", f"{self.unconfirmed}"),
            ("ingest lag: newest event", lag(self.lag_newest_s)),
            (f"ingest lag: worst of the last {LAG_WINDOW_S:g} s", lag(self.lag_end_max_s)),
            ("CPU s: broker", f"{self.cpu_broker_s:.1f}"),
            ("CPU s: ingest workers", f"{self.cpu_ingest_s:.1f}"),
            ("CPU s: screens", f"{self.cpu_devices_s:.1f}"),
            ("stored events/s", f"{self.stored_per_s:.0f}"),
            ("events/s per ingest worker", f"{self.per_worker_per_s:.0f}"),
            ("events/s per ingest core (CPU s)", f"{self.per_ingest_core_per_s:.0f}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def run_load(settings: LoadSettings, out: Any = sys.stderr) -> LoadReport:
    """One bounded run; everything it started is stopped and its directory and schema removed, even on failure."""
    settings.check()
    if not MOSQUITTO.exists():
        raise ApplianceError(f"{MOSQUITTO} is not installed (apt-get install mosquitto)")
    directory = Path(tempfile.mkdtemp(prefix="oivis-load-"))
    spools = Path(tempfile.mkdtemp(prefix="oivis-load-spools-", dir=settings.spool_dir)) if settings.spool_dir \
        else directory / "screens"
    broker: Broker | None = None
    database: Database | None = None
    workers: list[IngestWorker] = []
    groups: list[subprocess.Popen[bytes]] = []
    try:
        print(f"load: {settings.devices} screens for {settings.seconds:g} s, {settings.workers} ingest workers, "
              f"{settings.processes} screen processes, in {directory}", file=out)
        pki = Pki(directory / "pki")
        broker = Broker(directory / "broker", pki, log_all=False).start()
        database = Database(settings.db, directory)
        workers = [IngestWorker(number, broker, database.url, directory) for number in range(1, settings.workers + 1)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_listening()
        specs = _screen_specs(settings, broker, pki, spools)
        began = time.time()
        for index, spec in enumerate(specs):
            spec_file, result_file = directory / f"screens-{index}.json", directory / f"screens-{index}.result.json"
            spec_file.write_text(json.dumps(spec))
            with (directory / f"screens-{index}.log").open("ab") as log_file:
                groups.append(subprocess.Popen([sys.executable, "-m", "appliance.ops.load", str(spec_file),
                                                str(result_file)], stdout=log_file, stderr=subprocess.STDOUT,
                                               env=_env()))
        result_files = [directory / f"screens-{index}.result.json" for index in range(len(groups))]
        killed = _supervise(settings, workers, groups, result_files, out)
        results = []
        for index, (group, result_file) in enumerate(zip(groups, result_files, strict=True)):
            if not result_file.exists():
                raise ApplianceError(f"screen process {index} failed (status {group.returncode}): "
                                     f"{_tail(directory / f'screens-{index}.log')}")
            results.append(json.loads(result_file.read_text()))
        stored_rows, stored = _settle(database)
        sending = max(result["sending_s"] for result in results)
        lag_newest, lag_end = database.lags(began + sending - LAG_WINDOW_S)
        for worker in workers:
            worker.sample()
        cpu_broker = cpu_seconds(broker.pid) or 0.0
        cpu_ingest = sum(worker.cpu for worker in workers)
        sent = sum(result["sent"] for result in results)
        span = sending + max(result["settled_s"] for result in results)
        return LoadReport(
            devices=settings.devices, seconds=settings.seconds, workers=settings.workers, database=database.kind,
            connected=sum(result["connected"] for result in results), sent=sent,
            acknowledged=sum(result["acknowledged"] for result in results), stored=stored,
            lost=sent - stored, duplicates=stored_rows - stored,
            unconfirmed=sum(result["unconfirmed"] for result in results),
            settled_s=max(result["settled_s"] for result in results), lag_newest_s=lag_newest, lag_end_max_s=lag_end,
            cpu_broker_s=cpu_broker, cpu_ingest_s=cpu_ingest,
            cpu_devices_s=sum(result["cpu_s"] for result in results),
            stored_per_s=stored / span, per_worker_per_s=stored / span / settings.workers,
            per_ingest_core_per_s=stored / cpu_ingest if cpu_ingest else 0.0, killed=killed,
            problems=dict(sum((Counter(result["problems"]) for result in results), Counter())))
    finally:
        for group in groups:
            _end(group)
        for worker in workers:
            worker.stop()
        if broker is not None:
            broker.stop()
        if database is not None:
            database.close()
        if settings.keep:
            print(f"load: the run's files stay in {directory} and {spools}", file=out)
        else:
            shutil.rmtree(spools, ignore_errors=True)
            shutil.rmtree(directory, ignore_errors=True)


def _screen_specs(settings: LoadSettings, broker: Broker, pki: Pki, spools: Path) -> list[dict[str, Any]]:
    """Each device process's screens (a certificate and a state directory under ``spools`` each) and timings."""
    specs = [{"broker": broker.address, "seconds": settings.seconds, "grace": settings.grace,
              "confirm_timeout": settings.confirm_timeout, "seed": index, "screens": []}
             for index in range(settings.processes)]
    for index in range(settings.devices):
        name = device_id(index + 1)
        identity = pki.client(name)
        state = spools / name
        state.mkdir(parents=True)
        specs[index % len(specs)]["screens"].append(
            {"id": name, "ca": str(identity.ca), "cert": str(identity.cert), "key": str(identity.key),
             "state": str(state)})
    return specs


def _supervise(settings: LoadSettings, workers: list[IngestWorker], groups: list[subprocess.Popen[bytes]],
               results: list[Path], out: Any) -> str:
    """Wait for the screen processes' figures (bounded), sampling CPU, killing and restarting ingest-1 when asked."""
    started = time.monotonic()
    deadline = started + CONNECT_S + settings.seconds + settings.grace + OVERRUN_S
    kill_at = None if settings.kill_after is None else started + settings.kill_after
    restart_at: float | None = None
    killed = ""
    while any(group.poll() is None and not result.exists() for group, result in zip(groups, results, strict=True)):
        now = time.monotonic()
        if now > deadline:
            raise ApplianceError(f"the screens did not finish within {deadline - started:.0f} s")
        for worker in workers:
            worker.sample()
        if kill_at is not None and now >= kill_at:
            workers[0].kill()
            print(f"load: {workers[0].name} killed with SIGKILL at {now - started:.0f} s for "
                  f"{settings.kill_for:g} s", file=out)
            kill_at, restart_at = None, now + settings.kill_for
            killed = f"; {workers[0].name} killed -9 for {settings.kill_for:g} s"
        if restart_at is not None and now >= restart_at:
            workers[0].start()
            workers[0].wait_listening()
            print(f"load: {workers[0].name} started again at {time.monotonic() - started:.0f} s", file=out)
            restart_at = None
        time.sleep(0.2)
    if restart_at is not None:
        workers[0].start()
    return killed


def _settle(database: Database, quiet_s: float = 2.0, timeout: float = 20.0) -> tuple[int, int]:
    """The stored counts once they have not moved for ``quiet_s`` (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    counts, since = database.counts(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = database.counts()
        if now != counts:
            counts, since = now, time.monotonic()
    return counts


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return " | ".join(text.strip().splitlines()[-3:])


# -- the command line ----------------------------------------------------------------------------


def add_load_command(actions: argparse._SubParsersAction) -> None:
    """``fleet load``, under the ``fleet`` command's actions."""
    load = actions.add_parser("load", help="a bounded load run on 127.0.0.1: broker, ingest workers, database, "
                              "simulated screens; prints what was sent, stored, lost", description=__doc__.split(
                                  "\n\n")[0])
    load.add_argument("--devices", type=int, default=200, metavar="N", help="simulated screens (default 200)")
    load.add_argument("--seconds", type=float, default=60.0, metavar="S", help="how long they send (default 60)")
    load.add_argument("--workers", type=int, default=2, metavar="N", help="ingest workers, 1 to 4 (default 2)")
    load.add_argument("--db", default=POSTGRES, metavar="URL",
                      help=f"a PostgreSQL server (a schema of the run's own, dropped after; default {POSTGRES}), "
                      "or 'sqlite'")
    load.add_argument("--device-processes", type=int, default=0, metavar="N",
                      help=f"processes the screens run in (default one per {SCREENS_PER_PROCESS})")
    load.add_argument("--grace", type=float, default=60.0, metavar="S",
                      help="after sending, wait at most this long for every screen's events to be confirmed")
    load.add_argument("--confirm-timeout", type=float, default=15.0, metavar="S",
                      help="the screens' [fleet] confirm_timeout_s (default 15)")
    load.add_argument("--kill-ingest-after", type=float, metavar="A",
                      help="SIGKILL ingest-1 A seconds after the screens start (with --for)")
    load.add_argument("--for", dest="kill_for", type=float, default=30.0, metavar="S",
                      help="and start it again S seconds later (default 30)")
    load.add_argument("--spool-dir", type=Path, default=SHM, metavar="DIR",
                      help=f"where the screens' spools go (default {SHM}: tmpfs, so that a thousand spools' "
                      "fsyncs do not measure this host's disk)")
    load.add_argument("--keep", action="store_true", help="leave the run's directory (logs, spools) in place")
    load.add_argument("--json", action="store_true", help="the figures as JSON instead of the table")
    load.set_defaults(handler=_load)


def _load(args: argparse.Namespace) -> int:
    settings = LoadSettings(args.devices, args.seconds, args.workers, args.db, args.device_processes, args.grace,
                            args.confirm_timeout, args.kill_ingest_after, args.kill_for, args.keep, args.spool_dir)
    report = run_load(settings)
    print(json.dumps(asdict(report)) if args.json else report.table())
    return 0


def main(argv: list[str]) -> int:
    """A device process: ``python -m appliance.ops.load SPEC.json RESULT.json``."""
    spec_file, result_file = Path(argv[0]), Path(argv[1])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    run_screens(json.loads(spec_file.read_text()), result_file)
    return 0


if __name__ == "__main__":
    threading.stack_size(512 * 1024)
    sys.exit(main(sys.argv[1:]))
