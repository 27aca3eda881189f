"""``ingest``: the fleet's events from the broker into a database, each exactly once, none lost.

The MQTT session is persistent (a fixed client id, ``clean_start=False``, a
session expiry): while ingest is down the broker queues the events for it.
Messages are acknowledged by hand, and only after the transaction holding their
rows has committed, so a crash between receipt and commit means the broker
sends them again; the event id as primary key turns that redelivery, and any
device replay, into a no-op.  A message that is not a valid events batch is
acknowledged and reported: keeping it would block nothing but would come back
forever.

paho's thread only queues messages; this (the main) thread writes them in
batches and acknowledges, which keeps the network thread answering keep-alives
while the database is slow.
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import paho.mqtt.client as mqtt

from appliance.errors import ApplianceError
from appliance.ops.eventbatch import EventBatch, EventRow, events_filter
from appliance.ops.eventstore import EventStore
from appliance.ops.push import BrokerOptions, OperatorClient

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "oivis-ingest"
DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600


@dataclass
class Totals:
    messages: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0

    def line(self) -> str:
        return (f"{self.messages} messages: {self.inserted} events stored, {self.duplicates} duplicates skipped, "
                f"{self.rejected} rejected")


@dataclass(frozen=True)
class IngestSettings:
    topic_filter: str = events_filter(None)
    client_id: str = DEFAULT_CLIENT_ID
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S
    batch: int = 500
    progress_every_s: float = 10.0
    idle_exit_s: float | None = None


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

    def run(self) -> Totals:
        """Until Ctrl-C (a clean stop: unacknowledged messages wait in the session) or ``idle_exit_s`` of quiet."""
        client = OperatorClient(self.options, handlers={self.settings.topic_filter: self._queue.put},
                                client_id=self.settings.client_id, session_expiry_s=self.settings.session_expiry_s,
                                manual_ack=True)
        self._say(f"ingesting {self.settings.topic_filter} from {self.options.address} into {self.store.name} "
                  f"as {self.settings.client_id} (Ctrl-C stops)")
        last_message = last_report = self._clock()
        reported = Totals()
        try:
            while True:
                messages = self._take(timeout=0.5)
                now = self._clock()
                if messages:
                    self._write(client, messages)
                    last_message = now
                if now - last_report >= self.settings.progress_every_s and self.totals != reported:
                    self._say(f"ingest: {self.totals.line()}")
                    last_report, reported = now, Totals(**vars(self.totals))
                if self.settings.idle_exit_s is not None and now - last_message >= self.settings.idle_exit_s:
                    break
        except KeyboardInterrupt:
            pass
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

    def _write(self, client: OperatorClient, messages: list[mqtt.MQTTMessage]) -> None:
        """Rows of every message in one transaction, then the acknowledgements: never the other way round."""
        rows: list[EventRow] = []
        for message in messages:
            try:
                batch = EventBatch.parse(message.topic, bytes(message.payload))
            except ApplianceError as exc:
                self._reject(str(exc))
                continue
            for event in batch.events:
                try:
                    rows.append(EventRow.of(batch, event))
                except ApplianceError as exc:
                    self._reject(str(exc))
        inserted = self.store.insert(rows) if rows else 0
        for message in messages:
            client.ack(message)
        self.totals.messages += len(messages)
        self.totals.inserted += inserted
        self.totals.duplicates += len(rows) - inserted

    def _reject(self, problem: str) -> None:
        self.totals.rejected += 1
        self._say(f"warning: {problem}; skipped")

    def _say(self, line: str) -> None:
        print(line, file=self._out, flush=True)
