"""Local stand-ins for a healthchecks.io-style ping endpoint (loopback only)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PingRecorder:
    """An HTTP server on 127.0.0.1 that answers 200 and records every request."""

    def __init__(self, status: int = 200, *, hold_path: str | None = None) -> None:
        self.status = status
        # A request to ``hold_path`` is recorded, then left unanswered until
        # ``release()`` (at most 30 s): the sender is caught in the middle of its ping.
        self.hold_path = hold_path
        self._released = threading.Event()
        self.requests: list[tuple[str, str, str]] = []  # (method, path, body)
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                with recorder._lock:
                    recorder.requests.append((self.command, self.path, body))
                if self.path == recorder.hold_path:
                    recorder._released.wait(30)
                self.send_response(recorder.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = do_HEAD = _record

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        """The base ping URL (``/ping/check-uuid`` on this server)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/ping/check-uuid"

    def paths(self) -> list[str]:
        """The paths pinged so far, in order."""
        with self._lock:
            return [path for _, path, _ in self.requests]

    def release(self) -> None:
        """Answer the held requests, and every later one at once."""
        self._released.set()

    def __enter__(self) -> PingRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def hanging_server() -> Iterator[str]:
    """Yield a URL whose server accepts connections but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # the kernel completes the handshakes; nobody ever reads
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/ping/check-uuid"
    finally:
        sock.close()


def closed_port_url() -> str:
    """Return a loopback URL on a port nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/ping/check-uuid"
