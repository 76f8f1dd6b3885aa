"""One sync run as cron sees it, around the pipeline in ``sync.py``.

The run lock, the run's budget, the healthchecks-style pings at the start and
the end, and the Prometheus metrics file. The CLI wraps this with signal
handling, progress drawing and output; nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import mapping, notify, runtime
from .config import Settings
from .errors import EXIT_OK, EXIT_SOFTWARE, EXIT_TEMPFAIL, ListingSyncError
from .state import SyncStateStore
from .sync import Progress, SyncDeps, SyncReport, SyncRequest, run_sync


@dataclass(frozen=True)
class Reporting:
    """How the run's outcome is put into words for pings (supplied by the CLI)."""

    describe: Callable[[SyncReport], str]  # the few lines cron would mail
    scrub: Callable[[str], str]  # removes secrets from any text leaving the process


def build_deps(settings: Settings, stop: runtime.StopFlag) -> tuple[SyncDeps, list]:
    """Wire the pipeline's dependencies; return them and every guard the run uses."""
    guards = runtime.guards(settings, stop=stop)
    client = runtime.postgrest_client(settings, guards["postgrest"])
    # A SIGTERM stops sync_state writes too, except the run's outcome: that one
    # skips the stop check (same breaker, rate limit and budget).
    outcome_guard = runtime.unstoppable(guards["postgrest"])
    state = SyncStateStore(client, outcome_client=runtime.postgrest_client(settings, outcome_guard))
    deps = SyncDeps(
        client=client,
        state=state,
        source=runtime.sheets_reader(settings, guards["sheets"]),
        aliases=mapping.load_aliases(settings.mapping_file),
        batch_size=settings.batch_size,
        batch_max_bytes=settings.batch_max_bytes,
        max_remove_fraction=settings.max_remove_fraction,
    )
    return deps, [*guards.values(), outcome_guard]


def execute(
    settings: Settings,
    request: SyncRequest,
    *,
    stop: runtime.StopFlag,
    progress: Progress,
    reporting: Reporting,
    wait: float | None = None,
    metrics_file: Path | None = None,
) -> SyncReport:
    """Run one sync (or dry run) under the run lock, with pings and metrics.

    Raises the pipeline's errors unchanged, after the monitor has heard how
    the run ended. A dry run takes no lock, sends no ping and writes no metrics.
    """
    deps, guards = build_deps(settings, stop)
    if request.dry_run:
        return run_sync(deps, request, progress)

    metrics_path = metrics_file or settings.metrics_file
    lock = runtime.run_lock(settings)
    # A SIGTERM while waiting (--wait) ends the wait: exit 75, nothing started.
    lock.acquire(wait=wait, sleep=stop.sleep_or_raise)
    try:
        runtime.start_budget(settings, *guards)
        notify.ping(settings.ping_url, "start")
        try:
            report = run_sync(deps, request, progress)
        except (Exception, KeyboardInterrupt) as exc:
            # Also for a crash: the monitor must hear how the started run ended.
            code = _exit_code_of(exc)
            notify.ping(settings.ping_url, str(code), body=reporting.scrub(str(exc)))
            if metrics_path:
                write_metrics(settings, metrics_path, request, None, code)
            raise
    finally:
        lock.release()
    if metrics_path:
        write_metrics(settings, metrics_path, request, report, report.exit_code)
    event = "success" if report.exit_code == EXIT_OK else str(report.exit_code)
    notify.ping(settings.ping_url, event, body=reporting.scrub(reporting.describe(report)))
    return report


def _exit_code_of(exc: BaseException) -> int:
    if isinstance(exc, ListingSyncError):
        return exc.exit_code
    return EXIT_TEMPFAIL if isinstance(exc, KeyboardInterrupt) else EXIT_SOFTWARE


def breaker_states(settings: Settings) -> dict[str, str]:
    """Return each dependency's breaker state as kept in the state directory."""
    return {name: b.state().state for name, b in runtime.breakers(settings).items()}


def write_metrics(
    settings: Settings,
    path: Path,
    request: SyncRequest,
    report: SyncReport | None,
    exit_code: int,
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
    )
    notify.write_metrics(path, run, breaker_states(settings))
