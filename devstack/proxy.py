"""A fault-injecting HTTP proxy for tests, placed between listing-sync and PostgREST.

It forwards every request to the upstream (keep-alive towards the client,
``Content-Length`` bodies), records each request it saw, and answers the ones a
queued fault matches with a 5xx/4xx, a dropped connection, a slow answer, or a
lost answer::

    with FaultProxy(stack.postgrest_url) as proxy:
        proxy.fail(1, status=503, retry_after="1", method="POST", path="/property_listings")
        run_cli("sync", "all", env={"POSTGREST_URL": proxy.url})
        assert 3 == proxy.count("POST", "/property_listings")

Faults match on method and exact path (query excluded); ``skip`` lets the first
``skip`` matching requests pass that fault; ``n=None`` fails every match until
cleared. The first queued fault that matches (and is not skipping) wins.

The two faults that make an outcome unknown to the client: ``lose_answer`` forwards
the request (the write happens) and closes the connection without the answer;
``hold`` keeps the request while the client times out and retries, until the test
calls ``release()``, then forwards it: the write lands late, at a moment the test
chooses (``slow`` does the same after a fixed delay).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devstack._util import BackgroundServer

# Not forwarded in either direction (RFC 9110 section 7.6.1), plus the framing
# headers the proxy rewrites itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }
)

# What PostgREST 12 answers in these cases (error body shape: code/message/details/hint).
DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("22P02", 'invalid input syntax for type bigint: "abc"'),
    500: ("40001", "could not serialize access due to concurrent update"),
    503: ("PGRST001", "Database client error. Retrying the connection."),
    504: ("PGRST003", "Timed out acquiring connection from connection pool."),
}


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy received."""

    method: str
    path: str  # without the query string
    query: str
    time: float  # time.time() when it arrived
    outcome: str  # "forwarded", "status 503", "dropped", "partial", "slow", "lost", "held"


@dataclass
class _Fault:
    kind: str  # "status" | "dropped" | "partial" | "slow" | "lost" | "held"
    method: str | None
    path: str | None
    skip: int
    remaining: int | None
    status: int = 0
    body: bytes = b""
    retry_after: str | None = None
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path == path
        )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says otherwise
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _proxy(self) -> None:
        self.server.proxy._handle(self)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _proxy


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        super().__init__(address, _Handler)
        self.proxy = proxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up is part of the tests, not an error


