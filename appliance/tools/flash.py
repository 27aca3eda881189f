"""`make flash`: write a vendor OS image (raw or .img.xz) to an SD card / eMMC and verify it by reading back.

Refuses anything that is not a whole block device, that is mounted (itself or
any of its partitions, directly or under a device-mapper / RAID holder), that
is in use as swap, or that holds the running system's root.  The check reads
/proc/mounts, /proc/swaps and sysfs, so a test can hand it fixtures.  The
readback compares the sha256 of exactly the bytes written with what the
device holds after the write was flushed and its cache dropped.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import lzma
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from appliance.errors import ApplianceError, command_line

BLOCK = 4 << 20
#: ioctl(BLKFLSBUF): drop the block device's buffer cache, so the readback reads the medium.
BLKFLSBUF = 0x1261
SYS_BLOCK = Path("/sys/dev/block")


@dataclass(frozen=True)
class System:
    """Where the refusal checks look; the real machine by default, fixtures in tests."""

    mounts: str
    swaps: str
    sys_dev_block: Path = SYS_BLOCK
    root_device: int | None = None

    @classmethod
    def current(cls) -> System:
        root = os.stat("/").st_dev
        return cls(Path("/proc/mounts").read_text(), Path("/proc/swaps").read_text(),
                   root_device=root if os.major(root) else None)


def _unescape(field: str) -> str:
    """/proc/mounts writes spaces and tabs in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _disk_of(number: int, sys_dev_block: Path) -> set[str]:
    """The whole disk(s) under block device ``major:minor``: a partition's parent, a holder's slaves."""
    node = sys_dev_block / f"{os.major(number)}:{os.minor(number)}"
    if not node.exists():
        return set()
    real = node.resolve()
    if (real / "partition").exists():
        return {real.parent.name}
    slaves = sorted((real / "slaves").iterdir()) if (real / "slaves").is_dir() else []
    if slaves:
        disks: set[str] = set()
        for slave in slaves:
            disks |= _disk_of(os.makedev(*map(int, (slave / "dev").read_text().split(":"))), sys_dev_block)
        return disks
    return {real.name}


def _rdev(path: str) -> int | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_rdev if stat.S_ISBLK(info.st_mode) else None


def refusal(device: Path, system: System) -> str | None:
    """Why ``device`` must not be written, or None when it may be."""
    number = _rdev(str(device))
    if number is None:
        return f"{device} is not a block device"
    disks = _disk_of(number, system.sys_dev_block)
    if not disks:
        return f"{device} is not known to sysfs"
    real = (system.sys_dev_block / f"{os.major(number)}:{os.minor(number)}").resolve()
    if (real / "partition").exists():
        return f"{device} is a partition: give the whole disk ({real.parent.name})"
    if system.root_device is not None and disks & _disk_of(system.root_device, system.sys_dev_block):
        return f"{device} holds the running system's root filesystem"
    for line in system.mounts.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].startswith("/"):
            mounted = _rdev(_unescape(fields[0]))
            if mounted is not None and disks & _disk_of(mounted, system.sys_dev_block):
                return f"{device} is mounted ({_unescape(fields[0])} on {_unescape(fields[1])}): unmount it first"
    for line in system.swaps.splitlines()[1:]:
        fields = line.split()
        swapped = _rdev(fields[0]) if fields else None
        if swapped is not None and disks & _disk_of(swapped, system.sys_dev_block):
            return f"{device} is in use as swap ({fields[0]})"
    return None


def image_chunks(image: Path) -> Iterator[tuple[bytes, float]]:
    """The image's bytes (decompressed for .xz) with the fraction of the file consumed so far."""
    total = max(image.stat().st_size, 1)
    with image.open("rb") as raw:
        if image.suffix == ".xz":
            with lzma.open(raw) as stream:
                while chunk := stream.read(BLOCK):
                    yield chunk, raw.tell() / total
        else:
            while chunk := raw.read(BLOCK):
                yield chunk, raw.tell() / total


def device_size(device: BinaryIO) -> int:
    size = device.seek(0, os.SEEK_END)
    device.seek(0)
    return size


def flash(image: Path, device: Path, system: System | None = None,
          say: Callable[[str], None] = lambda text: print(text, end="", file=sys.stderr, flush=True)) -> str:
    """Write ``image`` to ``device``, verify it, and return the sha256 of the written bytes."""
    if not image.is_file():
        raise ApplianceError(f"IMAGE {image} does not exist")
    why = refusal(device, system or System.current())
    if why:
        raise ApplianceError(f"refusing to flash: {why}")
    digest = hashlib.sha256()
    written = 0
    started = time.monotonic()
    shown = 0.0
    with device.open("r+b", buffering=0) as target:
        capacity = device_size(target)
        if image.suffix != ".xz" and image.stat().st_size > capacity:
            raise ApplianceError(f"{image} ({image.stat().st_size} bytes) does not fit on {device} ({capacity})")
        for chunk, fraction in image_chunks(image):
            if written + len(chunk) > capacity:
                raise ApplianceError(f"{image} does not fit on {device} ({capacity} bytes)")
            target.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            now = time.monotonic()
            if now - shown >= 0.5:
                shown = now
                rate = written / max(now - started, 1e-6) / (1 << 20)
                say(f"\r  {written / (1 << 20):9.1f} MiB written  {fraction:4.0%}  {rate:6.1f} MiB/s")
        os.fsync(target.fileno())
        _drop_cache(target)
    say(f"\r  {written / (1 << 20):9.1f} MiB written  100%  — verifying\n")
    if _readback(device, written) != digest.hexdigest():
        raise ApplianceError(f"verification failed: {device} does not hold what was written (a bad card?)")
    say(f"  verified: sha256 {digest.hexdigest()} over {written} bytes\n")
    return digest.hexdigest()


def _drop_cache(target: BinaryIO) -> None:
    try:
        fcntl.ioctl(target.fileno(), BLKFLSBUF)
    except OSError:
        os.posix_fadvise(target.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _readback(device: Path, length: int) -> str:
    digest = hashlib.sha256()
    with device.open("rb", buffering=0) as source:
        remaining = length
        while remaining:
            chunk = source.read(min(BLOCK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


@command_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.tools.flash", description=__doc__.split("\n")[0])
    parser.add_argument("image", type=Path, help="the vendor OS image (.img or .img.xz)")
    parser.add_argument("device", type=Path, help="the whole SD card / eMMC device, e.g. /dev/sdX")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    why = refusal(args.device, System.current())
    if why:
        raise ApplianceError(f"refusing to flash: {why}")
    if not args.yes:
        answer = input(f"Everything on {args.device} will be erased. Type its name ({args.device.name}) to go on: ")
        if answer.strip() != args.device.name:
            raise ApplianceError("not confirmed; nothing written")
    flash(args.image, args.device)


if __name__ == "__main__":
    sys.exit(main())
