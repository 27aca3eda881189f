"""The health report: every ``health_period_s`` a snapshot of the screen and the machine on ``{p}/health``.

QoS 0 with a Message Expiry Interval of twice the period: a report is only worth
its moment, so a broker never hands a reconnecting operator a stale one and a
lost one is simply replaced by the next.  Nothing is sent while the link is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from appliance.fleet import sysinfo
from appliance.fleet.link import Link
from appliance.stats import StageStats
from appliance.worker import Worker

log = logging.getLogger(__name__)


class HealthReporter(Worker):
    """``extras`` adds named sections computed at each report (e.g. ``{"spool": shipper.status}``)."""

    def __init__(self, link: Link, stats: StageStats, fps: Callable[[], float], backend: str,
                 campaign_version: Callable[[], int | None], state_dir: Path, period_s: float,
                 extras: Mapping[str, Callable[[], Any]] | None = None) -> None:
        super().__init__("fleet-health")
        self.link = link
        self.stats = stats
        self.fps = fps
        self.backend = backend
        self.campaign_version = campaign_version
        self.state_dir = state_dir
        self.period_s = period_s
        self.extras = dict(extras or {})
        self._started = time.monotonic()

    def step(self) -> None:
        if self.link.connected:
            try:
                self.link.publish(self.link.topics.health, self.report(), qos=0, expiry_s=2 * self.period_s)
                self.problem = None
            except Exception as exc:  # noqa: BLE001 - a broken reading must cost one report, not the reporter
                if self.problem != str(exc):
                    log.exception("health report failed")
                self.problem = str(exc)
        self.pause(self.period_s)

    def report(self) -> dict[str, Any]:
        return {
            "ts": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fps": round(self.fps(), 2),
            "stages": self.stats.summary(),
            "backend": self.backend,
            "temperature_c": sysinfo.temperatures_c(),
            "npu_load": sysinfo.npu_load(),
            "memory_mb": {"rss": sysinfo.process_rss_mb(), "peak_rss": sysinfo.process_peak_rss_mb(),
                          "available": sysinfo.available_memory_mb()},
            "disk_free_mb": sysinfo.disk_free_mb(self.state_dir),
            "uptime_s": round(time.monotonic() - self._started, 1),
            "system_uptime_s": sysinfo.system_uptime_s(),
            "campaign_version": self.campaign_version(),
            **{name: extra() for name, extra in self.extras.items()},
        }
