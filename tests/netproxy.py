"""A user-space TCP proxy that adds latency, jitter and stalls: what the kernel's missing netem would do.

Each accepted connection is joined to a new connection to ``target``; each direction has a reader that
stamps every chunk with when it may leave (now + ``delay_s`` + a random share of ``jitter_s``, never
before the chunk ahead of it, so bytes stay in order) and a writer that sends it then.  ``stall`` holds
every chunk (both directions, every connection) until ``flow`` is called; readers stop reading once
``MAX_CHUNKS`` wait, so the kernel's buffers fill and TCP pushes back on the sender, as on a real
link that went quiet.  ``sever`` resets every connection (a NAT that forgot them).

Invariants: the proxy never changes, drops or reorders a byte of a connection that stays up; a
connection whose one side ends is closed on both sides; ``close`` stops accepting and severs all.
The listening socket and the connections to ``target`` are opened on the thread that calls ``start``
and on the proxy's threads, so started inside a network namespace they all live there.
"""

from __future__ import annotations

import queue
import random
import socket
import threading
import time

MAX_CHUNKS = 64
CHUNK_BYTES = 16384


class Proxy:
    """``listen`` (host, port 0 for any) → ``target`` (host, port)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen_at = listen
        self.target = target
        self.delay_s = 0.0
        self.jitter_s = 0.0
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = threading.Event()
        self._listener: socket.socket | None = None
        self.connections = 0
        self.unreachable = 0

    def start(self) -> Proxy:
        self._listener = socket.create_server(self.listen_at)
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()
        return self

    @property
    def address(self) -> str:
        """``host:port`` clients connect to."""
        assert self._listener is not None, "start the proxy first"
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def slow(self, delay_s: float, jitter_s: float = 0.0) -> None:
        """Every chunk from now on held ``delay_s`` plus up to ``jitter_s`` more."""
        self.delay_s, self.jitter_s = delay_s, jitter_s

    def stall(self) -> None:
        self._flowing.clear()

    def flow(self) -> None:
        self._flowing.set()

    def sever(self) -> None:
        """Every open connection reset; new ones are still accepted."""
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        if self._listener is not None:
            _close(self._listener)
        self.sever()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                self.unreachable += 1
                continue
            with self._lock:
                self._sockets.update((client, upstream))
                self.connections += 1
            for source, sink in ((client, upstream), (upstream, client)):
                chunks: queue.Queue[tuple[float, bytes]] = queue.Queue(MAX_CHUNKS)
                threading.Thread(target=self._read, args=(source, sink, chunks), daemon=True).start()
                threading.Thread(target=self._write, args=(source, sink, chunks), daemon=True).start()

    def _read(self, source: socket.socket, sink: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        leaves = 0.0
        while True:
            try:
                data = source.recv(CHUNK_BYTES)
            except OSError:
                data = b""
            leaves = max(leaves, time.monotonic() + self.delay_s + random.uniform(0.0, self.jitter_s))
            chunks.put((leaves, data))
            if not data:
                return

    def _write(self, source: socket.socket, sink: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        """Send each chunk when it is due; after a failure keep taking chunks (so the reader never blocks on a
        full queue) until the reader's end-of-stream."""
        broken = False
        while True:
            leaves, data = chunks.get()
            if not data or broken or self._closed.is_set():
                broken = self._hang_up(source, sink, broken)
                if not data:
                    return
                continue
            time.sleep(max(0.0, leaves - time.monotonic()))
            self._flowing.wait()
            try:
                sink.sendall(data)
            except OSError:
                broken = self._hang_up(source, sink, broken)

    def _hang_up(self, source: socket.socket, sink: socket.socket, already: bool) -> bool:
        if not already:
            for sock in (source, sink):
                _close(sock)
            with self._lock:
                self._sockets.difference_update((source, sink))
        return True


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
