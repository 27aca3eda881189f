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

from appliance.errors import ApplianceError
from appliance.fleet.topics import Topics
from appliance.ops.push import STATUS_FILTER, OperatorClient

REPORTED_FILTER = "oivis/v1/+/state/reported"
COLUMNS = ("DEVICE", "STATE", "SESSION", "APP", "CAMPAIGN", "APPLIED", "PENDING", "PHASE", "ERRORS")


def device_topics(device: str) -> Topics:
    """The topics of the device an operator named, once the name is checked to be usable in a topic."""
    if not device or any(char in device for char in "/+#"):
        raise ApplianceError(f"not a device id (no /, + or # allowed): {device!r}")
    return Topics.for_device(device)


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


def read_fleet(client: OperatorClient, window_s: float) -> list[DeviceView]:
    """The devices with a retained status or report, by id."""
    client.retained(STATUS_FILTER, 0)
    retained = client.retained(REPORTED_FILTER, window_s)
    views: dict[str, DeviceView] = {}
    for topic, payload in retained.items():
        parts = topic.split("/")
        if not payload or len(parts) < 4:
            continue
        try:
            document = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            document = {"unreadable": payload[:80].decode("utf-8", "replace")}
        view = views.setdefault(parts[2], DeviceView(parts[2]))
        if parts[3:] == ["status"]:
            view.status = document
        elif parts[3:] == ["state", "reported"]:
            view.reported = document
    return [views[device] for device in sorted(views)]


def table(views: list[DeviceView]) -> str:
    rows = [COLUMNS, *(view.row() for view in views)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)
