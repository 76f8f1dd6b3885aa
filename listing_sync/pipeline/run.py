"""One run: its ``sync_state`` lifecycle around reading, planning and writing.

queued -> in_progress -> completed | partial | failed. A run reads the whole
sheet and decides everything (the plan) before it writes anything: a sheet that
cannot be read to the end, a duplicate key, or a mass removal stops the run with
nothing written. Only then are the new and changed rows upserted in batches,
and listings that left the sheet marked removed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_SOFTWARE,
    ConfigError,
    ListingSyncError,
)
from ..listings import ListingsStore, StoredListing
from ..mapping import load_aliases
from ..state import MAX_ERROR_DETAILS, SyncStateStore
from ..timeutil import iso, utcnow
from ..workers import Background
from . import convert
from .plan import (
    Plan,
    SyncRequest,
    SyncType,
    describe_changes,
    failed_rows,
    make_plan,
    stored_numbers,
)
from .progress import NoProgress, Progress
from .read import OpenedSheet, SheetReading, SheetSource, read_listings
from .write import WriteResult, mark_removed, write_rows

if TYPE_CHECKING:
    from ..rows import RowProblem
    from ..sheets import SheetData

log = logging.getLogger("listing_sync")


@dataclass
class SyncReport:
    """The outcome of one run, as shown by the CLI and stored in sync_state."""

    sync_type: SyncType
    dry_run: bool
    sync_id: str | None = None
    status: str = "in_progress"
    started_at: datetime = field(default_factory=utcnow)
    completed_at: datetime | None = None
    total: int = 0
    success: int = 0
    failed: int = 0
    skipped: int = 0
    removed: int = 0
    not_found: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # see Plan.notices
    error: str | None = None
    exit_code: int = EXIT_OK
    state_recorded: bool = True
    plan: Plan | None = None

    @property
    def duration(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()

    def error_details(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.problems[:MAX_ERROR_DETAILS]]


@dataclass
class SyncDeps:
    """What a run talks to, and the settings the pipeline reads."""

    listings: ListingsStore
    state: SyncStateStore
    source: SheetSource
    aliases: dict[str, str]
    batch_size: int
    batch_max_bytes: int
    max_remove_fraction: float
    concurrency: int = 1
    # Read again once the table's own columns are known (``aliases`` then checked
    # against them): an alias may name a column the office added.
    mapping_file: Path | None = None


def _aliases(deps: SyncDeps) -> dict[str, str]:
    """Read the table's columns (the built-in ones and those the office added), then
    check the mapping against them: an alias to a column the table lacks is a setting."""
    table = deps.listings.discover()
    return load_aliases(deps.mapping_file, table) if deps.mapping_file else deps.aliases


def _plan(
    deps: SyncDeps,
    request: SyncRequest,
    source: SheetSource | SheetReading,
    progress: Progress,
    aliases: dict[str, str],
    stored: Background[dict[str, StoredListing]],
) -> Plan:
    return make_plan(
        request,
        source,
        deps.listings,
        aliases=aliases,
        max_remove_fraction=deps.max_remove_fraction,
        progress=progress,
        read_stored=stored.result,
    )


# Listings the table holds, at least, for helper processes to be started while the sheet
# is opened: a re-sync of a sheet this large hands most of its responses to them.
EARLY_HELPERS_AT = 20_000


def _read_table(
    deps: SyncDeps, request: SyncRequest, early: convert.Early | None = None
) -> Background[dict[str, StoredListing]]:
    """Start reading the table's keys and hashes while the sheet is opened and the run set up.

    At 60 ms from Supabase and Google, opening the sheet and recording the run wait
    on about ten round trips one after another; the table's read needs none of them.
    Once it says the table is large, ``early`` helpers are started.
    """
    numbers = stored_numbers(request)
    count = convert.helper_count()

    def on_count(total: int) -> None:
        if early is not None and count > 0 and total >= EARLY_HELPERS_AT:
            early.start(count)

    return Background(
        lambda: deps.listings.stored(numbers, on_count=on_count), name="listing-sync-table"
    )


def run_sync(deps: SyncDeps, request: SyncRequest, progress: Progress | None = None) -> SyncReport:
    """Run one sync (or a dry run) and return its report.

    Raises ListingSyncError for a run that could not finish; the run is then
    recorded as failed in sync_state (unless it is a dry run).
    """
    progress = progress or NoProgress()
    report = SyncReport(sync_type=request.sync_type, dry_run=request.dry_run)
    if request.dry_run:
        plan = _plan(
            deps, request, deps.source, progress, _aliases(deps), _read_table(deps, request)
        )
        describe_changes(deps.listings, plan)
        _fill_from_plan(report, plan)
        report.status = "dry_run"
        report.completed_at = utcnow()
        report.exit_code = EXIT_PARTIAL if (report.problems or report.not_found) else EXIT_OK
        return report

    # First a PostgREST call, so an open postgrest breaker stops the run before it spends
    # any Sheets quota.
    abandoned = deps.state.abandon_running(
        "the run ended without recording an outcome: its process was killed, or sync_state "
        "could not be written at the end"
    )
    if abandoned:
        log.warning(
            "marked %d unfinished run(s) abandoned: %s", len(abandoned), ", ".join(abandoned)
        )
    # The sheet opens (its tabs, then its header: two round trips to Google after the
    # token) while the table's columns are read.
    opening = Background(deps.source.read, name="listing-sync-open")
    aliases = _aliases(deps)
    spare = convert.Early()
    try:
        return _read_and_sync(deps, request, progress, report, opening, aliases, spare)
    finally:
        spare.close()


def _read_and_sync(
    deps: SyncDeps,
    request: SyncRequest,
    progress: Progress,
    report: SyncReport,
    opening: Background[Sequence[SheetData]],
    aliases: dict[str, str],
    spare: convert.Early,
) -> SyncReport:
    """Read the table while the sheet opens, then record the run, plan and write."""
    stored = _read_table(deps, request, spare)
    # Open the sheet (tabs, header) before creating the run: a wrong SYNC_SHEET_NAME or
    # SYNC_SPREADSHEET_ID is a bad setting, which records nothing, not even a failed run.
    # Any other failure here (Sheets unreachable...) is recorded as this run's outcome.
    reading: SheetReading | None = None
    early: Exception | None = None
    try:
        opened = OpenedSheet(opening.result())
    except ConfigError:
        raise
    except Exception as exc:
        early = exc
    else:
        # The rows are fetched from here on, while the run is recorded (two round trips).
        # A header the plan refuses is refused after that, as a recorded run.
        try:
            reading = read_listings(opened, aliases, progress, deps.listings.table)
            reading.early = spare
        except Exception as exc:
            early = exc
    try:
        return _record_and_sync(deps, request, progress, report, aliases, reading, early, stored)
    finally:
        if reading is not None:
            reading.close()


def _record_and_sync(
    deps: SyncDeps,
    request: SyncRequest,
    progress: Progress,
    report: SyncReport,
    aliases: dict[str, str],
    reading: SheetReading | None,
    early: Exception | None,
    stored: Background[dict[str, StoredListing]],
) -> SyncReport:
    """Create the run's sync_state record, plan, write, and record the outcome."""
    report.sync_id = deps.state.create(request.sync_type)
    report.started_at = utcnow()
    written = WriteResult()
    try:
        if not deps.state.update(report.sync_id, status="in_progress"):
            # The create was answered but no row is there (a trigger or policy on
            # sync_state swallowed it): this run could not leave a truthful record.
            raise ListingSyncError(
                f"sync_state did not keep run {report.sync_id}: check triggers and "
                "policies on sync_state; nothing was written"
            )
        if early is not None:
            raise early
        assert reading is not None
        plan = _plan(deps, request, reading, progress, aliases, stored)
        _fill_from_plan(report, plan)
        report.removed = 0  # until mark_removed has run: a failed run removed nothing
        # The total is shown by `status` while the rows are written; it goes with the
        # first upserts, not a round trip before them. With nothing to write the
        # outcome, next, records it.
        sync_id = report.sync_id
        total = (
            Background(
                lambda: deps.state.update(sync_id, total_items=report.total),
                name="listing-sync-total",
            )
            if plan.to_write
            else None
        )
        try:
            write_rows(
                deps.listings,
                plan.to_write,
                sync_id=report.sync_id,
                batch_size=deps.batch_size,
                batch_max_bytes=deps.batch_max_bytes,
                progress=progress,
                result=written,
                concurrency=deps.concurrency,
                columns=plan.write_columns,
            )
        except BaseException:
            if total is not None:
                total.wait()  # its own error, if any, is not the run's
            raise
        if total is not None:
            total.result()
        report.success = written.written
        report.problems = sorted([*report.problems, *written.problems], key=plan.problem_order)
        report.failed = failed_rows(report.problems)
        if plan.removed:
            progress.phase("marking removed")
            report.removed = mark_removed(deps.listings, plan.removed, sync_id=report.sync_id)
    except ListingSyncError as exc:
        report.success = written.written  # batches that landed before the failure
        _finish(deps, report, "failed", exc.exit_code, error=str(exc))
        raise
    except Exception as exc:
        report.success = written.written
        _finish(
            deps, report, "failed", EXIT_SOFTWARE, error=f"unexpected error: {type(exc).__name__}"
        )
        raise
    partial = report.failed > 0 or bool(report.not_found)
    _finish(
        deps, report, "partial" if partial else "completed", EXIT_PARTIAL if partial else EXIT_OK
    )
    return report


