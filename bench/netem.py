"""A delaying TCP proxy: put distance (and optionally a slow link) in front of a local server.

    with Netem("http://127.0.0.1:3000", rtt_ms=20, bandwidth_mbit=50) as proxy:
        httpx.get(proxy.url + "/property_listings")  # >= 3 round trips: a new connection

It works on bytes, not on HTTP, so keep-alive and half-closes pass through as they are:

- every chunk is delivered RTT/2 after the proxy received it, in order, per direction;
- a new connection carries no data for two round trips (TCP and TLS set-up), so its
  first request and answer take at least 3 RTT;
- every connection has its own queues and threads, so concurrent requests are delayed
  independently, as on the internet;
- with ``bandwidth_mbit``, each direction is one link shared by all connections: a chunk
  is sent when the link is free and takes ``bytes / bandwidth`` on it (then RTT/2).

Threads only (the product is synchronous code too). It listens and connects on loopback
only, counts the bytes per direction, and ``stop()`` closes every socket and joins every
thread it started.
"""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

CHUNK = 65_536
# Per direction and connection; a full queue stops reading, so TCP pushes back on the
# sender instead of the proxy buffering a whole upload.
QUEUE_CHUNKS = 64
UP, DOWN = "up", "down"  # client -> server, server -> client


class Link:
    """One direction of the path: when is a chunk received at ``now`` delivered.

    Pure bookkeeping (no sleeping, no clock of its own) so the schedule can be tested
    with a table. Thread-safe: the bandwidth is shared by every connection.
    """

    def __init__(self, rtt_s: float, bandwidth_mbit: float | None = None) -> None:
        if rtt_s < 0:
            raise ValueError("rtt must be >= 0")
        if bandwidth_mbit is not None and bandwidth_mbit <= 0:
            raise ValueError("bandwidth must be > 0 Mbit/s (or None for no cap)")
        self.one_way = rtt_s / 2
        self.bytes_per_s = None if bandwidth_mbit is None else bandwidth_mbit * 1e6 / 8
        self._free_at = 0.0  # when the shared link has sent everything queued so far
        self._lock = threading.Lock()

    def deliver_at(self, now: float, nbytes: int, *, not_before: float = 0.0) -> float:
        """Return when ``nbytes`` received at ``now`` arrive at the other end."""
        start = max(now, not_before)
        if self.bytes_per_s is None:
            return start + self.one_way
        with self._lock:
            start = max(start, self._free_at)
            self._free_at = start + nbytes / self.bytes_per_s
            return self._free_at + self.one_way


def _require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        loopback = False
    if not loopback:
        raise ValueError(f"netem serves loopback only, not {host!r}")


@dataclass
class _Pipe:
    """One direction of one connection: a reader thread fills ``chunks``, a writer drains it."""

    src: socket.socket
    dst: socket.socket
    direction: str
    chunks: queue.Queue[tuple[float, bytes] | None]
    dead: threading.Event  # the writer gave up: the reader must not block on a full queue


class Netem:
    """A delaying proxy for one upstream ``http://127.0.0.1:PORT[/path]`` URL."""

    def __init__(
        self,
        upstream: str,
        *,
        rtt_ms: float,
        bandwidth_mbit: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream must be scheme://host:port[/path], got {upstream!r}")
        _require_loopback(parts.hostname)
        self.upstream = (parts.hostname, parts.port)
        self._scheme, self._path = parts.scheme, parts.path.rstrip("/")
        self.rtt_s = rtt_ms / 1000
        self.bandwidth_mbit = bandwidth_mbit
        self.links = {UP: Link(self.rtt_s, bandwidth_mbit), DOWN: Link(self.rtt_s, bandwidth_mbit)}
        self._clock = clock
        self._bytes = {UP: 0, DOWN: 0}
        self.connections = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._accepter: threading.Thread | None = None

    # -- public ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The proxy's URL, standing in for the upstream URL (same scheme and path)."""
        if self._listener is None:
            raise RuntimeError("netem is not started")
        port = self._listener.getsockname()[1]
        return f"{self._scheme}://127.0.0.1:{port}{self._path}"

    def traffic(self) -> dict[str, int]:
        """Return the bytes forwarded so far: ``up`` (to the server) and ``down``."""
        with self._lock:
            return dict(self._bytes)

    def start(self) -> Netem:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.1)  # so the accept loop notices stop()
        self._listener = listener
        self._accepter = self._spawn(self._accept_loop, "netem-accept")
        return self

    def stop(self) -> None:
        """Close the listener and every connection; join every thread started."""
        self._stopping.set()
        # The accept loop first, so no connection opens after the sockets are collected.
        if self._accepter is not None:
            self._accepter.join(timeout=5)
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._all_threads():
            thread.join(timeout=5)
        for sock in sockets:
            sock.close()
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> Netem:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------
    def _all_threads(self) -> list[threading.Thread]:
        with self._lock:
            return list(self._threads)

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            # Finished connections' threads are dropped so a long run does not pile them up.
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()
        return thread

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            opened = self._clock()
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._sockets.update((client, server))
            # TCP and TLS set-up: the client's first bytes leave after two round trips.
            ready = opened + 2 * self.rtt_s
            pending = [2]  # writers still running; the last one closes both sockets
            for pipe, not_before in (
                (_Pipe(client, server, UP, queue.Queue(QUEUE_CHUNKS), threading.Event()), ready),
                (_Pipe(server, client, DOWN, queue.Queue(QUEUE_CHUNKS), threading.Event()), 0.0),
            ):
                self._spawn(self._read, f"netem-{pipe.direction}-read", pipe, not_before)
                self._spawn(self._write, f"netem-{pipe.direction}-write", pipe, pending)

    def _finish(self, pipe: _Pipe, pending: list[int]) -> None:
        with self._lock:
            pending[0] -= 1
            last = pending[0] == 0
            if last:
                self._sockets.difference_update((pipe.src, pipe.dst))
        if last:
            for sock in (pipe.src, pipe.dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    @staticmethod
    def _put(pipe: _Pipe, item: tuple[float, bytes] | None) -> bool:
        """Queue ``item`` unless the writer is gone; return False if it is."""
        while not pipe.dead.is_set():
            try:
                pipe.chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, pipe: _Pipe, not_before: float) -> None:
        link = self.links[pipe.direction]
        try:
            while True:
                data = pipe.src.recv(CHUNK)
                if not data:
                    break
                due = link.deliver_at(self._clock(), len(data), not_before=not_before)
                if not self._put(pipe, (due, data)):
                    return
        except OSError:
            pass
        self._put(pipe, None)  # end of stream: the writer half-closes after the data

    def _write(self, pipe: _Pipe, pending: list[int]) -> None:
        try:
            while (item := pipe.chunks.get()) is not None:
                due, data = item
                wait = due - self._clock()
                if wait > 0 and self._stopping.wait(wait):
                    break
                pipe.dst.sendall(data)
                with self._lock:
                    self._bytes[pipe.direction] += len(data)
            else:
                with contextlib.suppress(OSError):
                    pipe.dst.shutdown(socket.SHUT_WR)
        except OSError:
            # The other side is gone: stop both directions of this connection.
            with contextlib.suppress(OSError):
                pipe.src.shutdown(socket.SHUT_RDWR)
        finally:
            pipe.dead.set()
            self._finish(pipe, pending)
