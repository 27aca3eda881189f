"""Whether the system clock can be trusted for scheduling.

A board without a battery-backed clock boots in 1970 (or wherever its last
shutdown left it) until NTP answers; scheduling on that time would show the wrong
campaign, or none. This answers what ``timedatectl show -p NTPSynchronized`` does,
without a subprocess or D-Bus call on the render loop: systemd-timesyncd's flag
file, else the kernel's clock status from adjtimex (TIME_ERROR = unsynchronised).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from pathlib import Path

TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
TIME_ERROR = 5
#: Larger than ``struct timex`` on every Linux ABI; adjtimex with modes = 0 only reads it.
TIMEX_BYTES = 512


@functools.cache
def _adjtimex() -> Callable[[ctypes.Array], int] | None:
    library = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(library, use_errno=True).adjtimex if library else None
    except (OSError, AttributeError):
        return None


def _kernel_clock_synced() -> bool:
    adjtimex = _adjtimex()
    return adjtimex is not None and adjtimex(ctypes.create_string_buffer(TIMEX_BYTES)) not in (-1, TIME_ERROR)


def system_clock_synced() -> bool:
    return TIMESYNCD_FLAG.exists() or _kernel_clock_synced()
