"""Readings of the machine for the health report (and the doctor): each is None where it cannot be read.

Boards differ in what they expose (an x86 VM has no thermal zones, only
Rockchip kernels with debugfs mounted have the NPU load), so every reading is
optional and a missing file is normal, never an error.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

THERMAL = Path("/sys/class/thermal")
NPU_LOAD = Path("/sys/kernel/debug/rknpu/load")
MEMINFO = Path("/proc/meminfo")
STATM = Path("/proc/self/statm")
UPTIME = Path("/proc/uptime")
STATUS = Path("/proc/self/status")

#: Rockchip's format: "NPU load:  Core0: 12%, Core1:  0%, Core2:  0%,"
NPU_CORE = re.compile(r"Core(\d+):\s*(\d+)%")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def temperatures_c(root: Path = THERMAL) -> dict[str, float] | None:
    """Each thermal zone's temperature by its type (``cpu-thermal``, ``soc-thermal``, …)."""
    readings: dict[str, float] = {}
    for zone in sorted(root.glob("thermal_zone*")):
        millidegrees = _read(zone / "temp")
        if millidegrees is None or not millidegrees.strip().lstrip("-").isdigit():
            continue
        name = (_read(zone / "type") or zone.name).strip()
        if name in readings:
            name = f"{name}-{zone.name}"
        readings[name] = round(int(millidegrees) / 1000, 1)
    return readings or None


def npu_load(path: Path = NPU_LOAD) -> dict[str, int] | None:
    """Percent busy per NPU core, e.g. ``{"core0": 12}``."""
    text = _read(path)
    if text is None:
        return None
    cores = {f"core{core}": int(percent) for core, percent in NPU_CORE.findall(text)}
    return cores or None


def process_rss_mb(statm: Path = STATM) -> float | None:
    fields = (_read(statm) or "").split()
    if len(fields) < 2:
        return None
    return round(int(fields[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def process_peak_rss_mb(status: Path = STATUS) -> float | None:
    """The most memory this process has held at once (its peak resident set, VmHWM: the high-water mark of
    what ``process_rss_mb`` reads), MB: what a board's RAM must fit."""
    for line in (_read(status) or "").splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def available_memory_mb(meminfo: Path = MEMINFO) -> float | None:
    for line in (_read(meminfo) or "").splitlines():
        if line.startswith("MemAvailable:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def disk_free_mb(path: Path) -> float | None:
    """Free space where ``path`` (or its nearest existing parent) lives."""
    for candidate in (path, *path.parents):
        try:
            return round(shutil.disk_usage(candidate).free / 2**20, 1)
        except OSError:
            continue
    return None


def system_uptime_s(uptime: Path = UPTIME) -> float | None:
    fields = (_read(uptime) or "").split()
    return float(fields[0]) if fields else None
