"""A device process for the fleet tests: the link and the event worker, to be killed -9 or stopped.

Wired as FleetRuntime wires them: the fleet's confirmations on ``{p}/events/stored`` are
subscribed before the link connects and handed to the event worker.

``python tests/fleet_device.py DEVICE STATE_DIR FLEET_JSON EVENTS`` publishes EVENTS
``tick`` events (printing ``published N`` after each), prints ``done``, and on
SIGTERM stops cleanly (``offline``, ``shutdown``) and prints ``stopped``.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from appliance.config import FleetConfig
from appliance.events import EventBus
from appliance.fleet.link import Link
from appliance.fleet.shipper import Confirmations, EventShipper


def main(device: str, state_dir: str, fleet_json: str, events: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    fleet = FleetConfig(**json.loads(fleet_json))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    bus = EventBus()
    link, confirmations = Link(device, fleet, Path(state_dir)), Confirmations()
    link.subscribe(link.topics.events_stored, confirmations.on_message)
    link.start()
    shipper = EventShipper(bus, link, fleet, Path(state_dir), confirmations=confirmations).start()
    for n in range(int(events)):
        bus.publish("tick", {"n": n})
        print(f"published {n}", flush=True)
        time.sleep(0.005)
    print("done", flush=True)
    stop.wait()
    shipper.stop()
    link.stop()
    print("stopped", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
