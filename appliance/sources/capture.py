"""The capture thread: reads a source as fast as it delivers, keeps only the newest frame."""

from __future__ import annotations

import logging
import threading

from appliance.errors import ApplianceError
from appliance.slot import LatestSlot
from appliance.sources.base import Frame, FrameSource

log = logging.getLogger(__name__)


class CaptureThread:
    """Owns the source; a failure (camera unplugged, file gone) is retried with backoff, never fatal.

    ``problem`` holds the current failure for the screen and health reports, or
    None while frames flow.
    """

    def __init__(self, source: FrameSource, slot: LatestSlot[Frame],
                 retry_initial: float = 0.5, retry_max: float = 5.0) -> None:
        self.source = source
        self.slot = slot
        self.problem: str | None = None
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.source.close()

    def _run(self) -> None:
        delay = self._retry_initial
        while not self._stop.is_set():
            try:
                self.slot.put(self.source.read())
                if self.problem:
                    log.warning("%s is back", self.source.description)
                    self.problem = None
                delay = self._retry_initial
            except ApplianceError as exc:
                if self.problem != str(exc):
                    log.error("%s; retrying every %.1f-%.0f s", exc, self._retry_initial, self._retry_max)
                self.problem = str(exc)
                self._recover(delay)
                delay = min(delay * 2, self._retry_max)

    def _recover(self, delay: float) -> None:
        if self._stop.wait(delay):
            return
        try:
            self.source.reopen()
        except ApplianceError as exc:
            self.problem = str(exc)
