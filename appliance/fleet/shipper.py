"""The events worker: event bus → spool → link, at least once, never on the kiosk's time.

The kiosk only publishes to the in-process bus (a bounded buffer, drop-counted);
this thread drains it into the SQLite spool, then sends the oldest spooled
events as one batch on ``{p}/events`` and deletes them when the PUBACK comes.
One batch is in flight at a time, so order is kept and a failure is simple:
the batch stays in the spool and goes again.  A batch caught by a disconnect is
re-sent by paho on reconnect with the same packet id, so it is not sent twice.

End-to-end confirmation: the fleet's stored side publishes, retained, on
``{p}/events/stored`` the seq up to which it has stored every event of the
device.  ``Confirmations`` takes that value on paho's thread and only keeps the
highest (a latest-value slot, no SQLite there); the worker applies it.  Once one
has been heard the spool is in confirming mode for good: a PUBACK only marks
the batch sent, a confirmation deletes what it covers, and what stays
unconfirmed past ``confirm_timeout_s`` (doubling per attempt) goes again, as a
``historical`` batch.  Before that, a PUBACK deletes, as with an ingest that
does not confirm.

When the spool cannot be written (disk full, state directory unwritable) the
worker logs it once, stops draining and lets the bus hold events; what the bus
must drop meanwhile is spooled as a ``dropped`` event once the disk is back.
Shipping goes on meanwhile: acknowledged events give their space back (the
spool keeps room for that), so a full disk recovers without a restart.  A batch
the spool refuses is halved until the parts fit, so a drain larger than what the
disk can take at once still goes in, in order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance import __version__
from appliance.config import FleetConfig
from appliance.errors import ApplianceError, one_line
from appliance.events import Event, EventBus
from appliance.fleet.link import Delivery, Incoming, Link
from appliance.fleet.spool import MAX_RESEND_S, Spool, SpooledEvent, dropped_event
from appliance.worker import Worker

log = logging.getLogger(__name__)

#: Longest sleep with nothing to do; new events, acknowledgements and stop wake the worker sooner.
IDLE_S = 0.5
#: Events taken from the bus per spool transaction (one fsync each).
DRAIN = 1000
#: Where the spool lives under the state directory.
SPOOL_FILE = Path("fleet") / "events.db"
#: How often the age bound is applied.
EXPIRE_EVERY_S = 60.0
#: A ``{p}/events/stored`` payload is ``{"seq": n}``: anything longer is not one.
STORED_MAX_BYTES = 1024


class Confirmations:
    """The highest seq heard on ``{p}/events/stored``, from paho's thread to the events worker.

    ``on_message`` is the link handler: it parses, keeps the value when it is higher than the
    one waiting, and wakes the listener; ``take`` hands the waiting value over once.  A lower
    value than one already applied is the spool's to ignore.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq: int | None = None
        self._listener: Callable[[], None] = _nothing

    def on_message(self, message: Incoming) -> None:
        try:
            seq = message.json(STORED_MAX_BYTES).get("seq")
        except ApplianceError as exc:
            log.warning("ignoring a confirmation that is not {\"seq\": n}: %s", one_line(exc))
            return
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            log.warning("ignoring a confirmation on %s: seq %r is not an integer >= 0", message.topic, seq)
            return
        with self._lock:
            if self._seq is None or seq > self._seq:
                self._seq = seq
            listener = self._listener
        listener()

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on paho's thread) after each confirmation."""
        with self._lock:
            self._listener = callback

    def take(self) -> int | None:
        with self._lock:
            seq, self._seq = self._seq, None
        return seq


def _nothing() -> None:
    """The listener before the worker listens."""


