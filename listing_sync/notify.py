"""Tell the outside world how a run went: Prometheus textfile metrics and pings.

Neither may change a run's result: a failed ping or metrics write is logged
and forgotten.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .fsutil import atomic_write

log = logging.getLogger("listing_sync")

PING_TIMEOUT = 3.0  # seconds: a monitoring hiccup must not hold up the cron job
PREFIX = "listing_sync"
BREAKER_STATES = ("closed", "open", "half_open")
_LAST_SUCCESS = re.compile(
    rf"^{PREFIX}_last_success_timestamp_seconds(?:\{{[^}}]*\}})?\s+([0-9.eE+-]+)\s*$", re.M
)


@dataclass(frozen=True)
class RunMetrics:
    """The numbers one run exposes."""

    sync_type: str
    exit_code: int
    finished_at: float  # wall clock
    duration: float | None
    written: int = 0
    failed: int = 0
    unchanged: int = 0
    removed: int = 0
    not_found: int = 0
    success: bool = False
    retries: tuple[tuple[str, int], ...] = ()  # (dependency, backoff waits) this run
    instance: str | None = None  # SYNC_INSTANCE: which office's sync on a shared host


def previous_last_success(path: Path) -> float | None:
    """Read the last-success timestamp an earlier run left in the metrics file."""
    try:
        match = _LAST_SUCCESS.search(path.read_text(encoding="utf-8"))
    except OSError:
        return None
    return float(match.group(1)) if match else None


def render_metrics(run: RunMetrics, breakers: dict[str, str], last_success: float | None) -> str:
    """Return the Prometheus text exposition for ``run``."""
    lines: list[str] = []
    # Offices on one host write one file each; the collector merges them, so every
    # series carries its office (a "sync_instance" label: Prometheus owns "instance").
    own = f'sync_instance="{run.instance}"' if run.instance else ""

    def with_instance(labels: str) -> str:
        if not own:
            return labels
        return "{" + own + ("," + labels[1:-1] if labels else "") + "}"

    def gauge(name: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {PREFIX}_{name} {help_}")
        lines.append(f"# TYPE {PREFIX}_{name} gauge")
        for bare, value in samples:
            labels = with_instance(bare)
            lines.append(
                f"{PREFIX}_{name}{labels} {value:g}"
                if isinstance(value, int)
                else f"{PREFIX}_{name}{labels} {value:.3f}"
            )

    kind = f'{{sync_type="{run.sync_type}"}}'
    gauge(
        "last_run_timestamp_seconds",
        "When the last sync finished (Unix time).",
        [(kind, run.finished_at)],
    )
    if last_success is not None:
        gauge(
            "last_success_timestamp_seconds",
            "When a sync last finished with every row written (Unix time).",
            [("", last_success)],
        )
    if run.duration is not None:
        gauge("last_run_duration_seconds", "How long the last sync took.", [(kind, run.duration)])
    gauge(
        "last_run_rows",
        "Rows of the last sync by result.",
        [
            (f'{{result="{result}"}}', value)
            for result, value in (
                ("written", run.written),
                ("failed", run.failed),
                ("unchanged", run.unchanged),
                ("removed", run.removed),
                ("not_found", run.not_found),
            )
        ],
    )
    gauge("last_exit_code", "Exit code of the last sync.", [("", run.exit_code)])
    if run.retries:
        # Retries that recovered print nothing (cron mails stderr): they are counted here.
        gauge(
            "last_run_retries",
            "Retries of failed requests during the last sync, by dependency.",
            [(f'{{dependency="{name}"}}', count) for name, count in run.retries],
        )
    gauge(
        "circuit_breaker_open",
        "1 when the dependency's circuit breaker is not closed.",
        [
            (f'{{dependency="{name}"}}', int(state != "closed"))
            for name, state in sorted(breakers.items())
        ],
    )
    # One series per possible state (the enum pattern), so no series appears or
    # vanishes when a breaker changes state.
    gauge(
        "circuit_breaker_state",
        "1 for the state each dependency's circuit breaker is in.",
        [
            (f'{{dependency="{name}",state="{option}"}}', int(state == option))
            for name, state in sorted(breakers.items())
            for option in BREAKER_STATES
        ],
    )
    return "\n".join(lines) + "\n"


def write_metrics(path: Path, run: RunMetrics, breakers: dict[str, str]) -> None:
    """Write the metrics file atomically for node_exporter's textfile collector."""
    last_success = run.finished_at if run.success else previous_last_success(path)
    try:
        atomic_write(path, render_metrics(run, breakers, last_success).encode(), mode=0o644)
    except OSError as exc:
        log.warning("could not write metrics file %s: %s", path, exc.strerror or exc)


def ping(url: str | None, event: str, *, body: str = "", timeout: float = PING_TIMEOUT) -> None:
    """Send a healthchecks.io-style ping: event is "start", "success" or an exit code."""
    if not url:
        return
    import httpx

    base = url.rstrip("/")
    target = {"start": f"{base}/start", "success": base}.get(event, f"{base}/{event}")
    started = time.monotonic()
    try:
        response = httpx.post(target, content=body.encode()[:10_000], timeout=timeout)
    except Exception as exc:  # whatever goes wrong, the sync's own result stands
        log.warning(
            "ping %s failed after %.1fs (%s); the sync result is unaffected",
            event,
            time.monotonic() - started,
            type(exc).__name__,
        )
        return
    if response.status_code >= 400:
        log.warning(
            "ping %s was answered %d; check SYNC_PING_URL (the sync result is unaffected)",
            event,
            response.status_code,
        )
