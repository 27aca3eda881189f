"""Bounded memory about the public routes' clients: token buckets per address, and when a key was first seen.

Invariants:

- Each structure holds at most ``max_keys`` keys; beyond that the least recently used one is forgotten, so a
  flood of addresses (or of made-up photo ids) costs bounded memory.  Forgetting is only ever lenient: a
  forgotten bucket comes back full, a forgotten key comes back as first seen now.
- A bucket holds ``burst`` tokens and gains ``rate_per_s`` a second up to that; each request takes one, and a
  request finding less than one is refused with the seconds until one is there (what ``Retry-After`` says).
- Thread-safe (route handlers run in a thread pool); times are the caller's ``time.monotonic()`` seconds.
- A client is its address; an IPv6 client is its /64 (one phone or household gets a whole /64, so addresses
  inside it are not separate clients).
"""

from __future__ import annotations

import ipaddress
import threading
from collections import OrderedDict
from collections.abc import Hashable

MAX_KEYS = 10_000


def client_key(host: str | None) -> str:
    """The limit's key for a client's address (``request.client.host``; None or unparsable: one shared key)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class TokenBuckets:
    def __init__(self, rate_per_s: float, burst: int, max_keys: int = MAX_KEYS) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()   # key → (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: Hashable, now: float) -> float:
        """One token of ``key``'s bucket: 0.0 when taken, else the seconds until there is one."""
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate_per_s)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate_per_s
            self._buckets[key] = (tokens - 1.0 if wait == 0.0 else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait

    def __len__(self) -> int:
        return len(self._buckets)


class FirstSeen:
    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._first: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def since(self, key: Hashable, now: float) -> float:
        """Seconds since ``key`` was first given (0.0 the first time, or after it was forgotten)."""
        with self._lock:
            first = self._first.pop(key, now)
            self._first[key] = first
            while len(self._first) > self.max_keys:
                self._first.popitem(last=False)
            return max(0.0, now - first)

    def __len__(self) -> int:
        return len(self._first)
