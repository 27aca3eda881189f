"""The device's fleet side as one unit: link, campaigns, events, health, commands — started and stopped in order.

Order matters: the campaign manager and the link come up before the kiosk (the
kiosk shows the bundle the campaign schedule picks); every handler of the
link is registered before it connects, because the broker hands over what it
kept for the device right after the CONNACK (commands are held, not run, until
the kiosk is attached, and the fleet's confirmations on ``{p}/events/stored``
wait in a latest-value slot until the shipper takes them); the shipper and the health reporter feed on the running
kiosk, so they are attached to it; on the way out the shipper flushes first and
the link says ``offline`` last.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from appliance.alerts import Alerts
from appliance.campaigns.manager import CampaignManager
from appliance.config import Config
from appliance.fleet.commands import CommandHandler
from appliance.fleet.device_commands import Runner, device_commands, run_checked
from appliance.fleet.health import HealthReporter
from appliance.fleet.link import Link
from appliance.fleet.screen import Screen
from appliance.fleet.shipper import Confirmations, EventShipper
from appliance.service.status import RESTART_STATUS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CampaignBundles:
    """The kiosk's bundle source: the schedule's pick, what the screen shows, and the fall-back when a
    campaign's bundle cannot be shown (the manager goes back to the last good campaign, with an alert)."""

    campaigns: CampaignManager

    def pick(self) -> Path:
        return self.campaigns.scheduler.pick()

    def shown(self, bundle: Path) -> None:
        self.campaigns.scheduler.shown(bundle)

    def failed(self, bundle: Path, reason: str) -> None:
        self.campaigns.report_failed(bundle, reason)


class FleetRuntime:
    def __init__(self, config: Config, config_path: Path, alerts: Alerts | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.state_dir = config.paths.state_dir
        self.alerts = alerts if alerts is not None else Alerts()
        self.link = Link(config.device_id, config.fleet, self.state_dir,
                         campaign_version=lambda: self.campaigns.applied_version, alerts=self.alerts)
        self.campaigns = CampaignManager.from_config(config, report=self._report, alerts=self.alerts)
        self.shipper: EventShipper | None = None
        self.confirmations = Confirmations()
        self.health: HealthReporter | None = None
        self.commands = CommandHandler(self.link, self.state_dir)
        self._announced_version: int | None = None

    def _report(self, payload: dict) -> None:
        """Campaign progress goes to ``state/reported``; a newly applied version is re-announced in ``status``."""
        self.link.publish(self.link.topics.reported, payload, qos=1, retain=True)
        applied = payload.get("applied_version")
        if payload.get("phase") == "applied" and applied != self._announced_version:
            self._announced_version = applied
            self.link.announce("ready")

    def start(self) -> FleetRuntime:
        self.link.subscribe(self.link.topics.desired, self.campaigns.on_desired)
        self.link.subscribe(self.link.topics.events_stored, self.confirmations.on_message)
        self.commands.start()
        self.campaigns.start()
        self.link.start()
        return self

    @property
    def schedule(self) -> CampaignBundles:
        """What the screen should show (the bundled default when no campaign applies), for the kiosk."""
        return CampaignBundles(self.campaigns)

    def attach(self, screen: Screen, run: Runner = run_checked) -> None:
        """Serve ``screen`` (the kiosk, through the narrow protocol of fleet.screen): ship its events,
        report its health, and run the fleet's commands on it (system commands such as the reboot through
        ``run``; a simulated screen passes its own)."""
        fleet = self.config.fleet
        self.shipper = EventShipper(screen.events, self.link, fleet, self.state_dir,
                                    confirmations=self.confirmations).start()
        self.health = HealthReporter(self.link, screen.stats, lambda: screen.shown.rate, screen.backend,
                                     lambda: self.campaigns.applied_version, self.state_dir,
                                     fleet.health_period_s,
                                     extras={"spool": self.shipper.status, "alerts": self.alerts.wire}).start()
        commands = device_commands(screen=screen.grab_screen, reload=screen.request_reload,
                                   restart=lambda: screen.stop(RESTART_STATUS), config_path=self.config_path,
                                   rollback=self.campaigns.rollback, run=run)
        self.commands.serve(commands)

    def stop(self) -> None:
        for worker in (self.commands, self.shipper, self.health):
            if worker is not None:
                worker.stop()
        self.campaigns.stop()
        self.link.stop()
