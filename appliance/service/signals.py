"""SIGTERM (systemctl stop) and SIGINT (Ctrl+C) → the loop's ``stop()``, so shutdown is ordered.

The loop finishes its frame, the caller stops the workers and flushes the event
spool, then the process exits.  Only the first signal is caught: the previous
handlers come back at once, so a second Ctrl+C (or systemd's SIGKILL after
TimeoutStopSec) still ends a shutdown that hangs.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: Callable[[], None],
                    signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, the first of ``signals`` calls ``stop`` (from the main thread, between bytecodes)."""
    previous = {number: signal.getsignal(number) for number in signals}

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    def handle(number: int, _frame: FrameType | None) -> None:
        log.info("%s received: stopping", signal.Signals(number).name)
        restore()
        stop()

    for number in signals:
        signal.signal(number, handle)
    try:
        yield
    finally:
        restore()