class FaultProxy(BackgroundServer):
    """Forward HTTP to ``upstream`` on a loopback port, injecting queued faults."""

    server_class = _Server
    thread_name = "fault-proxy"

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_prefix = parts.path.rstrip("/")
        self._init_server(host, port)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._faults: list[_Fault] = []
        self._released = threading.Event()
        self._requests: list[ProxiedRequest] = []

    # -- faults ----------------------------------------------------------------------
    def fail(
        self,
        n: int | None = 1,
        *,
        status: int = 503,
        code: str | None = None,
        message: str | None = None,
        retry_after: str | None = None,
        method: str | None = None,
        path: str | None = None,
        skip: int = 0,
    ) -> None:
        """Answer ``n`` matching requests with ``status`` and a PostgREST error body."""
        default_code, default_message = DEFAULT_ERRORS.get(status, (f"HTTP{status}", "error"))
        body = json.dumps(
            {
                "code": code or default_code,
                "message": message or default_message,
                "details": None,
                "hint": None,
            }
        ).encode()
        self._add(
            _Fault(
                "status", method, path, skip, n, status=status, body=body, retry_after=retry_after
            )
        )

    def drop(
        self,
        n: int | None = 1,
        *,
        partial: bool = False,
        method: str | None = None,
        path: str | None = None,
        skip: int = 0,
    ) -> None:
        """Read ``n`` matching requests, then close the connection without an answer.

        With ``partial``, send the start of a status line and headers first.
        """
        self._add(_Fault("partial" if partial else "dropped", method, path, skip, n))

    def lose_answer(
        self,
        n: int | None = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        skip: int = 0,
    ) -> None:
        """Forward ``n`` matching requests, then close the connection without the answer.

        The upstream did the work (a write is committed); the client sees a
        connection error and cannot tell whether it happened.
        """
        self._add(_Fault("lost", method, path, skip, n))

    def slow(
        self,
        n: int | None = 1,
        *,
        seconds: float,
        method: str | None = None,
        path: str | None = None,
        skip: int = 0,
    ) -> None:
        """Wait ``seconds`` before forwarding ``n`` matching requests (they still happen).

        With ``seconds`` past the client's timeout, the request is held while the
        client gives up and retries, and then executed late.
        """
        self._add(_Fault("slow", method, path, skip, n, seconds=seconds))

    def hold(
        self,
        n: int | None = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        skip: int = 0,
        seconds: float = 30.0,
    ) -> None:
        """Hold ``n`` matching requests until ``release()`` (at most ``seconds``), then forward.

        Past the client's timeout, the client gives up and retries; the held request
        still reaches the upstream afterwards, as a late write.
        """
        self._released.clear()
        self._add(_Fault("held", method, path, skip, n, seconds=seconds))

    def release(self) -> None:
        """Let every held request go on to the upstream."""
        self._released.set()

    def clear_faults(self) -> None:
        """Forward everything from now on."""
        with self._lock:
            self._faults.clear()

    def _add(self, fault: _Fault) -> None:
        if fault.remaining is not None and fault.remaining < 1:
            raise ValueError("n must be at least 1 (or None for every request)")
        with self._lock:
            self._faults.append(fault)

    def _take(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            chosen = None
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                chosen = fault
                if fault.remaining is not None:
                    fault.remaining -= 1
                break
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
            return chosen

    # -- inspection --------------------------------------------------------------------
    @property
    def requests(self) -> list[ProxiedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many requests with this method and exact path (None: any) arrived."""
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            )

    def reset_counts(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled (a slow one may still be forwarding)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    # -- request handling --------------------------------------------------------------
    def _handle(self, handler: _Handler) -> None:
        with self._busy():
            arrived = time.time()
            method = handler.command
            path, _, query = handler.path.partition("?")
            length = int(handler.headers.get("Content-Length") or 0)
            body = handler.rfile.read(length) if length > 0 else b""
            fault = self._take(method, path)
            outcome = "forwarded"
            if fault is not None:
                outcome = f"status {fault.status}" if fault.kind == "status" else fault.kind
            with self._lock:
                self._requests.append(ProxiedRequest(method, path, query, arrived, outcome))

            if fault is not None and fault.kind in ("dropped", "partial"):
                handler.close_connection = True
                if fault.kind == "partial":
                    _write(handler, b"HTTP/1.1 200 OK\r\nContent-Type: applicat")
                return
            if fault is not None and fault.kind == "status":
                headers = [("Content-Type", "application/json; charset=utf-8")]
                if fault.retry_after is not None:
                    headers.append(("Retry-After", fault.retry_after))
                _respond(handler, fault.status, headers, fault.body)
                return
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.seconds)
            if fault is not None and fault.kind == "held":
                self._released.wait(fault.seconds)
            self._forward(
                handler, method, body, lose_answer=fault is not None and fault.kind == "lost"
            )

    def _forward(
        self, handler: _Handler, method: str, body: bytes, *, lose_answer: bool = False
    ) -> None:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        if body or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            target = self.upstream_prefix + handler.path
            upstream.request(method, target, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            status = response.status
            out = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        except (OSError, http.client.HTTPException) as exc:
            status, out = 502, [("Content-Type", "text/plain")]
            payload = f"fault proxy: upstream failed: {exc}".encode()
        finally:
            upstream.close()
        if lose_answer:
            handler.close_connection = True
            return
        if method == "HEAD":
            payload = b""
        _respond(handler, status, out, payload)


def _respond(
    handler: _Handler, status: int, headers: list[tuple[str, str]], payload: bytes
) -> None:
    reason = http.client.responses.get(status, "Unknown")
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    if status not in (204, 304) and not 100 <= status < 200:
        lines.append(f"Content-Length: {len(payload)}")
    else:
        payload = b""
    if handler.close_connection:
        lines.append("Connection: close")
    _write(handler, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)


def _write(handler: _Handler, data: bytes) -> None:
    try:
        handler.wfile.write(data)
        handler.wfile.flush()
    except OSError:
        handler.close_connection = True  # the client gave up (e.g. its timeout)
