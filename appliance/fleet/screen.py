"""What the fleet side uses of the screen it serves: the narrow protocol ``FleetRuntime.attach`` takes.

Invariant: appliance.fleet never imports appliance.kiosk; the kiosk (kiosk.app.Kiosk)
provides these members and the composition root (appliance.compose) hands it over.
Everything listed is safe to call from a fleet thread: the kiosk queues what must
happen on its render loop (a reload, a stop, a screen grab) and answers from there.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from appliance.events import EventBus
from appliance.stats import RateMeter, StageStats


class Screen(Protocol):
    @property
    def events(self) -> EventBus:
        """The bus the screen's events go out on (the shipper spools them for the fleet)."""

    @property
    def stats(self) -> StageStats:
        """Per-stage timings (the health report carries their summary)."""

    @property
    def shown(self) -> RateMeter:
        """Frames reaching the display: its ``rate`` is the health report's fps."""

    @property
    def backend(self) -> str:
        """The inference backend in use, as the health report names it."""

    def grab_screen(self, timeout: float = 2.0) -> np.ndarray:
        """A copy of what the display shows (BGR uint8), taken on the render loop within ``timeout``
        (ApplianceError past it); the screenshot command."""

    def request_reload(self) -> None:
        """Load the campaign's bundle again from disk at the next frame between sessions; the reload command."""

    def stop(self, exit_status: int = 0) -> None:
        """End the loop after this frame with ``exit_status`` (service.status.RESTART_STATUS: start me again)."""