class EventShipper(Worker):
    def __init__(self, bus: EventBus, link: Link, fleet: FleetConfig, state_dir: Path,
                 app_version: str = __version__, retry_s: float = 2.0,
                 confirmations: Confirmations | None = None) -> None:
        super().__init__("fleet-events")
        self.bus = bus
        self.link = link
        self.spool_path = state_dir / SPOOL_FILE
        self._fleet = fleet
        self._app_version = app_version
        self._retry_s = retry_s
        self._spool: Spool | None = None
        self._started = Event("boot", {})  # stamps the boot event with the start, not the spool's opening
        self._unwritten: list[Event] = []
        self._bus_dropped = bus.dropped
        self._inflight: tuple[Delivery, list[int], float] | None = None
        self._send_after = 0.0
        self._write_after = 0.0
        self._expire_after = 0.0
        self._wake = threading.Event()
        self._unsubscribe = bus.subscribe(lambda event: self._wake.set())
        self._confirmations = confirmations if confirmations is not None else Confirmations()
        self._confirmations.listen(self._wake.set)
        self._unconfirmed: int | None = None  # a confirmation the spool could not record yet
        self._resend_after = 0.0  # monotonic: before it, no sent event is due again (spares reading them all)

    def step(self) -> None:
        self._wake.clear()
        if self._spool is not None or self._open():
            self._absorb()
            self._expire()
            self._confirm()
            self._ship()
        self._wake.wait(IDLE_S)

    def stop(self, flush_timeout: float = 3.0) -> None:
        """Spool what is left and a ``shutdown`` event, try to hand the backlog over, record a clean stop."""
        self._unsubscribe()
        self._wake.set()
        super().stop()
        if self._thread.is_alive():
            log.error("event worker did not stop in time; the spool is left as it is (next boot reports a crash)")
            return
        if self._spool is None and not self._open():
            log.error("stopping with %d events never spooled: %s", len(self.bus) + len(self._unwritten), self.problem)
            return
        pending, self._unwritten = self._unwritten + self._drain_bus(len(self.bus)), []
        clean = self._write(pending + [Event("shutdown", {"app": self._app_version})])
        deadline = time.monotonic() + flush_timeout
        while self._unshipped() and self.link.connected and time.monotonic() < deadline:
            self._wake.clear()
            self._confirm()
            self._ship()
            self._wake.wait(min(IDLE_S, max(0.0, deadline - time.monotonic())))
        if self._spool.count:
            log.info("%d events stay spooled for the next run", self._spool.count)
        self._spool.close(clean=clean)
        self._spool = None

    def status(self) -> dict[str, object]:
        """For the health report."""
        spool = self._spool
        return {**(spool.status() if spool else {"pending": None}), "problem": self.problem}

    # -- bus → spool -----------------------------------------------------------------------------

    def _open(self) -> bool:
        if time.monotonic() < self._write_after:
            return False
        try:
            self._spool = Spool(self.spool_path, int(self._fleet.spool_max_mb * 1024 * 1024),
                                self._fleet.spool_max_age_days * 86400)
        except ApplianceError as exc:
            self._trouble(exc)
            return False
        boot = Event("boot", {"app": self._app_version, "last_run": self._spool.last_run},
                     id=self._started.id, monotonic=self._started.monotonic, ts=self._started.ts)
        self._unwritten.insert(0, boot)
        log.info("event spool %s open (run %d, last run ended: %s, %d events waiting)", self.spool_path,
                 self._spool.run, self._spool.last_run, self._spool.count)
        return True

    def _absorb(self) -> None:
        """Move one drain of the bus into the spool (after the retry delay when it last refused)."""
        if self._unwritten and time.monotonic() < self._write_after:
            return
        events = self._collect(DRAIN)
        if events:
            self._write(events)

    def _collect(self, limit: int) -> list[Event]:
        """What waits to be spooled: the last refused write, the bus's drop count, up to ``limit`` new events.

        While a refused write waits, nothing new is taken from the bus: the bus is
        the bounded buffer, so an unwritable disk costs counted drops, not memory.
        """
        if self._unwritten:
            events, self._unwritten = self._unwritten, []
            return events
        return self._drain_bus(limit)

    def _drain_bus(self, limit: int) -> list[Event]:
        """Up to ``limit`` events from the bus, after a ``dropped`` event for what the bus had to drop."""
        lost = self.bus.dropped - self._bus_dropped
        fresh = self.bus.drain(limit)
        if lost:
            self._bus_dropped += lost
            log.warning("%d events were dropped by the full event bus before they could be spooled", lost)
            fresh.insert(0, dropped_event("memory", lost))
        return fresh

    def _write(self, events: list[Event]) -> bool:
        """Spool ``events`` (as many of the first ones as the disk takes); the rest wait for the retry."""
        stored, error = self._store(events)
        if error is not None:
            self._unwritten = events[stored:]
            self._trouble(error)
            return False
        if self.problem:
            log.warning("event spool %s is writable again", self.spool_path)
            self.problem = None
        return True

    def _store(self, events: list[Event]) -> tuple[int, ApplianceError | None]:
        """Append ``events``, halving a batch the spool refuses, so a nearly full disk takes what it can
        and a drain larger than the whole filesystem's room still goes in, part by part, in order.
        Returns how many of the first events were stored and the refusal that stopped the rest."""
        assert self._spool is not None
        try:
            self._spool.append(events)
        except ApplianceError as exc:
            if len(events) == 1:
                return 0, exc
            half = len(events) // 2
            stored, error = self._store(events[:half])
            if error is not None:
                return stored, error
            stored, error = self._store(events[half:])
            return half + stored, error
        return len(events), None

    def _trouble(self, exc: ApplianceError) -> None:
        if self.problem != str(exc):
            log.error("%s; the kiosk carries on, events wait in memory (bounded) and are retried every %.0f s",
                      exc, self._retry_s)
        self.problem = str(exc)
        self._write_after = time.monotonic() + self._retry_s

    def _expire(self) -> None:
        assert self._spool is not None
        if time.monotonic() < self._expire_after:
            return
        self._expire_after = time.monotonic() + EXPIRE_EVERY_S
        try:
            self._spool.expire()
        except ApplianceError as exc:
            self._trouble(exc)

    # -- confirmations --------------------------------------------------------------------------

    def _confirm(self) -> None:
        """Apply the latest ``{p}/events/stored`` value; one the spool could not record is tried again."""
        assert self._spool is not None
        earlier, self._unconfirmed = self._unconfirmed, None
        seq = max((value for value in (self._confirmations.take(), earlier) if value is not None), default=None)
        if seq is None:
            return
        try:
            self._spool.confirm(seq)
        except ApplianceError as exc:
            self._trouble(exc)
            self._unconfirmed = seq

    # -- spool → link ----------------------------------------------------------------------------

    def _unshipped(self) -> bool:
        """A batch in flight, or events to send now."""
        assert self._spool is not None
        try:
            return self._inflight is not None or bool(self._due(1))
        except ApplianceError as exc:
            self._trouble(exc)
            return False

    def _due(self, limit: int) -> list[SpooledEvent]:
        """The next batch to send; the sent events are only read once one of them may be due again."""
        assert self._spool is not None
        now, timeout = time.monotonic(), self._fleet.confirm_timeout_s
        resend = now >= self._resend_after
        batch = self._spool.due(time.time(), timeout, limit, resend=resend)
        if resend and not batch:
            wait = self._spool.next_due(time.time(), timeout)
            self._resend_after = now + (MAX_RESEND_S if wait is None else wait)
        return batch

    def _ship(self) -> None:
        assert self._spool is not None
        now = time.monotonic()
        if self._inflight is not None and not self._settle(now):
            return
        if not self.link.connected or now < self._send_after:
            return
        try:
            batch = self._homogeneous(self._due(self._fleet.batch_size))
        except ApplianceError as exc:
            self._trouble(exc)
            return
        if not batch:
            return
        historical = self._historical(batch[0])
        delivery = self.link.publish(self.link.topics.events, {
            "device": self.link.device_id, "historical": historical, "events": [e.wire() for e in batch]}, qos=1)
        self._inflight = (delivery, [event.seq for event in batch], now)
        delivery.on_done(lambda _: self._wake.set())

    def _settle(self, now: float) -> bool:
        """Deal with the batch in flight; True when the next one may go."""
        assert self._spool is not None and self._inflight is not None
        delivery, seqs, sent = self._inflight
        first, last = seqs[0], seqs[-1]
        if delivery.done:
            self._inflight = None
            if delivery.ok:
                try:
                    if self._spool.confirming:
                        self._spool.mark_sent(seqs, time.time())
                        self._resend_after = min(self._resend_after, now + self._fleet.confirm_timeout_s)
                    else:
                        self._spool.acknowledge(first, last)
                except ApplianceError as exc:
                    self._trouble(exc)  # the rows stay and go again: at least once
                return True
            log.warning("the broker refused events %d-%d (%s); retrying in %.0f s", first, last, delivery.reason,
                        self._retry_s)
            self._send_after = now + self._retry_s
            return True
        since = max(sent, self.link.connected_since or sent)
        if self.link.connected and now - since > self._fleet.ack_timeout_s:
            log.warning("no PUBACK for events %d-%d after %.0f s connected; sending them again",
                        first, last, self._fleet.ack_timeout_s)
            self.link.forget(delivery)
            self._inflight = None
            return True
        return False

    def _historical(self, event: SpooledEvent) -> bool:
        """Sent before, or older than the current connection: from an earlier run, or spooled before this connect."""
        assert self._spool is not None
        connected_since = self.link.connected_since
        return (event.attempts > 0 or event.run != self._spool.run or connected_since is None
                or event.mono < connected_since)

    def _homogeneous(self, events: list[SpooledEvent]) -> list[SpooledEvent]:
        """The leading run of events that share one ``historical`` flag (a batch carries one)."""
        if not events:
            return events
        flag = self._historical(events[0])
        for index, event in enumerate(events):
            if self._historical(event) != flag:
                return events[:index]
        return events
