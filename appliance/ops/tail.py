"""``events tail``: the fleet's events as they arrive, one line each (or JSON Lines).

A watching tool, not a record: its session is clean, so what happens while it
is not running is not shown (``ingest`` keeps everything).  Replays after a
device's outage arrive with ``historical`` set and are marked so.  Events and
messages that ``ingest`` would quarantine are not printed: each gives one
warning line on stderr instead.
"""

from __future__ import annotations

import json
import queue
import sys
from typing import Any, TextIO

import paho.mqtt.client as mqtt

from appliance.errors import ApplianceError, one_line
from appliance.ops.eventbatch import EventBatch, events_filter
from appliance.ops.push import BrokerOptions, OperatorClient


def event_line(batch: EventBatch, event: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps({**event, "device": batch.device, "historical": batch.historical}, ensure_ascii=False)
    data = json.dumps(event.get("data", {}), separators=(",", ":"), ensure_ascii=False)
    line = f"{batch.device} #{event.get('seq')} {event.get('ts')} {event.get('type')} {data}"
    return f"{line} (historical)" if batch.historical else line


def tail(options: BrokerOptions, device: str | None = None, count: int | None = None, as_json: bool = False,
         out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Print events until Ctrl-C or ``count`` of them; how many were printed."""
    topic_filter = events_filter(device, options.prefix)
    messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    client = OperatorClient(options, handlers={topic_filter: messages.put})
    print(f"following {topic_filter} on {options.address} (Ctrl-C stops)", file=err, flush=True)
    printed = 0
    try:
        while count is None or printed < count:
            try:
                message = messages.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                batch = EventBatch.parse(message.topic, bytes(message.payload), options.prefix)
            except ApplianceError as exc:
                print(f"warning: {one_line(exc)}", file=err, flush=True)
                continue
            rows, bad = batch.check()
            for problem in bad:
                print(f"warning: {one_line(problem.reason)}", file=err, flush=True)
            for row in rows[:None if count is None else count - printed]:
                print(event_line(batch, row.source.event, as_json), file=out, flush=True)
                printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return printed
