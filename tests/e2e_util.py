"""Helpers for the end-to-end tests: build sheets, run the CLI with --json, read the tables."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from helpers import rest_client

from devstack import LocalStack

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]

TAB = "Listings"
HEADER = [
    "property_number",
    "property_type",
    "status",
    "address",
    "price",
    "land_area_m2",
    "building_area_m2",
    "layout",
    "nearest_station",
    "walk_minutes",
    "listed_on",
    "parking",
    "notes",
]
# No test may really sleep for a backoff, nor wait on the default 10 requests/s.
FAST_ENV = {
    "SYNC_RETRY_DELAY": "1",
    "SYNC_CIRCUIT_BREAKER_TIMEOUT": "50",
    "SYNC_RATE_LIMIT": "1000",
}


def row(number: object, **values: object) -> list[object]:
    """A data row in HEADER order: plausible defaults, overridden by ``values``."""
    cells: dict[str, object] = {
        "property_number": number,
        "property_type": "マンション",
        "status": "販売中",
        "address": f"東京都品川区戸越1丁目 {number}",
        "price": 30_000_000,
        "land_area_m2": "",
        "building_area_m2": 55.5,
        "layout": "2LDK",
        "nearest_station": "戸越駅",
        "walk_minutes": 5,
        "listed_on": "2025-01-09",
        "parking": True,
        "notes": "",
    }
    unknown = set(values) - set(cells)
    if unknown:
        raise ValueError(f"no such column: {unknown}")
    cells.update(values)
    return [cells[h] for h in HEADER]


def set_sheet(
    stack: LocalStack,
    rows: Sequence[Sequence[object]],
    header: Sequence[object] = HEADER,
    *,
    tab: str = TAB,
) -> None:
    """Replace the spreadsheet's first tab with ``header`` + ``rows``."""
    stack.sheets.set_sheet(stack.spreadsheet_id, tab, [list(header), *map(list, rows)])


def sync(
    run_cli: RunCli,
    *args: object,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run ``listing-sync ARGS --json`` fast; return the process and its parsed stdout."""
    r = run_cli(*args, "--json", env={**FAST_ENV, **(env or {})}, input=input)
    try:
        data = json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        raise AssertionError(f"stdout is not JSON:\n{r.stdout}\n{r.stderr}") from None
    return r, data


def output(r: subprocess.CompletedProcess[str]) -> str:
    """Both streams of a run, for assertion messages."""
    return f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def listings(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """Every row of property_listings (typed as PostgREST returns them), by property number."""
    with rest_client(stack) as client:
        response = client.get(
            "/property_listings", params={"select": "*", "order": "property_number"}
        )
    response.raise_for_status()
    return {r["property_number"]: r for r in response.json()}


def runs(stack: LocalStack) -> list[dict[str, Any]]:
    """Every sync_state row, oldest first."""
    with rest_client(stack) as client:
        response = client.get("/sync_state", params={"select": "*", "order": "started_at"})
    response.raise_for_status()
    return response.json()


def only_run(stack: LocalStack) -> dict[str, Any]:
    """The single sync_state row (fails if there is not exactly one)."""
    found = runs(stack)
    assert 1 == len(found), found
    return found[0]


def column(stack: LocalStack, name: str) -> dict[str, Any]:
    """{property_number: value of ``name``} for every listing."""
    return {n: r[name] for n, r in listings(stack).items()}


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def url_limit_proxy(upstream: str, limit: int = 8192) -> Iterator[dict[str, Any]]:
    """A forwarding proxy in front of PostgREST that answers 414 for URLs over ``limit``.

    Like the gateways in front of Supabase. Yields {"url": base URL, "longest": longest
    request target seen, "refused": number of 414s}.
    """
    seen: dict[str, Any] = {"longest": 0, "refused": 0}
    client = httpx.Client(base_url=upstream, timeout=30)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            seen["longest"] = max(seen["longest"], len(self.path))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if len(self.path) > limit:
                seen["refused"] += 1
                self.send_response(414)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() not in ("host", "content-length", "connection")
            }
            response = client.request(self.command, self.path, content=body, headers=headers)
            self.send_response(response.status_code)
            for k, v in response.headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_POST = do_PATCH = do_DELETE = _forward

    server = _Proxy(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        client.close()


SUMMARY_KEYS = ("status", "exit_code", "total", "success", "failed", "skipped", "removed")
RUN_KEYS = (
    "sync_type",
    "status",
    "exit_code",
    "total_items",
    "success_count",
    "failed_count",
    "skipped_count",
    "removed_count",
    "not_found_count",
)


def summary(data: Mapping[str, Any]) -> dict[str, Any]:
    """The counters of a sync's --json output."""
    return {k: data[k] for k in SUMMARY_KEYS}


def run_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    """The counters of a sync_state row."""
    return {k: run[k] for k in RUN_KEYS}


def outcome(
    status: str = "completed",
    *,
    total: int,
    success: int = 0,
    failed: int = 0,
    skipped: int = 0,
    removed: int = 0,
) -> dict[str, object]:
    """The expected summary of a run (exit code follows from the status)."""
    return {
        "status": status,
        "exit_code": {"completed": 0, "partial": 1}[status],
        "total": total,
        "success": success,
        "failed": failed,
        "skipped": skipped,
        "removed": removed,
    }


def full_sync(run_cli, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run `sync all ARGS --json`, check it exits 0, return the parsed output."""
    r, data = sync(run_cli, "sync", "all", *args, env=env)
    assert 0 == r.returncode, output(r)
    return data
