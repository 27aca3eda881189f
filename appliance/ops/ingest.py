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
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import paho.mqtt.client as mqtt

from appliance.errors import ApplianceError, one_line
from appliance.ops.eventbatch import BadBatch, EventBatch, EventRow, Quarantined, events_filter, excerpt
from appliance.ops.eventstore import EventStore, RowsRefused
from appliance.ops.push import BrokerOptions, OperatorClient

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "oivis-ingest"
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass
class Totals:
    messages: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined_events: int = 0
    quarantined_messages: int = 0

    def line(self) -> str:
        return (f"{self.messages} messages: {self.inserted} events stored, {self.duplicates} duplicates skipped, "
                f"{self.quarantined_events} events quarantined, {self.quarantined_messages} messages quarantined "
                "whole")


@dataclass(frozen=True)
class IngestSettings:
    topic_filter: str = events_filter(None)
    client_id: str = DEFAULT_CLIENT_ID
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S
    batch: int = 500
    progress_every_s: float = 10.0
    idle_exit_s: float | None = None
    window: int = 1000


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

    def run(self) -> Totals:
        """Until Ctrl-C (a clean stop: unacknowledged messages wait in the session) or ``idle_exit_s`` of quiet.

        ApplianceError when the database fails: the messages not yet acknowledged stay with the broker."""
        client = OperatorClient(self.options, handlers={self.settings.topic_filter: self._queue.put},
                                client_id=self.settings.client_id, session_expiry_s=self.settings.session_expiry_s,
                                manual_ack=True, receive_maximum=self.settings.window)
        self._say(f"ingesting {self.settings.topic_filter} from {self.options.address} into {self.store.name} "
                  f"as {self.settings.client_id} (Ctrl-C stops)")
        last_message = last_report = self._clock()
        reported = Totals()
        try:
            while True:
                messages = self._take(timeout=0.5)
                now = self._clock()
                if messages:
                    self.record([(message.topic, bytes(message.payload)) for message in messages])
                    for message in messages:
                        client.ack(message)
                    last_message = now
                if now - last_report >= self.settings.progress_every_s and self.totals != reported:
                    self._say(f"ingest: {self.totals.line()}")
                    last_report, reported = now, Totals(**vars(self.totals))
                if self.settings.idle_exit_s is not None and now - last_message >= self.settings.idle_exit_s:
                    break
        except KeyboardInterrupt:
            pass
        except ApplianceError as exc:
            raise ApplianceError(f"{exc}; ingest stops, the messages not yet acknowledged stay with the broker "
                                 f"({self.totals.line()})") from exc
        finally:
            client.close()
        self._say(f"ingest stopped: {self.totals.line()}")
        return self.totals

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

    def record(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Store what ``messages`` (topic, payload) hold, events and quarantine, committed when this returns.

        ApplianceError only when the store fails; nothing a message holds makes it raise."""
        rows: list[EventRow] = []
        quarantined: list[Quarantined] = []
        whole = 0
        for topic, payload in messages:
            try:
                batch = EventBatch.parse(topic, payload, self.options.prefix)
            except BadBatch as exc:
                quarantined.append(Quarantined.message(topic, payload, str(exc), self.options.prefix))
                whole += 1
                self._say(f"warning: {topic}: message quarantined whole: {exc}")
                continue
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
            inserted = self.store.write(rows, quarantined)
        except RowsRefused as exc:
            self._say(f"warning: {exc}; storing the events one by one")
            inserted, refused = self.store.write_each(rows)
            for row, reason in refused:
                self._say(f"warning: {row.topic}: event {row.id} (seq {row.seq}) quarantined: {reason}")
            quarantined += [row.quarantined(reason) for row, reason in refused]
            self.store.write([], quarantined)
        self.totals.messages += len(messages)
        self.totals.inserted += inserted
        self.totals.duplicates += len(rows) - len(refused) - inserted
        self.totals.quarantined_events += len(quarantined) - whole
        self.totals.quarantined_messages += whole

    def _say(self, line: str) -> None:
        print(one_line(line), file=self._out, flush=True)
