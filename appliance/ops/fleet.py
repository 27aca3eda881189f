"""``fleet status``: every device as its ``status`` and ``state/reported`` describe it.

From the broker (``read_fleet``): both topics are retained, so a subscription window
reads the devices without asking them anything, but only those the broker sends
within the window (a large fleet does not fit in it).  From ingest's registry
(``appliance.ops.registry``): every device ingest ever heard of, with when it was
last seen and whether it went silent.  A device that stopped cleanly says
``offline``, one that vanished says ``lost`` (its will), once the broker has given
up on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appliance.fleet.topics import DEFAULT_PREFIX, Topics, device_of
from appliance.identity import check_device_id
from appliance.ops.push import OperatorClient

COLUMNS = ("DEVICE", "STATE", "SESSION", "APP", "CAMPAIGN", "APPLIED", "PENDING", "PHASE", "ERRORS")
#: Added when the views come from the registry.
REGISTRY_COLUMNS = ("LAST_SEEN", "SILENT")


def device_topics(device: str, prefix: str = DEFAULT_PREFIX) -> Topics:
    """The topics of the device an operator named, once the name is checked to be a device id."""
    return Topics.for_device(check_device_id(device, "--device"), prefix)


@dataclass
class DeviceView:
    device: str
    status: dict[str, Any] | None = None
    reported: dict[str, Any] | None = None
    last_seen: datetime | None = None
    silent: str | None = None  # why the device counts as silent, from the registry
    health: dict[str, Any] | None = None
    registered: bool = False  # read from the registry (last_seen, silent and health are meaningful)

    @property
    def state(self) -> str:
        return str((self.status or {}).get("state", "unknown"))

    def row(self) -> tuple[str, ...]:
        status, reported = self.status or {}, self.reported or {}
        errors = reported.get("errors") or []
        cells = (self.device, self.state, _cell(status.get("session")),
                 _cell(status.get("app")), _cell(status.get("campaign_version")),
                 _cell(reported.get("applied_version")), _cell(reported.get("pending_version")),
                 _cell(reported.get("phase")), "; ".join(map(str, errors)) or "-")
        if not self.registered:
            return cells
        seen = "-" if self.last_seen is None else self.last_seen.strftime("%Y-%m-%dT%H:%M:%SZ")
        return (*cells[:-1], seen, self.silent or "-", cells[-1])

    def document(self) -> dict[str, Any]:
        document = {"device": self.device, "status": self.status, "reported": self.reported}
        if self.registered:
            document.update(last_seen=None if self.last_seen is None else self.last_seen.isoformat(),
                            silent=self.silent, health=self.health)
        return document


def read_fleet(client: OperatorClient, window_s: float, prefix: str = DEFAULT_PREFIX) -> list[DeviceView]:
    """The devices with a retained status or report, by id."""
    everyone = Topics.for_device("+", prefix)
    client.retained(everyone.status, 0)
    retained = client.retained(everyone.reported, window_s)
    views: dict[str, DeviceView] = {}
    for topic, payload in retained.items():
        device = device_of(topic, prefix)
        if not payload or device is None:
            continue
        try:
            document = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            document = {"unreadable": payload[:80].decode("utf-8", "replace")}
        view = views.setdefault(device, DeviceView(device))
        topics = Topics.for_device(device, prefix)
        if topic == topics.status:
            view.status = document
        elif topic == topics.reported:
            view.reported = document
    return [views[device] for device in sorted(views)]


def table(views: list[DeviceView]) -> str:
    """The views as aligned columns; from the registry, LAST_SEEN and SILENT come before ERRORS (free text)."""
    header = (*COLUMNS[:-1], *REGISTRY_COLUMNS, COLUMNS[-1]) if views and views[0].registered else COLUMNS
    rows = [header, *(view.row() for view in views)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)
