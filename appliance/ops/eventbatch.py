"""A message on ``oivis/v1/<device>/events`` as the operator tools read it (the contract's payload), checked.

Invariants:

- The device is the one in the topic, never the payload's ``device``: the broker's
  ACL lets a certificate publish only under its own id, so the topic is the part
  that cannot lie.  A payload naming another device is kept as ``claimed`` so the
  caller can report it; its events count as the topic's device's.
- A message is read with size and depth limits (``appliance.boundedjson``); one that
  is not an events batch, or holds more than ``MAX_EVENTS``, raises ``BadBatch`` as a whole.
- Each event is checked on its own (``EventBatch.check``): an ``EventRow`` holds only
  values that both stores accept (seq a 64-bit count, a UUID, a zoned ISO-8601 time
  inside years 1..9999 UTC, an identifier-like type, a JSON object of bounded size
  with finite numbers and text free of NUL characters and lone surrogates); anything
  else is a ``BadEvent`` with the reason, so one bad event never costs the others.
- A ``dropped`` event whose ``last_seq`` is a count says which of the device's seqs will never
  come (``EventRow.gone``, first >= 1, first <= last; a ``first_seq`` of null means 1, "every seq
  up to last_seq"); both null (events lost before they got a seq), or values that are no counts,
  say nothing is gone, and the event is stored like any other.
- A quarantined event keeps its seq when that is a count from 1 up (``Quarantined.seq``): it is
  in the database, so it does not hold its device's ``stored_upto`` back.
- A ``Quarantined`` record is storable by construction (its texts are escaped to one
  line of valid UTF-8 without NUL) and keyed by a digest of what it holds, so a
  redelivered message is quarantined once.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from appliance import boundedjson
from appliance.boundedjson import INT64_MAX
from appliance.errors import ApplianceError, one_line
from appliance.fleet.topics import DEFAULT_PREFIX, Topics, device_of
from appliance.identity import device_id_problem
from appliance.ops.fleet import device_topics

#: A whole message: 10,000 events (the device's largest ``batch_size``) of about a kilobyte each, with room.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Events in one message: the device's largest ``batch_size`` (so one message quarantines at most this many rows).
MAX_EVENTS = 10_000
#: One event's ``data`` as compact UTF-8 JSON.
MAX_DATA_BYTES = 64 * 1024
MAX_TS_CHARS = 64
TYPE_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")  # fullmatch: "$" would let a final newline in
#: The event type whose data names seqs that will never come (the spool's bounds, a replaced spool).
DROPPED = "dropped"
#: A stored reason is one line of at most this many characters.
MAX_REASON_CHARS = 500


def events_filter(device: str | None, prefix: str = DEFAULT_PREFIX) -> str:
    """The subscription for one device's events, or everyone's."""
    return Topics.for_device("+", prefix).events if device is None else device_topics(device, prefix).events


class BadBatch(ApplianceError):
    """The message as a whole is not an events batch (not JSON, too big or deep, no events list, wrong topic)."""


def storable(text: str) -> str:
    """``text`` as one line that every store accepts: lone surrogates and NUL characters escaped as ``\\…``."""
    return one_line(text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00"))


def excerpt(value: Any, limit: int = 60) -> str:
    """``value`` for a reason: its repr (which escapes NUL and surrogates), cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


