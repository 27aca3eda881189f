"""The capture thread: reads a source as fast as it delivers, keeps only the newest frame, and takes the
photos other threads ask for (``still``) between two live frames, so only it ever touches the device.

With ``wanted`` (the perception thread's ``wanted``) and a source that grabs apart from converting
(``GrabbingSource``: a camera), each frame is grabbed as it comes, so the device's queue never ages,
and converted only when ``wanted(its capture time)`` says it will be used: with nobody in front, a
camera's frames between two presence runs are never decoded."""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from appliance.errors import ApplianceError
from appliance.slot import LatestSlot
from appliance.sources.base import Frame, FrameSource, GrabbingSource
from appliance.worker import Worker

log = logging.getLogger(__name__)


class CaptureThread(Worker):
    """Owns the source; a failure (camera unplugged, file gone) is retried with backoff, never fatal.

    ``problem`` holds the current failure for the screen and health reports, or
    None while frames flow.  A ``still`` asked for is answered before the next live frame is read; a
    source that fails it is recovered like a failed read, and the asker gets the error.
    """

    def __init__(self, source: FrameSource, slot: LatestSlot[Frame],
                 retry_initial: float = 0.5, retry_max: float = 5.0,
                 wanted: Callable[[float], bool] | None = None) -> None:
        super().__init__("capture")
        self.source = source
        self.slot = slot
        self._wanted = wanted if isinstance(source, GrabbingSource) else None
        #: Frames grabbed and left unconverted because nobody wanted them.
        self.skipped = 0
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._delay = retry_initial
        self._stills: queue.SimpleQueue[tuple[int, Future[list[Frame]]]] = queue.SimpleQueue()

    def still(self, count: int, timeout_s: float = 5.0) -> list[Frame]:
        """``count`` photos from the source (``FrameSource.still``), from any thread but the capture's own;
        ApplianceError when the source fails them or gives none within ``timeout_s``."""
        answer: Future[list[Frame]] = Future()
        self._stills.put((count, answer))
        try:
            return answer.result(timeout_s)
        except FutureTimeout:
            answer.cancel()
            raise ApplianceError(f"{self.source.description} gave no photo within {timeout_s:.0f} s") from None

    def stop(self) -> None:
        super().stop()
        if self._thread.is_alive():
            # Still inside a read (a hung camera): closing under it could crash the driver; the
            # process is ending anyway and the OS releases the device.
            log.warning("%s did not stop reading in time; leaving it open", self.source.description)
            return
        self.source.close()

    def step(self) -> None:
        try:
            self._answer_stills()
            frame = self._next()
            if frame is not None:
                self.slot.put(frame)
            if self.problem:
                log.warning("%s is back", self.source.description)
                self.problem = None
            self._delay = self._retry_initial
        except ApplianceError as exc:
            if self.problem != str(exc):
                log.error("%s; retrying every %.1f-%.0f s", exc, self._retry_initial, self._retry_max)
            self.problem = str(exc)
            self._recover(self._delay)
            self._delay = min(self._delay * 2, self._retry_max)

    def _next(self) -> Frame | None:
        """The next frame; None when it was grabbed and nobody wants it (left unconverted)."""
        if self._wanted is None:
            return self.source.read()
        captured_at = self.source.grab()
        if self._wanted(captured_at):
            return self.source.retrieve()
        self.skipped += 1
        return None

    def _answer_stills(self) -> None:
        while True:
            try:
                count, answer = self._stills.get_nowait()
            except queue.Empty:
                return
            if not answer.set_running_or_notify_cancel():
                continue
            try:
                answer.set_result(self.source.still(count))
            except ApplianceError as exc:
                answer.set_exception(exc)
                raise

    def _recover(self, delay: float) -> None:
        if self.pause(delay):
            return
        try:
            self.source.reopen()
        except ApplianceError as exc:
            self.problem = str(exc)
