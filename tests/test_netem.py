"""bench/netem.py: the delaying proxy, against tiny local servers (no stack needed).

Timing checks are lower bounds only: a busy machine can make a request slower, never faster.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from bench.netem import Link, Netem

# Timers and the scheduler may fire a little early; never by more than this.
SLACK = 0.005


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    release = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/slow":
            self.release.wait(10)
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    _Handler.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Handler.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def echo_url() -> Iterator[str]:
    """A TCP echo server: sends back every byte, half-closes when the client does."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def _echo(url: str, payload: bytes) -> bytes:
    """Send ``payload`` through ``url`` (host:port), half-close, return all bytes echoed."""
    host, port = url.removeprefix("tcp://").split(":")
    received = bytearray()
    with socket.create_connection((host, int(port))) as sock:

        def send() -> None:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        while data := sock.recv(65536):
            received += data
        sender.join()
    return bytes(received)


@pytest.mark.parametrize(
    ("rtt_s", "mbit", "arrivals", "expected"),
    [
        # no cap: half the round trip after it arrived
        (0.02, None, [(10.0, 100, 0.0)], [10.01]),
        # not before the connection is set up
        (0.02, None, [(10.0, 100, 10.04)], [10.05]),
        # 8 Mbit/s = 1,000,000 bytes/s: chunks queue on the link one after the other
        (0.02, 8.0, [(0.0, 500_000, 0.0), (0.0, 500_000, 0.0)], [0.51, 1.01]),
        # an idle link starts a chunk when it arrives
        (0.0, 8.0, [(0.0, 1000, 0.0), (5.0, 1000, 0.0)], [0.001, 5.001]),
    ],
)
def test_link_schedule(
    rtt_s: float,
    mbit: float | None,
    arrivals: list[tuple[float, int, float]],
    expected: list[float],
) -> None:
    """A chunk is delivered RTT/2 after it arrived, after set-up, after the link is free."""
    link = Link(rtt_s, mbit)
    actual = [link.deliver_at(now, n, not_before=nb) for now, n, nb in arrivals]
    assert expected == pytest.approx(actual)


def test_new_connection_takes_three_round_trips_then_one_per_request(http_url: str) -> None:
    """The first request pays TCP + TLS set-up (3 RTT), the next ones on it 1 RTT."""
    rtt = 0.05
    with Netem(http_url, rtt_ms=rtt * 1000) as proxy, httpx.Client(base_url=proxy.url) as client:
        began = time.monotonic()
        first = client.get("/one")
        first_s = time.monotonic() - began
        began = time.monotonic()
        second = client.get("/two")
        second_s = time.monotonic() - began
        connections = proxy.connections
    assert (200, b"/one", 200, b"/two") == (
        first.status_code,
        first.content,
        second.status_code,
        second.content,
    )
    assert first_s >= 3 * rtt - SLACK, first_s
    assert second_s >= rtt - SLACK, second_s
    assert 1 == connections  # keep-alive passed through


def test_bytes_pass_unchanged_and_are_counted(echo_url: str) -> None:
    """Every byte arrives once, in order, in both directions; the counters say how many."""
    payload = os.urandom(300_000)
    with Netem(echo_url, rtt_ms=2) as proxy:
        echoed = _echo(proxy.url, payload)
        counted = proxy.traffic()
    assert payload == echoed
    assert {"up": len(payload), "down": len(payload)} == counted


def test_bandwidth_cap_bounds_throughput(echo_url: str) -> None:
    """500 KB at 8 Mbit/s needs at least half a second on the link."""
    payload = os.urandom(500_000)
    with Netem(echo_url, rtt_ms=0, bandwidth_mbit=8) as proxy:
        began = time.monotonic()
        echoed = _echo(proxy.url, payload)
        seconds = time.monotonic() - began
    assert payload == echoed
    assert seconds >= 0.5 - SLACK, seconds


def test_bandwidth_is_shared_by_all_connections(echo_url: str) -> None:
    """Two connections sending 250 KB each at 8 Mbit/s take as long as one sending 500 KB."""
    payloads = [os.urandom(250_000), os.urandom(250_000)]
    results: list[bytes] = []
    with Netem(echo_url, rtt_ms=0, bandwidth_mbit=8) as proxy:
        began = time.monotonic()
        threads = [
            threading.Thread(target=lambda p=p: results.append(_echo(proxy.url, p)))
            for p in payloads
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - began
    assert sorted(payloads) == sorted(results)
    assert seconds >= 0.5 - SLACK, seconds


def test_concurrent_connections_are_delayed_independently(http_url: str) -> None:
    """A request whose answer is held up does not hold up a request on another connection."""
    slow: list[httpx.Response] = []
    with Netem(http_url, rtt_ms=10) as proxy:
        waiting = threading.Thread(target=lambda: slow.append(httpx.get(proxy.url + "/slow")))
        waiting.start()
        fast = httpx.get(proxy.url + "/fast", timeout=5)
        slow_done_first = bool(slow)
        _Handler.release.set()
        waiting.join()
    assert (200, b"/fast") == (fast.status_code, fast.content)
    assert not slow_done_first
    assert (200, b"/slow") == (slow[0].status_code, slow[0].content)


def test_stop_closes_everything(http_url: str) -> None:
    """stop() ends its threads, even with a kept-alive connection open, and frees the port."""
    proxy = Netem(http_url, rtt_ms=1).start()
    port = int(proxy.url.rsplit(":", 1)[1])
    with httpx.Client(base_url=proxy.url) as client:
        assert 200 == client.get("/x").status_code
        proxy.stop()
        alive = [t.name for t in threading.enumerate() if t.name.startswith("netem-")]
    assert [] == alive
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_upstream_must_be_loopback() -> None:
    """The proxy refuses to forward anywhere but this machine."""
    with pytest.raises(ValueError, match="loopback only"):
        Netem("http://192.0.2.1:80", rtt_ms=1)


def test_upstream_path_is_kept_in_the_proxy_url(http_url: str) -> None:
    """A base URL with a path (PostgREST behind /rest/v1) keeps its path behind the proxy."""
    with Netem(http_url + "/rest/v1/", rtt_ms=0) as proxy:
        url = proxy.url
    assert url.startswith("http://127.0.0.1:") and url.endswith("/rest/v1")
