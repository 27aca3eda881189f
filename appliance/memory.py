"""Handing memory the process no longer uses back to the system.

glibc keeps what a program frees in its heaps for reuse, and returns it to the system only from a heap's
top: a photo job's temporaries (print-size planes, a style network's activations, a model being loaded)
freed under anything still alive stay in the process's resident set, and the next job's pile up on them.
``hand_back`` asks glibc to return every whole free page of every heap (``malloc_trim(0)``).

A model file mapped into memory (LiteRT's) is read through once while its weights are packed, and after
that barely touched; its pages stay counted in the resident set (clean, so the kernel could reclaim them
under pressure, but it reclaims others first).  ``drop_file_pages`` unmaps a read-only file's pages from
the resident set (``madvise(MADV_DONTNEED)``): they stay in the page cache, and any page touched again is
read back from the file, unchanged.

Invariants: neither raises; both do nothing where the C library or /proc/self/maps is missing (musl,
macOS); a writable mapping is never advised (its pages may differ from the file); ``hand_back`` takes a
few milliseconds (call it when a job is done, off the render loop).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache
from pathlib import Path

MADV_DONTNEED = 4
MAPS = Path("/proc/self/maps")


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def hand_back() -> bool:
    """Return the freed heap pages to the system; True when the C library could (glibc)."""
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return False
    trim(0)
    return True


def drop_file_pages(path: Path, maps: Path = MAPS) -> int:
    """Drop the pages of ``path``'s read-only mappings from the resident set; the bytes of mapping advised."""
    madvise = getattr(_libc(), "madvise", None)
    try:
        lines = maps.read_text().splitlines()
    except OSError:
        return 0
    if madvise is None:
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    target, advised = os.path.realpath(path), 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or "w" in fields[1] or fields[5] != target:
            continue
        start, end = (int(bound, 16) for bound in fields[0].split("-"))
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            advised += end - start
    return advised
