"""The device registry: each device's latest ``status``, ``state/reported`` and ``health``, as ingest stores them.

Invariants:

- A message becomes a ``DeviceReport`` only when it is storable: a JSON object of bounded
  size and depth with no NUL characters or lone surrogates, a ``status`` with a known
  ``state`` and a count ``session``, a ``health`` with a zoned ISO-8601 ``ts``.  Anything
  else raises ``BadReport`` and is quarantined like a bad events message.  An empty
  payload (a retained message being cleared) is no report and is skipped.
- The device is the topic's (the broker's ACL binds it to the certificate), never the payload's.
- "Older never overwrites newer", per kind (``eventstore`` applies it in SQL, so several
  ingest workers writing the same device converge to the same row):
  ``status`` is ordered by (session, final) where final is 1 for ``offline``/``lost`` (the
  last word of a session: the will is armed with the session it covers) and 0 for
  ``ready``/``alert``; a lower key never replaces a higher one, an equal key does (an
  alert raised or cleared within a session).  ``health`` is ordered by the device's ``ts``;
  the time it was last received (``health_at``) always moves forward, so a device whose
  clock went back is never taken for silent.  ``state/reported`` carries no order of its
  own: the last received wins (the broker keeps one publisher's order on a topic, and the
  retained copy sent at subscription is the broker's newest).
- ``last_seen`` is the latest time ingest received anything on these topics from the device.  A
  retained copy that the broker sends at subscription is the broker's memory, not the device
  speaking: it registers a device not known yet (seen when ingest first read it) and its
  payload counts (ordered as above), but it never moves ``last_seen``.
- The health period comes from the expiry as the broker forwards it: a report that waited in
  ingest's session arrives with less left, so until the next live one the device may be
  called silent sooner, never later.
- A device is silent when its status is ``offline`` or ``lost``, or when no health has been
  received for more than ``SILENT_PERIODS`` health periods (the period is half the health
  message's expiry, which the device sets to twice it; ``DEFAULT_HEALTH_PERIOD_S`` when unknown).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from appliance import boundedjson
from appliance.errors import ApplianceError
from appliance.fleet.topics import DEFAULT_PREFIX, Topics, device_of
from appliance.identity import device_id_problem, in_site
from appliance.ops.eventbatch import json_problem, parse_time
from appliance.ops.fleet import DeviceView
from appliance.ops.push import delivered_filter

#: The topics the registry keeps, by kind (the ``Topics`` property of each).
KINDS = ("status", "reported", "health")
#: Retained kinds: subscribed without ``$share`` (MQTT 5 sends no retained message to a shared subscription).
RETAINED = ("status", "reported")
STATES = ("ready", "alert", "offline", "lost")
FINAL_STATES = ("offline", "lost")
MAX_REPORT_BYTES = 256 * 1024
DEFAULT_HEALTH_PERIOD_S = 30.0
SILENT_PERIODS = 3


class BadReport(ApplianceError):
    """A status, report or health message that cannot be stored."""


@dataclass(frozen=True)
class DeviceReport:
    """One storable message for the registry."""

    device: str
    kind: str  # one of KINDS
    document_json: str  # compact JSON text of the payload object
    received_at: datetime  # UTC
    session: int | None = None  # status: its session
    final: int | None = None  # status: 1 for offline/lost, 0 otherwise
    ts: datetime | None = None  # health: the device's time, UTC
    period_s: float | None = None  # health: half the message expiry, when it had one
    retained: bool = False  # a retained copy sent at subscription (does not move last_seen)

    @classmethod
    def parse(cls, topic: str, payload: bytes, received_at: datetime, prefix: str = DEFAULT_PREFIX,
              expiry_s: float | None = None, retained: bool = False) -> DeviceReport | None:
        """The report ``payload`` on ``topic`` holds; None for an empty payload; BadReport when it is refused."""
        device = device_of(topic, prefix)
        kind = kind_of(topic, device, prefix)
        if kind is None or device is None:
            raise BadReport(f"{topic} is not a device's status, state/reported or health topic under {prefix}")
        problem = device_id_problem(device)
        if problem is not None:
            raise BadReport(f"{topic}: the device in the topic is refused: {problem}")
        if not payload:
            return None
        try:
            document = boundedjson.loads_object(payload, f"message on {topic}", MAX_REPORT_BYTES)
        except ApplianceError as exc:
            raise BadReport(str(exc)) from exc
        problem = json_problem(document)
        if problem is not None:
            raise BadReport(f"message on {topic} {problem}")
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        if kind == "status":
            state, session = document.get("state"), document.get("session")
            if state not in STATES:
                raise BadReport(f"message on {topic}: state {state!r} is not one of {', '.join(STATES)}")
            if not isinstance(session, int) or isinstance(session, bool) or not 0 <= session < 2**63:
                raise BadReport(f"message on {topic}: session {session!r} is not a whole number in 0..2**63-1")
            return cls(device, kind, text, received_at, session=session, final=int(state in FINAL_STATES),
                       retained=retained)
        if kind == "health":
            ts = parse_time(document.get("ts"), f"message on {topic}").astimezone(timezone.utc)
            period = expiry_s / 2 if expiry_s else None
            return cls(device, kind, text, received_at, ts=ts, period_s=period, retained=retained)
        return cls(device, kind, text, received_at, retained=retained)


def health_sample(report: DeviceReport) -> dict[str, Any] | None:
    """A health report's charted figures (frame rate, hottest zone °C, free disk MB, process memory MB), or None
    for another kind; a figure that is no finite number is None (a device's report is only checked for shape)."""
    if report.kind != "health" or report.ts is None:
        return None
    document = json.loads(report.document_json)
    temperatures = document.get("temperature_c")
    hottest = max((value for value in temperatures.values() if _number(value) is not None), default=None) \
        if isinstance(temperatures, dict) else None
    memory = document.get("memory_mb")
    return {"device": report.device, "ts": report.ts, "fps": _number(document.get("fps")),
            "temperature_c": _number(hottest), "disk_free_mb": _number(document.get("disk_free_mb")),
            "rss_mb": _number(memory.get("rss")) if isinstance(memory, dict) else None}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def kind_of(topic: str, device: str | None, prefix: str = DEFAULT_PREFIX) -> str | None:
    """Which registry kind ``topic`` is (``status``, ``reported``, ``health``), or None."""
    if device is None:
        return None
    topics = Topics.for_device(device, prefix)
    return next((kind for kind in KINDS if getattr(topics, kind) == topic), None)


def registry_filters(events_filter: str, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The subscriptions that fill the registry, next to ``events_filter``: health in the same shared group
    when that one is ``$share/GROUP/…``; status and state/reported always plain, because MQTT 5 sends no
    retained message to a shared subscription (mosquitto does, EMQX does not) and the retained copies are
    what registers a device that has not spoken since ingest started."""
    share = events_filter[:-len(delivered_filter(events_filter))]
    everyone = Topics.for_device("+", prefix)
    return [getattr(everyone, kind) if kind in RETAINED else f"{share}{getattr(everyone, kind)}" for kind in KINDS]


@dataclass(frozen=True)
class DeviceRecord:
    """A registry row as read back."""

    device: str
    status: dict[str, Any] | None
    reported: dict[str, Any] | None
    health: dict[str, Any] | None
    health_at: datetime | None
    health_period_s: float | None
    last_seen: datetime

    def silent(self, now: datetime) -> str | None:
        """Why the device counts as silent at ``now``, or None."""
        state = (self.status or {}).get("state")
        if state in FINAL_STATES:
            return str(state)
        period = self.health_period_s or DEFAULT_HEALTH_PERIOD_S
        quiet = now - (self.health_at or self.last_seen)
        if quiet <= timedelta(seconds=SILENT_PERIODS * period):
            return None
        return f"no health for {_age(quiet)}" if self.health_at else f"no health ever, seen {_age(quiet)} ago"

    def view(self, now: datetime) -> DeviceView:
        return DeviceView(self.device, self.status, self.reported, last_seen=self.last_seen, silent=self.silent(now),
                          health=self.health, registered=True)


def select(records: list[DeviceRecord], now: datetime, site: str | None = None,
           state: str | None = None) -> list[DeviceView]:
    """The views of ``records`` in ``site`` and in ``state`` (a status state, ``unknown``, or ``silent``)."""
    views = [record.view(now) for record in records if site is None or in_site(record.device, site)]
    if state == "silent":
        return [view for view in views if view.silent]
    if state is not None:
        return [view for view in views if view.state == state]
    return views


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
