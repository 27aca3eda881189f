"""``fleet status``: every device as its retained ``status`` and ``state/reported`` describe it.

Both topics are retained, so a short subscription window reads the whole fleet
without the devices being asked anything; a device that stopped cleanly says
``offline``, one that vanished says ``lost`` (its will), once the broker has
given up on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from appliance.fleet.topics import DEFAULT_PREFIX, Topics, device_of
from appliance.identity import check_device_id
from appliance.ops.push import OperatorClient

COLUMNS = ("DEVICE", "STATE", "SESSION", "APP", "CAMPAIGN", "APPLIED", "PENDING", "PHASE", "ERRORS")


def device_topics(device: str, prefix: str = DEFAULT_PREFIX) -> Topics:
    """The topics of the device an operator named, once the name is checked to be a device id."""
    return Topics.for_device(check_device_id(device, "--device"), prefix)


@dataclass
class DeviceView:
    device: str
    status: dict[str, Any] | None = None
    reported: dict[str, Any] | None = None

    def row(self) -> tuple[str, ...]:
        status, reported = self.status or {}, self.reported or {}
        errors = reported.get("errors") or []
        return (self.device, str(status.get("state", "unknown")), _cell(status.get("session")),
                _cell(status.get("app")), _cell(status.get("campaign_version")),
                _cell(reported.get("applied_version")), _cell(reported.get("pending_version")),
                _cell(reported.get("phase")), "; ".join(map(str, errors)) or "-")

    def document(self) -> dict[str, Any]:
        return {"device": self.device, "status": self.status, "reported": self.reported}


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
    rows = [COLUMNS, *(view.row() for view in views)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)
