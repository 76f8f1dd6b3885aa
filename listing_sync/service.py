"""What each command does, below the CLI: runs, run records and breakers.

``execute`` is one sync as cron sees it: the run lock, the run's budget, the
healthchecks-style pings at the start and the end, and the Prometheus metrics
file around the pipeline. ``show_run``/``recent_runs`` read ``sync_state``;
``breaker_rows``/``reset_breakers`` read and reset the local breaker files.
Nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import notify, wiring
from .config import Settings
from .errors import EXIT_OK, EXIT_SOFTWARE, EXIT_TEMPFAIL, ListingSyncError, UsageError
from .pipeline.plan import SyncRequest
from .pipeline.progress import Progress
from .pipeline.run import SyncReport, run_sync


@dataclass(frozen=True)
class Reporting:
    """How the run's outcome is put into words for pings (supplied by the CLI)."""

    describe: Callable[[SyncReport], str]  # the few lines cron would mail
    scrub: Callable[[str], str]  # removes secrets from any text leaving the process


def execute(
    settings: Settings,
    request: SyncRequest,
    *,
    stop: wiring.StopFlag,
    progress: Progress,
    reporting: Reporting,
    wait: float | None = None,
    metrics_file: Path | None = None,
) -> SyncReport:
    """Run one sync (or dry run) under the run lock, with pings and metrics.

    Raises the pipeline's errors unchanged, after the monitor has heard how
    the run ended. A dry run takes no lock, sends no ping and writes no metrics.
    """
    with wiring.open_runtime(settings, stop=stop) as runtime:
        deps = runtime.sync_deps()
        if request.dry_run:
            return run_sync(deps, request, progress)

        metrics_path = metrics_file or settings.metrics_file
        lock = wiring.run_lock(settings)
        # A SIGTERM while waiting (--wait) ends the wait: exit 75, nothing started.
        lock.acquire(wait=wait, sleep=stop.sleep_or_raise)
        try:
            runtime.start_budget()
            notify.ping(settings.ping_url, "start")
            try:
                try:
                    report = run_sync(deps, request, progress)
                finally:
                    stop.settle()  # the outcome is recorded: later signals change nothing
            except (Exception, KeyboardInterrupt) as exc:
                # Also for a crash: the monitor must hear how the started run ended.
                code = _exit_code_of(exc)
                notify.ping(settings.ping_url, str(code), body=reporting.scrub(str(exc)))
                if metrics_path:
                    write_metrics(settings, metrics_path, request, None, code, _retries(runtime))
                raise
        finally:
            lock.release()
        retries = _retries(runtime)
    if metrics_path:
        write_metrics(settings, metrics_path, request, report, report.exit_code, retries)
    event = "success" if report.exit_code == EXIT_OK else str(report.exit_code)
    notify.ping(settings.ping_url, event, body=reporting.scrub(reporting.describe(report)))
    return report


def _retries(runtime: wiring.Runtime) -> tuple[tuple[str, int], ...]:
    """Return the backoff waits of this run per dependency."""
    guards = runtime.guards
    return (
        ("postgrest", guards.postgrest.retries + runtime.outcome_guard.retries),
        ("sheets", guards.sheets.retries),
    )


def _exit_code_of(exc: BaseException) -> int:
    if isinstance(exc, ListingSyncError):
        return exc.exit_code
    return EXIT_TEMPFAIL if isinstance(exc, KeyboardInterrupt) else EXIT_SOFTWARE


def write_metrics(
    settings: Settings,
    path: Path,
    request: SyncRequest,
    report: SyncReport | None,
    exit_code: int,
    retries: tuple[tuple[str, int], ...] = (),
) -> None:
    """Write the Prometheus textfile for this run (``report`` None: it ended early)."""
    run = notify.RunMetrics(
        sync_type=request.sync_type,
        exit_code=exit_code,
        finished_at=time.time(),
        duration=report.duration if report else None,
        written=report.success if report else 0,
        failed=report.failed if report else 0,
        unchanged=report.skipped if report else 0,
        removed=report.removed if report else 0,
        not_found=len(report.not_found) if report else 0,
        success=exit_code == EXIT_OK,
        retries=retries,
        instance=settings.instance,
    )
    notify.write_metrics(path, run, breaker_states(settings))


# --- run records ---------------------------------------------------------------------


def show_run(settings: Settings, sync_id: str) -> dict[str, Any]:
    """Return one run's sync_state row, or raise NotFoundError."""
    with wiring.open_runtime(settings, probe=True) as runtime:
        return runtime.state.get(sync_id)


def recent_runs(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """Return the most recent runs, newest first."""
    with wiring.open_runtime(settings, probe=True) as runtime:
        return runtime.state.recent(limit)


# --- breakers ------------------------------------------------------------------------


def breaker_states(settings: Settings) -> dict[str, str]:
    """Return each dependency's breaker state as kept in the state directory."""
    return {name: b.state().state for name, b in wiring.breakers(settings).items()}


def breaker_rows(settings: Settings, *, now: float | None = None) -> list[dict[str, Any]]:
    """Describe each breaker: state, consecutive failures, when it lets a call through."""
    now = time.time() if now is None else now
    rows = []
    for name, breaker in wiring.breakers(settings).items():
        s = breaker.state()
        retry_at = (
            s.opened_at + breaker.timeout if s.state == "open" and s.opened_at is not None else None
        )
        rows.append(
            {
                "name": name,
                "state": s.state,
                "consecutive_failures": s.failures,
                "opened_at": s.opened_at,
                "retry_at": retry_at,
                "retry_in_seconds": max(0.0, retry_at - now) if retry_at else None,
            }
        )
    return rows


def reset_breakers(settings: Settings, name: str | None) -> list[str]:
    """Close the breaker ``name`` (every breaker when None); return the names closed."""
    breakers = wiring.breakers(settings)
    if name is not None and name not in breakers:
        raise UsageError(f"no breaker named {name!r}; breakers: {', '.join(breakers)}")
    names = [name] if name else list(breakers)
    for n in names:
        breakers[n].reset()
    return names