@dataclass(frozen=True)
class EventBatch:
    topic: str
    device: str
    historical: bool
    events: list[Any]  # as sent: each is checked by ``check``
    claimed: Any = None  # the payload's ``device`` (None when absent)

    @classmethod
    def parse(cls, topic: str, payload: bytes, prefix: str = DEFAULT_PREFIX) -> EventBatch:
        """The batch in ``payload`` received on ``topic``; BadBatch when it is not one."""
        device = device_of(topic, prefix)
        if device is None or topic != Topics.for_device(device, prefix).events:
            raise BadBatch(f"{topic} is not a device's events topic under {prefix}")
        problem = device_id_problem(device)
        if problem is not None:
            raise BadBatch(f"{topic}: the device in the topic is refused: {problem}")
        what = f"message on {topic}"
        try:
            document = boundedjson.loads_object(payload, what, MAX_MESSAGE_BYTES)
        except ApplianceError as exc:
            raise BadBatch(str(exc)) from exc
        events = document.get("events")
        if not isinstance(events, list):
            raise BadBatch(f"{what} has no \"events\" list")
        if len(events) > MAX_EVENTS:
            raise BadBatch(f"{what} holds {len(events)} events, over the limit of {MAX_EVENTS}")
        historical = document.get("historical", False)
        if not isinstance(historical, bool):
            raise BadBatch(f"{what}: \"historical\" is {excerpt(historical)}, not true or false")
        return cls(topic, device, historical, events, document.get("device"))

    @property
    def misnamed(self) -> bool:
        """The payload names a device other than the topic's."""
        return self.claimed is not None and self.claimed != self.device

    def check(self) -> tuple[list[EventRow], list[BadEvent]]:
        """Every event, either as a row both stores accept or as a bad event with the reason."""
        rows: list[EventRow] = []
        bad: list[BadEvent] = []
        for index, event in enumerate(self.events):
            try:
                rows.append(EventRow.of(self, index, event))
            except ApplianceError as exc:
                bad.append(BadEvent(index, event, str(exc)))
        return rows, bad


@dataclass(frozen=True)
class BadEvent:
    """An event of a batch that is not stored, with why."""

    index: int
    event: Any
    reason: str

    def payload(self) -> bytes:
        """The event as sent, in JSON with every non-ASCII character escaped, so NULs and surrogates survive."""
        return json.dumps(self.event, ensure_ascii=True, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True)
class EventRow:
    """One event as stored: checked field by field, so every store accepts it."""

    id: str
    device: str
    seq: int
    ts: datetime
    ts_text: str
    type: str
    data_json: str  # compact JSON text of the ``data`` object
    historical: bool
    topic: str = field(compare=False, repr=False)
    source: BadEvent = field(compare=False, repr=False)  # the event as sent, for ``quarantined``
    gone: tuple[int, int] | None = None  # the seqs first..last a ``dropped`` event says will never come

    @classmethod
    def of(cls, batch: EventBatch, index: int, event: Any) -> EventRow:
        """The row for ``event`` (the ``index``-th of ``batch``); ApplianceError naming the first problem."""
        where = f"event {index} of {batch.device}"
        if not isinstance(event, dict):
            raise ApplianceError(f"{where} is {excerpt(event)}, not an object")
        missing = [key for key in ("id", "seq", "ts", "type") if key not in event]
        if missing:
            raise ApplianceError(f"{where} has no {', '.join(missing)}")
        seq, event_id, ts_text, kind = event["seq"], event["id"], event["ts"], event["type"]
        if not _is_count(seq):
            raise ApplianceError(f"{where}: seq {excerpt(seq)} is not a whole number in 0..2**63-1")
        where = f"event {index} (seq {seq}) of {batch.device}"
        try:
            if not isinstance(event_id, str):
                raise ValueError("not a text")
            canonical_id = str(uuid.UUID(event_id))
        except ValueError as exc:
            raise ApplianceError(f"{where}: id {excerpt(event_id)} is not a UUID") from exc
        if not isinstance(kind, str) or not TYPE_PATTERN.fullmatch(kind):
            raise ApplianceError(f"{where}: type {excerpt(kind)} is not an identifier (a letter, then up to 63 "
                                 "letters, digits or _ . : -)")
        ts = parse_time(ts_text, where)
        data = event.get("data", {})
        if not isinstance(data, dict):
            raise ApplianceError(f"{where}: data is {excerpt(data)}, not an object")
        problem = json_problem(data)
        if problem is not None:
            raise ApplianceError(f"{where}: data {problem}")
        data_json = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        size = len(data_json.encode("utf-8"))
        if size > MAX_DATA_BYTES:
            raise ApplianceError(f"{where}: data is {size} bytes, over the limit of {MAX_DATA_BYTES}")
        return cls(canonical_id, batch.device, seq, ts, ts_text, kind, data_json, batch.historical, batch.topic,
                   BadEvent(index, event, ""), _gone(data) if kind == DROPPED else None)

    def quarantined(self, reason: str) -> Quarantined:
        """This event as a quarantine record, for a store that refused it despite the checks."""
        return Quarantined.of(self.topic, self.device, self.source.index, self.source.payload(), reason, self.seq)


