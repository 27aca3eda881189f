"""A private systemd-journald for tests, read back with ``journalctl -o json``.

``run_with_journald`` runs one command in a new mount and PID namespace
(``unshare``, root only) where ``/run`` is a fresh tmpfs: the namespace's own
``systemd-journald`` listens on ``/run/systemd/journal/socket`` there, which is
where libsystemd (and so systemd-python's ``JournalHandler``) sends, and it
writes a volatile journal into a directory of the test's.  Nothing of the
host's is touched: not its journal, not its ``/run``.  When the command ends,
journald is synced and stopped, the namespace dies with everything in it, and
the entries come back as parsed ``journalctl --directory DIR -o json`` lines.

A kernel or container that refuses the namespace skips the test with the
reason; a journald that does not come up fails it with journald's own stderr.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

JOURNALD = Path("/lib/systemd/systemd-journald")
#: A drop-in (it wins over /etc/systemd/journald.conf): keep to the journal file, read no kernel log.
CONFIG = """\
[Journal]
Storage=volatile
ReadKMsg=no
ForwardToSyslog=no
ForwardToKMsg=no
ForwardToConsole=no
ForwardToWall=no
RateLimitBurst=0
"""
#: Runs as PID 1 of the namespace: $1 is the test's directory, the rest the command.
SCRIPT = r"""
set -eu
dir=$1; shift
mount -t tmpfs -o mode=0755 oivis-test-run /run
mkdir -p /run/systemd/journald.conf.d /run/log
cp "$dir/journald.conf" /run/systemd/journald.conf.d/oivis-test.conf
mount --bind "$dir/log" /run/log
env -u NOTIFY_SOCKET -u WATCHDOG_USEC -u WATCHDOG_PID "$JOURNALD" 2>"$dir/journald.stderr" &
journald=$!
tries=0
until [ -S /run/systemd/journal/socket ]; do
    tries=$((tries + 1))
    if [ "$tries" -gt 200 ] || ! kill -0 "$journald" 2>/dev/null; then
        echo "systemd-journald did not come up" >&2; exit 97
    fi
    sleep 0.025
done
status=0
"$@" || status=$?
journalctl --sync
kill -TERM "$journald"
wait "$journald" || true
exit "$status"
"""


@dataclass
class JournalRun:
    """What the command did and what the private journal recorded."""

    returncode: int
    stdout: str
    stderr: str
    entries: list[dict[str, str]]

    def by(self, identifier: str) -> list[dict[str, str]]:
        """The entries of one ``SYSLOG_IDENTIFIER``, in the order they were written."""
        return [entry for entry in self.entries if entry.get("SYSLOG_IDENTIFIER") == identifier]


def require_namespaces() -> None:
    """Skip, with the reason, where the tools are missing or the kernel refuses a mount namespace."""
    for tool in ("unshare", "journalctl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install util-linux systemd)")
    if not JOURNALD.is_file():
        pytest.skip(f"{JOURNALD} is not installed (apt-get install systemd)")
    probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"the kernel refuses a private mount/PID namespace (unshare: {probe.stderr.strip()})")


def run_with_journald(workdir: Path, argv: Sequence[str], env: Mapping[str, str],
                      cwd: Path | None = None, timeout: float = 120) -> JournalRun:
    """Run ``argv`` beside a private journald; ``workdir`` (absent or empty) receives its journal."""
    require_namespaces()
    (workdir / "log").mkdir(parents=True)
    (workdir / "journald.conf").write_text(CONFIG)
    result = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private",
         "sh", "-c", SCRIPT, "journald-test", str(workdir), *argv],
        env={**env, "JOURNALD": str(JOURNALD)}, cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode == 97:
        journald_stderr = (workdir / "journald.stderr").read_text()
        raise AssertionError(f"the private systemd-journald did not start: {journald_stderr.strip()}")
    directories = sorted((workdir / "log" / "journal").glob("*/"))
    assert len(directories) == 1, f"expected one machine directory under {workdir / 'log/journal'}: {directories}"
    read = subprocess.run(["journalctl", "--directory", str(directories[0]), "-o", "json", "--no-pager"],
                          capture_output=True, text=True, timeout=60, check=True)
    entries = [json.loads(line) for line in read.stdout.splitlines() if line.strip()]
    return JournalRun(result.returncode, result.stdout, result.stderr, entries)
