"""The console's connection to the fleet's broker: one persistent MQTT session, kept up in the background.

Invariants:

- The console starts and serves pages whether or not the broker answers: the link connects on its own
  thread and tries again with a growing delay (at most ``RETRY_MAX_S``); until it is up, ``client()`` raises
  one ``ApplianceError`` line saying why (the broker's refusal or silence), which the page shows.
- The session is persistent (a fixed client id per host, a session expiry): replies to commands that arrive
  while the console restarts wait on the broker and are delivered to the handlers, which are subscribed
  before anything is published.  paho reconnects a link that was up once by itself.
- Handlers run on paho's thread and must not block for long (they write one row).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Mapping
from typing import Any

from appliance.errors import ApplianceError
from appliance.ops.push import BrokerOptions, OperatorClient

log = logging.getLogger(__name__)
RETRY_MIN_S = 2.0
RETRY_MAX_S = 60.0
SESSION_EXPIRY_S = 24 * 3600


class FleetLink:
    def __init__(self, options: BrokerOptions, handlers: Mapping[str, Any]) -> None:
        self.options = options
        self._handlers = dict(handlers)
        self._client: OperatorClient | None = None
        self._problem = f"connecting to the broker {options.address}…"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="console-fleet-link", daemon=True)

    def start(self) -> FleetLink:
        self._thread.start()
        return self

    def _run(self) -> None:
        delay = RETRY_MIN_S
        while not self._stop.is_set():
            try:
                client = OperatorClient(self.options, handlers=self._handlers,
                                        client_id=f"oivis-console-{socket.gethostname()}"[:64],
                                        session_expiry_s=SESSION_EXPIRY_S)
            except ApplianceError as exc:
                with self._lock:
                    if self._problem != str(exc):
                        log.warning("fleet link: %s (trying again)", exc)
                    self._problem = str(exc)
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            with self._lock:
                self._client = client
            log.info("fleet link: connected to %s", self.options.address)
            return

    def connected(self) -> bool:
        with self._lock:
            return self._client is not None and self._client.is_connected()

    def client(self) -> OperatorClient:
        """The connected client, or ApplianceError saying why there is none."""
        with self._lock:
            client, problem = self._client, self._problem
        if client is None:
            raise ApplianceError(f"the fleet's broker is not reachable: {problem}")
        if not client.is_connected():
            raise ApplianceError(f"the connection to the broker {self.options.address} is down (reconnecting)")
        return client

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
