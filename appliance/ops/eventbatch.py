"""A message on ``oivis/v1/<device>/events`` as the operator tools read it (the contract's payload).

The device id is taken from the topic, not the payload: the broker's ACL lets a
certificate publish only under its own id, so the topic is the part that cannot lie.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appliance.errors import ApplianceError
from appliance.fleet.topics import DEFAULT_PREFIX, Topics
from appliance.ops.fleet import device_topics


def events_filter(device: str | None, prefix: str = DEFAULT_PREFIX) -> str:
    """The subscription for one device's events, or everyone's."""
    return Topics.for_device("+", prefix).events if device is None else device_topics(device, prefix).events


@dataclass(frozen=True)
class EventBatch:
    device: str
    historical: bool
    events: list[dict[str, Any]]

    @classmethod
    def parse(cls, topic: str, payload: bytes) -> EventBatch:
        if not topic.endswith("/events"):
            raise ApplianceError(f"{topic} is not an events topic")
        try:
            document = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApplianceError(f"message on {topic} is not JSON: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("events"), list):
            raise ApplianceError(f"message on {topic} has no \"events\" list")
        device = document.get("device")
        if not isinstance(device, str) or device not in topic.split("/"):
            raise ApplianceError(f"message on {topic} names device {device!r}, not one in its topic")
        events = [event for event in document["events"] if isinstance(event, dict)]
        return cls(device, bool(document.get("historical", False)), events)


@dataclass(frozen=True)
class EventRow:
    """One event as stored: checked field by field, so every store accepts it."""

    id: str
    device: str
    seq: int
    ts: datetime
    ts_text: str
    type: str
    data: dict[str, Any]
    historical: bool

    @classmethod
    def of(cls, batch: EventBatch, event: dict[str, Any]) -> EventRow:
        try:
            event_id = str(uuid.UUID(str(event["id"])))
            seq, ts_text, kind, data = event["seq"], event["ts"], event["type"], event.get("data", {})
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError(f"seq {seq!r} is not a count")
            if not isinstance(kind, str) or not isinstance(data, dict) or not isinstance(ts_text, str):
                raise ValueError("type, ts or data has the wrong type")
            ts = datetime.fromisoformat(ts_text)
        except (KeyError, ValueError, TypeError) as exc:
            raise ApplianceError(f"event {event.get('id')!r} of {batch.device} is malformed: {exc}") from exc
        return cls(event_id, batch.device, seq, ts, ts_text, kind, data, batch.historical)
