"""``ingest``: the fleet's events from the broker into a database, each exactly once, none lost, none blocking.

The MQTT session is persistent (a fixed client id, ``clean_start=False``, a
session expiry): while ingest is down the broker queues the events for it.
Messages are acknowledged by hand, and only after the transaction holding their
rows has committed, so a crash between receipt and commit means the broker
sends them again; the event id as primary key turns that redelivery, and any
device replay, into a no-op.

What a device sends never stops ingest: each event is checked on its own
(``EventBatch.check``), the good ones are stored, the bad ones, and whole messages
that are no events batch, go to the store's ``quarantine`` table with the raw
payload and the reason, and every message is acknowledged.  Should the database
still refuse a batch for what a row holds, the rows are written one by one and
only the refused ones are quarantined, so no message comes back forever.  Ingest
stops (an ApplianceError, exit 1) only for a reason of its own: the database
failing; the unacknowledged messages then stay with the broker.  The device is
the topic's, never the payload's.  Every line it prints is one line.

paho's thread only queues messages; this (the main) thread writes them in
batches and acknowledges, which keeps the network thread answering keep-alives
while the database is slow.

The broker's PUBACK to a device is no proof that an event is stored, so ingest
confirms it end to end: after each commit it publishes ``{p}/events/stored``
``{"seq": n}`` (retained, QoS 1) for each device whose ``stored_upto`` (see
``eventstore``) the commit raised, and for each device that sent a historical
batch (a re-send: its confirmation may have been lost, e.g. ingest died between
commit and publish).  Those publishes never wait for their PUBACK here
(``StoredNotices``): what the broker has not acknowledged is sent again later.

Ingest also keeps the device registry (``appliance.ops.registry``): it subscribes to
every device's ``status``, ``state/reported`` and ``health`` (``registry_filters``:
health in the events' shared group, the retained two plainly, so their retained copies
arrive at every subscription), stores each device's latest of each in the ``devices``
table, committed before those messages are acknowledged, and quarantines what cannot
be stored the way it quarantines a bad events message.
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, TextIO

import paho.mqtt.client as mqtt

from appliance.errors import ApplianceError, one_line
from appliance.fleet.topics import Topics, device_of
from appliance.ops.eventbatch import BadBatch, EventBatch, EventRow, Quarantined, events_filter, excerpt
from appliance.ops.eventstore import EventStore, RowsRefused, Written
from appliance.ops.partitions import DEFAULT_RETAIN_MONTHS
from appliance.ops.push import ACK_TIMEOUT_S, BrokerOptions, OperatorClient
from appliance.ops.registry import BadReport, DeviceReport, kind_of, registry_filters, utc_now

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "oivis-ingest"
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600
#: A stored notice the broker refused, did not acknowledge in time or could not take is sent again after this.
RETRY_S = 5.0
#: How long a clean stop waits for the broker to acknowledge the last stored notices.
DRAIN_S = 5.0
#: How often the store's partitions and retention are seen to (and once at the start).
MAINTAIN_EVERY_S = 3600.0


@dataclass
class Totals:
    messages: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined_events: int = 0
    quarantined_messages: int = 0
    devices_told: int = 0  # devices whose stored seq the broker acknowledged at least once
    reports: int = 0  # status, state/reported and health messages stored in the registry
    quarantined_reports: int = 0

    def line(self) -> str:
        registry = (f"; {self.reports} device reports stored, {self.quarantined_reports} quarantined"
                    if self.reports or self.quarantined_reports else "")
        return (f"{self.messages} messages: {self.inserted} events stored, {self.duplicates} duplicates skipped, "
                f"{self.quarantined_events} events quarantined, {self.quarantined_messages} messages quarantined "
                f"whole, {self.devices_told} devices told what is stored{registry}")


class StoredNotices:
    """The ``{p}/events/stored`` notices still to be delivered to the broker, sent without waiting.

    Invariants: a device's due value only grows here, and leaves only once the broker has
    acknowledged a publish of exactly that value (a higher value due meanwhile stays due).
    A publish that the broker refused or left unacknowledged for ACK_TIMEOUT_S, or that
    the client could not take, is sent again RETRY_S later with the value re-read from the
    store, since another worker may have published a higher one in between.
    """

    def __init__(self, store: EventStore, prefix: str, clock: Callable[[], float]) -> None:
        self._store, self._prefix, self._clock = store, prefix, clock
        self._due: dict[str, int] = {}
        self._in_flight: dict[int, tuple[str, int, float]] = {}  # mid → device, value, sent at
        self._retry_at: dict[str, float] = {}  # devices whose last attempt failed: not before, then re-read
        self.told: set[str] = set()

    def topic(self, device: str) -> str:
        return Topics.for_device(device, self._prefix).events_stored

    def due(self, values: Mapping[str, int]) -> None:
        """Values just committed: due now, whatever failed before."""
        for device, value in values.items():
            if value > self._due.get(device, -1):
                self._due[device] = value
            self._retry_at.pop(device, None)

    def send(self, client: OperatorClient) -> list[str]:
        """Collect the acknowledgements, publish what is due and not in flight; the failures, one line each kind."""
        now = self._clock()
        failures: dict[str, list[str]] = {}
        for mid, (device, value, sent_at) in list(self._in_flight.items()):
            reason = client.acknowledged(mid)
            if reason is None and now - sent_at < ACK_TIMEOUT_S:
                continue
            del self._in_flight[mid]
            if reason is not None and not reason.is_failure:
                self.told.add(device)
                if self._due.get(device) == value:
                    del self._due[device]
                continue
            why = f"refused ({reason})" if reason is not None else f"not acknowledged within {ACK_TIMEOUT_S:.0f} s"
            failures.setdefault(why, []).append(self.topic(device))
            self._retry_at[device] = now + RETRY_S
        self._reread(now)
        busy = {(device, value) for device, value, _ in self._in_flight.values()}
        for device, value in self._due.items():
            if (device, value) in busy or self._retry_at.get(device, now) > now:
                continue
            mid = client.publish_nowait(self.topic(device), {"seq": value}, retain=True)
            if mid is None:
                failures.setdefault("not sent (not connected)", []).append(self.topic(device))
                self._retry_at[device] = now + RETRY_S
            else:
                self._in_flight[mid] = (device, value, now)
        return [f"{len(topics)} stored notices {why}, the first {topics[0]}; sent again in {RETRY_S:.0f} s"
                for why, topics in failures.items()]

    def _reread(self, now: float) -> None:
        """The due values of the devices whose retry has come, from the store (they may have grown elsewhere)."""
        ready = [device for device, at in self._retry_at.items() if at <= now]
        for device in ready:
            del self._retry_at[device]
        ready = [device for device in ready if device in self._due]
        if ready:
            for device, value in self._store.stored_upto(ready).items():
                self._due[device] = max(self._due[device], value)

    def drain(self, client: OperatorClient, timeout: float) -> None:
        """Send until nothing is due or ``timeout`` has passed (a clean stop)."""
        deadline = self._clock() + timeout
        while self._due and self._clock() < deadline:
            self.send(client)
            time.sleep(0.05)


class Received(NamedTuple):
    """A message as ``record`` takes it (a plain (topic, payload) pair is one too)."""

    topic: str
    payload: bytes
    expiry_s: int | None = None  # the Message Expiry Interval the broker forwarded
    retained: bool = False  # a retained copy the broker sent at subscription


@dataclass(frozen=True)
class IngestSettings:
    topic_filter: str = events_filter(None)
    client_id: str = DEFAULT_CLIENT_ID
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S
    batch: int = 500
    progress_every_s: float = 10.0
    idle_exit_s: float | None = None
    window: int = 1000
    registry: bool = True  # also keep the device registry (status, state/reported, health)
    retain_months: int = DEFAULT_RETAIN_MONTHS  # 0 keeps every event


class Ingest:
    def __init__(self, store: EventStore, options: BrokerOptions, settings: IngestSettings = IngestSettings(),
                 out: TextIO = sys.stderr, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.options = options
        self.settings = settings
        self.totals = Totals()
        self._out = out
        self._clock = clock
        self._queue: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._misnamed: set[str] = set()  # devices already warned about for naming another device
        self.notices = StoredNotices(store, options.prefix, clock)

    def run(self) -> Totals:
        """Until Ctrl-C (a clean stop: unacknowledged messages wait in the session) or ``idle_exit_s`` of quiet.

        ApplianceError when the database fails: the messages not yet acknowledged stay with the broker."""
        self._maintain()  # before subscribing: a database that cannot be maintained stops ingest at once
        last_maintained = self._clock()
        filters = [self.settings.topic_filter]
        if self.settings.registry:
            filters += registry_filters(self.settings.topic_filter, self.options.prefix)
        client = OperatorClient(self.options, handlers={topic_filter: self._queue.put for topic_filter in filters},
                                client_id=self.settings.client_id, session_expiry_s=self.settings.session_expiry_s,
                                manual_ack=True, receive_maximum=self.settings.window)
        registry = f" and the device registry's {', '.join(filters[1:])}" if self.settings.registry else ""
        self._say(f"ingesting {self.settings.topic_filter}{registry} from {self.options.address} into "
                  f"{self.store.name} as {self.settings.client_id} (Ctrl-C stops)")
        last_message = last_report = self._clock()
        reported = Totals()
        try:
            while True:
                if self._clock() - last_maintained >= MAINTAIN_EVERY_S:
                    self._maintain()
                    last_maintained = self._clock()
                messages = self._take(timeout=0.5)
                now = self._clock()
                if messages:
                    self.record([Received(message.topic, bytes(message.payload),
                                          getattr(message.properties, "MessageExpiryInterval", None),
                                          bool(message.retain)) for message in messages])
                    for message in messages:
                        client.ack(message)
                    last_message = now
                self._notify(client)
                if now - last_report >= self.settings.progress_every_s and self.totals != reported:
                    self._say(f"ingest: {self.totals.line()}")
                    last_report, reported = now, Totals(**vars(self.totals))
                if self.settings.idle_exit_s is not None and now - last_message >= self.settings.idle_exit_s:
                    break
            self.notices.drain(client, DRAIN_S)
        except KeyboardInterrupt:
            self.notices.drain(client, DRAIN_S)
        except ApplianceError as exc:
            raise ApplianceError(f"{exc}; ingest stops, the messages not yet acknowledged stay with the broker "
                                 f"({self.totals.line()})") from exc
        finally:
            client.close()
        self.totals.devices_told = len(self.notices.told)
        self._say(f"ingest stopped: {self.totals.line()}")
        return self.totals

    def _maintain(self) -> None:
        for line in self.store.maintain(utc_now(), self.settings.retain_months):
            self._say(f"ingest: {line}")

    def _notify(self, client: OperatorClient) -> None:
        for failure in self.notices.send(client):
            self._say(f"warning: {failure}")
        self.totals.devices_told = len(self.notices.told)

    def _take(self, timeout: float) -> list[mqtt.MQTTMessage]:
        try:
            messages = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(messages) < self.settings.batch:
            try:
                messages.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return messages

    def record(self, messages: Sequence[Received | tuple[str, bytes]]) -> None:
        """Store what ``messages`` hold: events, registry reports and quarantine, committed when this returns.

        ApplianceError only when the store fails; nothing a message holds makes it raise."""
        rows: list[EventRow] = []
        quarantined: list[Quarantined] = []
        batches: list[EventBatch] = []
        reports: list[DeviceReport] = []
        bad_reports: list[Quarantined] = []
        whole = events = 0
        received_at = utc_now()
        for message in (Received(*message) for message in messages):
            topic, payload = message.topic, message.payload
            if kind_of(topic, device_of(topic, self.options.prefix), self.options.prefix) is not None:
                self._report(message, received_at, reports, bad_reports)
                continue
            events += 1
            try:
                batch = EventBatch.parse(topic, payload, self.options.prefix)
            except BadBatch as exc:
                quarantined.append(Quarantined.message(topic, payload, str(exc), self.options.prefix))
                whole += 1
                self._say(f"warning: {topic}: message quarantined whole: {exc}")
                continue
            batches.append(batch)
            good, bad = batch.check()
            rows += good
            quarantined += [Quarantined.event(batch, event) for event in bad]
            if bad:
                self._say(f"warning: {topic}: {len(bad)} of {len(batch.events)} events quarantined, the first: "
                          f"{bad[0].reason}")
            if batch.misnamed and batch.device not in self._misnamed:
                self._misnamed.add(batch.device)
                self._say(f"warning: {topic}: the payload names device {excerpt(batch.claimed)}; its events are "
                          f"stored as {batch.device}'s, the device in the topic (said once per device)")
        refused: list[tuple[EventRow, str]] = []
        try:
            written = self.store.write(rows, quarantined + bad_reports)
        except RowsRefused as exc:
            self._say(f"warning: {exc}; storing the events one by one")
            written, refused = self.store.write_each(rows)
            for row, reason in refused:
                self._say(f"warning: {row.topic}: event {row.id} (seq {row.seq}) quarantined: {reason}")
            quarantined += [row.quarantined(reason) for row, reason in refused]
            self._tell(self.store.write([], quarantined + bad_reports), batches)
        if reports:
            self.store.write_devices(reports)
        self._tell(written, batches)
        self.totals.reports += len(reports)
        self.totals.quarantined_reports += len(bad_reports)
        self.totals.messages += events
        self.totals.inserted += written.inserted
        self.totals.duplicates += len(rows) - len(refused) - written.inserted
        self.totals.quarantined_events += len(quarantined) - whole
        self.totals.quarantined_messages += whole

    def _report(self, message: Received, received_at: datetime, reports: list[DeviceReport],
                bad: list[Quarantined]) -> None:
        """A registry message into ``reports``, or into ``bad`` (said in one line) when it cannot be stored."""
        try:
            report = DeviceReport.parse(message.topic, message.payload, received_at, self.options.prefix,
                                        message.expiry_s, message.retained)
        except BadReport as exc:
            bad.append(Quarantined.message(message.topic, message.payload, str(exc), self.options.prefix))
            self._say(f"warning: {message.topic}: message quarantined: {exc}")
            return
        if report is not None:
            reports.append(report)

    def _tell(self, written: Written, batches: Sequence[EventBatch]) -> None:
        """Make due the notices of the devices whose value ``written`` raised or that re-sent (a historical batch)."""
        resent = {batch.device for batch in batches if batch.historical}
        self.notices.due({device: value for device, value in written.stored_upto.items()
                          if device in written.grown or device in resent})

    def _say(self, line: str) -> None:
        print(one_line(line), file=self._out, flush=True)
