"""Handing memory the process no longer uses back to the system.

glibc keeps what a program frees in its heaps for reuse, and returns it to the system only from a heap's
top: a photo job's temporaries (print-size planes, a style network's activations, a model being loaded)
freed under anything still alive stay in the process's resident set, and the next job's pile up on them.
``hand_back`` asks glibc to return every whole free page of every heap (``malloc_trim(0)``).

Invariants: it never raises, and does nothing where the C library has no ``malloc_trim`` (musl, macOS);
it takes a few milliseconds (call it when a job is done, off the render loop).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


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
