"""Two network namespaces joined by a veth pair, and the ways a mall network degrades between them.

``Link`` here is the wire, not the fleet link: the broker's namespace holds ``BROKER_ADDRESS`` on one
end of a veth pair, the device's namespace ``DEVICE_ADDRESS`` on the other, in a /30 that exists only
inside the two namespaces.  The kernel has no netem, so the degradations are the ones it has: ``thin``
(a ``tbf`` qdisc on both ends), ``cut``/``mend`` (the device's end down and up) and ``lose`` (iptables'
``statistic`` match dropping incoming packets at random on both ends); latency, jitter and stalls come
from the user-space proxy in ``netproxy``.

Invariants: every command is bounded in time and a failure names the command and its output;
``close`` (the context manager's exit) removes the iptables rules it added and deletes both namespaces
(the veth, its qdiscs and the namespaces' rules go with them) even when a step in between failed; the
names carry the process id, so two runs never share a namespace.

``inside(namespace, fn)`` runs ``fn`` on a fresh thread that has joined the namespace (setns): the
sockets it opens, the threads and the processes it starts stay there, so a broker, an ingest and a
device of the test process each live on their own side of the wire.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import Any, TypeVar

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
BROKER_ADDRESS = "10.213.0.1"
DEVICE_ADDRESS = "10.213.0.2"
COMMAND_TIMEOUT_S = 10.0
IPTABLES = ("iptables", "iptables-legacy", "iptables-nft")

T = TypeVar("T")


class NetnsError(RuntimeError):
    """A namespace command failed (its command line and output are in the message)."""


def run(*command: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
    """``command``'s standard output; NetnsError naming it and its output if it fails or overruns."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(command)} exited {done.returncode}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def refusal() -> str | None:
    """Why namespaces cannot be made here (not root, no ``ip``, the kernel refuses), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = f"oivis-probe-{os.getpid()}"
    try:
        run("ip", "netns", "add", probe)
    except NetnsError as exc:
        return f"the kernel refuses network namespaces: {exc}"
    run("ip", "netns", "del", probe)
    return None


def inside(namespace: str, fn: Callable[[], T], timeout: float = 30.0) -> T:
    """``fn()`` run on a thread that joined ``namespace`` first; its result, or its exception re-raised."""
    outcome: dict[str, Any] = {}

    def enter_and_run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            descriptor = os.open(f"{NETNS_DIR}/{namespace}", os.O_RDONLY)
            try:
                if libc.setns(descriptor, CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"setns into {namespace}: {os.strerror(error)}")
            finally:
                os.close(descriptor)
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=enter_and_run, name=f"in-{namespace}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise NetnsError(f"a step inside {namespace} took longer than {timeout:.0f} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def remove_leftovers() -> None:
    """Namespaces a killed test run left behind (``oivis-b<pid>``/``oivis-d<pid>`` of a process that is gone)."""
    names = os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else []
    for name in names:
        match = re.fullmatch(r"oivis-[bd](\d+)", name)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            run("ip", "netns", "del", name)


class Wire:
    """The two namespaces and the veth between them; degradations on, then off again."""

    def __init__(self, iptables: str = "iptables") -> None:
        remove_leftovers()
        tag = f"{os.getpid()}"
        self.broker_ns, self.device_ns = f"oivis-b{tag}", f"oivis-d{tag}"
        self.broker_if, self.device_if = f"ovb{tag}", f"ovd{tag}"
        self.iptables = iptables
        self._rules: list[tuple[str, tuple[str, ...]]] = []
        self._thin = False
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        run("ip", "netns", "add", self.broker_ns)
        run("ip", "netns", "add", self.device_ns)
        run("ip", "link", "add", self.broker_if, "type", "veth", "peer", "name", self.device_if)
        for namespace, interface, address in ((self.broker_ns, self.broker_if, BROKER_ADDRESS),
                                              (self.device_ns, self.device_if, DEVICE_ADDRESS)):
            run("ip", "link", "set", interface, "netns", namespace)
            run("ip", "-n", namespace, "addr", "add", f"{address}/30", "dev", interface)
            run("ip", "-n", namespace, "link", "set", interface, "up")
            run("ip", "-n", namespace, "link", "set", "lo", "up")

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ends(self) -> tuple[tuple[str, str], tuple[str, str]]:
        return (self.broker_ns, self.broker_if), (self.device_ns, self.device_if)

    def thin(self, rate: str = "64kbit", burst: str = "4kb", latency: str = "400ms") -> None:
        """A thin link: both ends shaped by ``tbf`` to ``rate`` (packets queue up to ``latency``, then drop)."""
        for namespace, interface in self._ends():
            run("tc", "-n", namespace, "qdisc", "replace", "dev", interface, "root", "tbf", "rate", rate,
                "burst", burst, "latency", latency)
        self._thin = True

    def widen(self) -> None:
        """The ``tbf`` shaping removed from both ends."""
        if self._thin:
            for namespace, interface in self._ends():
                run("tc", "-n", namespace, "qdisc", "del", "dev", interface, "root")
            self._thin = False

    def cut(self) -> None:
        """The cable pulled: the device's end down (the broker's end loses its carrier)."""
        run("ip", "-n", self.device_ns, "link", "set", self.device_if, "down")

    def mend(self) -> None:
        run("ip", "-n", self.device_ns, "link", "set", self.device_if, "up")

    def lose(self, probability: float) -> None:
        """Each packet arriving at either end dropped with ``probability`` (iptables ``statistic``)."""
        for namespace, _ in self._ends():
            rule = ("INPUT", "-m", "statistic", "--mode", "random", "--probability", f"{probability}", "-j", "DROP")
            run("ip", "netns", "exec", namespace, self.iptables, "-A", *rule)
            self._rules.append((namespace, rule))

    def stop_losing(self) -> None:
        """Every rule ``lose`` added, deleted again."""
        while self._rules:
            namespace, rule = self._rules.pop()
            run("ip", "netns", "exec", namespace, self.iptables, "-D", *rule)

    def rules(self, namespace: str) -> str:
        """The namespace's filter rules as ``iptables -S`` lists them."""
        return run("ip", "netns", "exec", namespace, self.iptables, "-S")

    def close(self) -> None:
        """Rules removed, namespaces deleted; every step tried even when one before it failed."""
        problems = []
        for step in (self.stop_losing, self.widen):
            try:
                step()
            except NetnsError as exc:
                problems.append(str(exc))
        self._rules.clear()
        for namespace in (self.device_ns, self.broker_ns):
            if os.path.exists(f"{NETNS_DIR}/{namespace}"):
                try:
                    run("ip", "netns", "del", namespace)
                except NetnsError as exc:
                    problems.append(str(exc))
        if problems:
            raise NetnsError("; ".join(problems))