def _fill_from_plan(report: SyncReport, plan: Plan) -> None:
    report.plan = plan
    report.total = plan.total
    report.skipped = plan.unchanged
    report.problems = list(plan.problems)
    report.failed = failed_rows(plan.problems)
    report.not_found = list(plan.not_found)
    report.warnings = list(plan.warnings)
    report.notices = list(plan.notices)
    report.removed = len(plan.removed)


def _finish(
    deps: SyncDeps, report: SyncReport, status: str, exit_code: int, *, error: str | None = None
) -> None:
    """Record the run's outcome; a failure to record never changes the outcome."""
    report.status = status
    report.exit_code = exit_code
    report.error = error
    report.completed_at = utcnow()
    if report.sync_id is None:
        return
    try:
        deps.state.record_outcome(
            report.sync_id,
            status=status,
            completed_at=iso(report.completed_at),
            total_items=report.total,
            success_count=report.success,
            failed_count=report.failed,
            skipped_count=report.skipped,
            removed_count=report.removed,
            not_found_count=len(report.not_found),
            not_found=report.not_found[:MAX_ERROR_DETAILS] or None,
            error_details=report.error_details() or None,
            error_message=error,
            exit_code=exit_code,
        )
    except ListingSyncError as exc:
        report.state_recorded = False
        log.error("could not record the outcome of run %s in sync_state: %s", report.sync_id, exc)