def _gone(data: dict[str, Any]) -> tuple[int, int] | None:
    """The seqs a ``dropped`` event's data says will never come, or None (see the module's invariants)."""
    first, last = data.get("first_seq"), data.get("last_seq")
    if not _is_count(last) or not (first is None or _is_count(first)):
        return None
    first = 1 if first is None else max(first, 1)
    return (first, last) if first <= last else None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX


def parse_time(value: Any, where: str) -> datetime:
    """An ISO-8601 time with its zone, inside years 1..9999 once in UTC (what every reader can load back)."""
    # printable ASCII only: CPython's parser stops at a NUL and would take "…+00:00\x00" whole
    if not isinstance(value, str) or len(value) > MAX_TS_CHARS or not (value.isascii() and value.isprintable()):
        raise ApplianceError(f"{where}: ts {excerpt(value)} is not an ISO-8601 time")
    try:  # Python 3.10's fromisoformat does not take the "Z" that 3.11's does
        ts = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError as exc:
        raise ApplianceError(f"{where}: ts {excerpt(value)} is not an ISO-8601 time") from exc
    if ts.utcoffset() is None:
        raise ApplianceError(f"{where}: ts {excerpt(value)} has no time zone (e.g. +00:00 or Z)")
    try:
        ts.astimezone(timezone.utc)
    except OverflowError as exc:
        raise ApplianceError(f"{where}: ts {excerpt(value)} is outside years 1..9999 in UTC") from exc
    return ts


def json_problem(value: Any) -> str | None:
    """Why a parsed JSON value cannot be stored as text or jsonb, or None (its depth is bounded by the parser)."""
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return f"holds the number {value!r}, which JSON cannot store"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _text_problem(key) or json_problem(item)
            if problem is not None:
                return problem
    if isinstance(value, list):
        for item in value:
            problem = json_problem(item)
            if problem is not None:
                return problem
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return f"holds a NUL character ({excerpt(text)}), which PostgreSQL cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"holds a lone surrogate ({excerpt(text)}), which is not Unicode text"
    return None


@dataclass(frozen=True)
class Quarantined:
    """A message or an event that is not stored as events: where it came from, what it was, and why."""

    digest: str  # sha256 over topic, part and payload: the key that makes redelivery a no-op
    device: str | None  # the topic's device when it is a device id
    topic: str
    part: int | None  # the event's index in the batch; None for the whole message
    payload: bytes  # the whole message as received, or the one event (``BadEvent.payload``)
    reason: str
    seq: int | None = None  # the event's seq when it is a count from 1 up (for the device's progress)

    @classmethod
    def message(cls, topic: str, payload: bytes, reason: str, prefix: str = DEFAULT_PREFIX) -> Quarantined:
        """A message that is not an events batch, kept whole."""
        device = device_of(topic, prefix)
        return cls.of(topic, device if device_id_problem(device) is None else None, None, payload, reason)

    @classmethod
    def event(cls, batch: EventBatch, bad: BadEvent) -> Quarantined:
        """One event of ``batch`` that failed its check."""
        seq = bad.event.get("seq") if isinstance(bad.event, dict) else None
        return cls.of(batch.topic, batch.device, bad.index, bad.payload(), bad.reason, seq)

    @classmethod
    def of(cls, topic: str, device: str | None, part: int | None, payload: bytes, reason: str,
           seq: Any = None) -> Quarantined:
        topic = storable(topic)
        digest = hashlib.sha256()
        for piece in (topic.encode("utf-8"), str(part).encode("ascii"), payload):
            digest.update(len(piece).to_bytes(8, "big"))
            digest.update(piece)
        text = storable(reason)
        if len(text) > MAX_REASON_CHARS:
            text = f"{text[:MAX_REASON_CHARS - 1]}…"
        return cls(digest.hexdigest(), device, topic, part, payload, text,
                   seq if device is not None and _is_count(seq) and seq >= 1 else None)
