"""Small helpers shared by the devstack modules."""

from __future__ import annotations

import socket
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent


class StackError(RuntimeError):
    """A part of the local stack could not be started or used."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, max_chars: int = 4000) -> str:
    """Return the end of a log file (or a note that it is missing)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    if len(text) > max_chars:
        text = "...\n" + text[-max_chars:]
    return text.strip() or "(log is empty)"


class BackgroundServer:
    """An HTTP server of ours served from a daemon thread (start/stop, context manager).

    Subclasses set ``server_class`` (built as ``server_class((host, port), self)``)
    and ``thread_name``, and call ``_init_server(host, port)`` in ``__init__``.
    """

    server_class: type[ThreadingHTTPServer]
    thread_name = "server"

    def _init_server(self, host: str, port: int) -> None:
        self.host = host
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind and serve in a daemon thread; return self."""
        if self._httpd is None:
            self._httpd = self.server_class((self.host, self._port), self)  # type: ignore[call-arg]
            self._port = int(self._httpd.server_address[1])
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"{self.thread_name}:{self._port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after start())."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def url(self) -> str:
        """The server's base URL (after start())."""
        return f"http://{self.host}:{self.port}"
