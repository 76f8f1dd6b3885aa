"""The pipeline: sheet -> rows -> validated listings -> plan -> batches -> PostgREST.

A run reads the whole sheet and decides everything (the plan) before it writes
anything: a sheet that cannot be read to the end, a duplicate key, or a mass
removal stops the run with nothing written. Only then are the new and changed
rows upserted in batches, and listings that left the sheet marked removed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from . import mapping
from .errors import (
    EXIT_OK,
    EXIT_PARTIAL,
    ConfigError,
    DataError,
    ListingSyncError,
    PermanentError,
)
from .postgrest import PostgrestClient, in_filters
from .state import LISTINGS, MAX_ERROR_DETAILS, SyncStateStore, iso, utcnow

if TYPE_CHECKING:
    # Imported where a row is validated: pydantic costs 0.1 s of a run that validates none.
    from .models import RowProblem

log = logging.getLogger("listing_sync")

KEY = "property_number"
SyncType = Literal["full", "selective"]
# Columns written on every upsert besides the sheet-fed ones.
BOOKKEEPING = ("content_hash", "source_hash", "synced_at", "removed_at", "last_sync_id")
WRITE_COLUMNS = (*mapping.COLUMNS, "extra", *BOOKKEEPING)
# The most the bookkeeping columns spliced into one row's JSON at write time can add.
BOOKKEEPING_BYTES = 270


class SheetSource(Protocol):
    """What the pipeline needs from the sheet (``sheets.SheetsReader`` in production)."""

    def read(self) -> tuple[str, list[Any], Iterator[tuple[int, list[Any]]]]:
        """Return (tab title, header cells, iterator of (row number, cells))."""
        ...


@dataclass(frozen=True)
class OpenedSheet:
    """A sheet whose tabs and header were already read; ``read`` hands them on."""

    sheet: tuple[str, list[Any], Iterator[tuple[int, list[Any]]]]

    def read(self) -> tuple[str, list[Any], Iterator[tuple[int, list[Any]]]]:
        return self.sheet


class Progress(Protocol):
    """Where the pipeline reports progress; the CLI draws it, tests ignore it."""

    def phase(self, name: str, total: int | None = None) -> None: ...

    def advance(self, amount: int = 1) -> None: ...


class NoProgress:
    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass


@dataclass(frozen=True)
class SyncRequest:
    """What the operator asked for."""

    sync_type: SyncType
    numbers: tuple[str, ...] = ()
    force: bool = False
    dry_run: bool = False
    allow_mass_removal: bool = False


@dataclass(slots=True)
class PlannedRow:
    """A valid listing ready to write: its JSON object, pre-serialised once."""

    number: str
    row: int
    hash: str
    # The canonical JSON object of the sheet-fed columns + extra: the very bytes the
    # hash covers; content_hash and the other bookkeeping columns are added at write time.
    body: bytes
    source: str  # models.source_hash of the row's raw cells

    def values(self) -> dict[str, Any]:
        return json.loads(self.body)


# (sheet row, property number, PlannedRow or None for a row trusted unchanged)
Streamed = tuple[int, str, PlannedRow | None]


@dataclass
class Plan:
    """Everything a run will do, decided before anything is written."""

    tab: str = ""
    sheet_rows: int = 0
    new: list[PlannedRow] = field(default_factory=list)
    changed: list[PlannedRow] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    invalid_numbers: set[str] = field(default_factory=set)
    not_found: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    active_before: int = 0
    changed_fields: dict[str, list[str]] = field(default_factory=dict)

    @property
    def to_write(self) -> list[PlannedRow]:
        return self.new + self.changed

    @property
    def total(self) -> int:
        """Listings this run is about: sheet rows considered, plus not-found numbers."""
        return (
            len(self.new)
            + len(self.changed)
            + self.unchanged
            + failed_rows(self.problems)
            + len(self.not_found)
        )


def failed_rows(problems: Iterable[RowProblem]) -> int:
    """Count the rows behind ``problems`` (a row with three bad cells fails once)."""
    return len({(p.row, p.property_number) for p in problems})


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


# --- planning -----------------------------------------------------------------


def _never(number: str, digest: str) -> bool:
    return False


def read_listings(
    source: SheetSource,
    aliases: dict[str, str],
    progress: Progress,
    trusted: Callable[[str, str], bool] = _never,
) -> tuple[str, Iterator[Streamed], list[str], list[RowProblem], Callable[[], int]]:
    """Map the header and return a lazy stream of converted rows.

    Returns (tab, stream of (row, property number, PlannedRow or None), warnings,
    problems, rows_seen): warnings and problems fill up as the stream is consumed.
    A row for which ``trusted(number, source hash)`` holds is not validated at all:
    it comes as (row, number, None).
    """
    tab, header, rows = source.read()
    header_map = mapping.build_header_map(header, aliases, tab=tab)
    signature = mapping.header_signature(header_map)
    key_index = next(i for i, c in header_map.columns.items() if c == KEY)
    warnings: list[str] = list(header_map.warnings)
    problems: list[RowProblem] = []
    seen = [0]

    def stream() -> Iterator[Streamed]:
        models = None
        for row_number, cells in rows:
            progress.advance()
            digest = mapping.source_hash(cells, signature)
            try:
                number = mapping.coerce_key(cells[key_index]) if key_index < len(cells) else None
            except mapping.CellError:
                number = None  # converted below, which reports the problem as usual
            if number is not None and trusted(number, digest):
                seen[0] += 1
                yield row_number, number, None
                continue
            if models is None:
                from . import models
            sheet_row, row_problems, row_warnings = models.convert_row(
                cells, header_map, row_number
            )
            warnings.extend(row_warnings)
            if row_problems:
                problems.extend(row_problems)
                seen[0] += 1
                continue
            if sheet_row is None:
                continue  # empty row
            seen[0] += 1
            # One serialisation serves both the hash and the request body.
            body = models.canonical_json(models.payload(sheet_row.listing))
            number = sheet_row.listing.property_number
            yield (
                row_number,
                number,
                PlannedRow(
                    number=number,
                    row=row_number,
                    hash=hashlib.sha256(body).hexdigest(),
                    body=body,
                    source=digest,
                ),
            )

    return tab, stream(), warnings, problems, lambda: seen[0]


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while the plan is made.

    Reading allocates millions of short-lived containers while ~100,000 planned rows
    stay alive; at the default thresholds the collector rescans them over and over
    (7% of the time at 100,000 rows). Planning creates almost no cycles.
    """
    before = gc.get_threshold()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


@_fewer_collections()
def make_plan(
    request: SyncRequest,
    source: SheetSource,
    client: PostgrestClient,
    *,
    aliases: dict[str, str],
    max_remove_fraction: float,
    progress: Progress | None = None,
) -> Plan:
    """Read the table and the sheet and decide what to write; write nothing.

    The table is read first: a sheet row whose raw cells digest (source_hash) equals
    that of its active listing is the listing the table holds, so it is counted
    unchanged without being validated again (unless forced). It still counts as in
    the sheet for duplicate keys and removals.
    """
    progress = progress or NoProgress()
    wanted = set(request.numbers) if request.sync_type == "selective" else None
    existing: dict[str, tuple[str | None, str | None, str | None]] = {}

    def trusted(number: str, digest: str) -> bool:
        if wanted is not None and number not in wanted:
            return True  # not asked for: neither validated nor written nor reported
        if request.force:
            return False
        current = existing.get(number)
        return current is not None and current[2] == digest and current[1] is None

    # The tab and header now (a bad sheet setting fails before the table is read), the
    # rows lazily once the table's hashes are known.
    tab, stream, warnings, problems, rows_seen = read_listings(source, aliases, progress, trusted)
    progress.phase("reading table")
    existing.update(_existing(client, request))
    progress.phase("reading sheet")

    # None: a row trusted as unchanged, never validated.
    valid: dict[str, PlannedRow | None] = {}
    rows_by_number: dict[str, list[int]] = {}
    for row_number, number, planned in stream:
        if wanted is not None and number not in wanted:
            continue
        rows_by_number.setdefault(number, []).append(row_number)
        if number not in valid:
            valid[number] = planned

    plan = Plan(tab=tab, sheet_rows=rows_seen(), warnings=warnings)
    if wanted is not None:
        problems = [p for p in problems if p.property_number in wanted]
    plan.problems = list(problems)
    plan.invalid_numbers = {p.property_number for p in problems if p.property_number}

    # A row with a bad cell still claims its key: a valid copy elsewhere is a duplicate too.
    for p in problems:
        if p.property_number is None:
            continue
        claimed = rows_by_number.setdefault(p.property_number, [])
        if p.row not in claimed:
            claimed.append(p.row)

    # Duplicate keys: write none of them, keep the table's value, name every row.
    for number, rows in rows_by_number.items():
        if len(rows) > 1:
            from .models import RowProblem

            rows.sort()
            valid.pop(number, None)
            plan.invalid_numbers.add(number)
            where = ", ".join(str(r) for r in rows)
            for r in rows:
                plan.problems.append(
                    RowProblem(
                        row=r,
                        property_number=number,
                        column=KEY,
                        message=f"duplicate property number {number!r} in sheet rows {where}; "
                        "none of them was written",
                        value=number,
                    )
                )
    plan.problems.sort(key=lambda p: p.row)

    if wanted is not None:
        found = set(valid) | plan.invalid_numbers
        plan.not_found = [n for n in request.numbers if n not in found]

    for number, planned in valid.items():
        current = existing.get(number)
        if planned is None:
            plan.unchanged += 1
        elif current is None:
            plan.new.append(planned)
        elif (
            request.force
            or current[0] != planned.hash
            or current[1] is not None
            # Written before source_hash existed: write it once, so later runs can skip it.
            # (A known digest that differs only because a cell was retyped to an equal
            # value stays unchanged and unwritten; the row is validated again next run.)
            or current[2] is None
        ):
            plan.changed.append(planned)
        else:
            plan.unchanged += 1

    if request.sync_type == "full":
        in_sheet = set(valid) | plan.invalid_numbers
        active = [n for n, (_, removed_at, _) in existing.items() if removed_at is None]
        plan.active_before = len(active)
        plan.removed = [n for n in active if n not in in_sheet]
        _guard_removals(plan, request, max_remove_fraction)
    return plan


def _existing(
    client: PostgrestClient, request: SyncRequest
) -> dict[str, tuple[str | None, str | None, str | None]]:
    """Return {property_number: (content_hash, removed_at, source_hash)} of the listings
    that matter: all of them for a full sync, the numbers asked for otherwise."""
    select = "property_number,content_hash,removed_at,source_hash"
    if request.sync_type == "full":
        # Supabase caps pages at 1000 (select_pages copes); plain PostgREST reads 100,000
        # hashes in 0.23 s at 10,000 a page against 0.39 s at 1000.
        rows: Iterable[dict[str, Any]] = client.select_pages(
            LISTINGS, select=select, key=KEY, page_size=10_000
        )
    else:
        numbers = list(dict.fromkeys(request.numbers))
        rows = client.select_in(LISTINGS, select=select, column=KEY, values=numbers)
    return {
        r[KEY]: (r.get("content_hash"), r.get("removed_at"), r.get("source_hash")) for r in rows
    }


def _guard_removals(plan: Plan, request: SyncRequest, max_fraction: float) -> None:
    if request.allow_mass_removal:
        return
    if plan.sheet_rows == 0:
        consequence = (
            f"refusing to mark all {plan.active_before} listings removed"
            if plan.active_before
            else "nothing to sync"
        )
        raise DataError(
            f"tab {plan.tab!r} has a header but no data rows; {consequence} "
            "(pass --allow-mass-removal if an empty sheet is meant)"
        )
    if plan.active_before and len(plan.removed) > max_fraction * plan.active_before:
        raise DataError(
            f"this run would mark {len(plan.removed)} of {plan.active_before} active listings "
            f"removed ({len(plan.removed) / plan.active_before:.0%}, limit "
            f"{max_fraction:.0%} from SYNC_MAX_REMOVE_FRACTION); nothing was written. "
            "Check the sheet, or pass --allow-mass-removal"
        )


def describe_changes(client: PostgrestClient, plan: Plan) -> None:
    """Fill ``plan.changed_fields`` with the columns each changed listing would change."""
    if not plan.changed:
        return
    by_number = {p.number: p for p in plan.changed}
    columns = ",".join((*mapping.COLUMNS, "extra", "removed_at"))
    for current in client.select_in(LISTINGS, select=columns, column=KEY, values=list(by_number)):
        new = by_number[current[KEY]].values()
        fields = [
            c for c in (*mapping.COLUMNS, "extra") if _normal(current.get(c)) != _normal(new.get(c))
        ]
        if current.get("removed_at") is not None:
            fields.append("removed_at")
        plan.changed_fields[current[KEY]] = fields


def _normal(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


# --- writing ------------------------------------------------------------------


def batches(
    rows: Sequence[PlannedRow], max_rows: int, max_bytes: int
) -> Iterator[list[PlannedRow]]:
    """Split ``rows`` into batches bounded by row count and by body size."""
    batch: list[PlannedRow] = []
    size = 2
    for row in rows:
        cost = len(row.body) + BOOKKEEPING_BYTES
        if batch and (len(batch) >= max_rows or size + cost > max_bytes):
            yield batch
            batch, size = [], 2
        batch.append(row)
        size += cost
    if batch:
        yield batch


def _body(rows: Sequence[PlannedRow], suffix: bytes) -> bytes:
    # Each body is a JSON object; splice the bookkeeping columns before its "}".
    return (
        b"["
        + b",".join(
            b"".join(
                (
                    r.body[:-1],
                    b',"content_hash":"',
                    r.hash.encode(),
                    b'","source_hash":"',
                    r.source.encode(),
                    b'"',
                    suffix,
                )
            )
            for r in rows
        )
        + b"]"
    )


@dataclass
class WriteResult:
    written: int = 0
    problems: list[RowProblem] = field(default_factory=list)


def write_rows(
    client: PostgrestClient,
    rows: Sequence[PlannedRow],
    *,
    sync_id: str,
    batch_size: int,
    batch_max_bytes: int,
    progress: Progress,
    result: WriteResult | None = None,
) -> WriteResult:
    """Upsert ``rows`` in batches; a batch failing permanently is retried row by row.

    Counts go into ``result`` as batches land, so a run that stops half-way can
    still say how much it wrote.
    """
    suffix = (
        ',"synced_at":'
        + json.dumps(iso(utcnow()))
        + ',"removed_at":null,"last_sync_id":'
        + json.dumps(sync_id)
        + "}"
    ).encode()
    result = WriteResult() if result is None else result
    progress.phase("writing", total=len(rows))
    for batch in batches(rows, batch_size, batch_max_bytes):
        try:
            client.upsert(LISTINGS, _body(batch, suffix), on_conflict=KEY, columns=WRITE_COLUMNS)
            result.written += len(batch)
        except PermanentError as batch_error:
            if len(batch) == 1:
                result.problems.append(_server_problem(batch[0], batch_error))
            else:
                log.warning(
                    "batch of %d rows refused (%s); retrying row by row",
                    len(batch),
                    batch_error.message,
                )
                for row in batch:
                    try:
                        client.upsert(
                            LISTINGS, _body([row], suffix), on_conflict=KEY, columns=WRITE_COLUMNS
                        )
                        result.written += 1
                    except PermanentError as row_error:
                        result.problems.append(_server_problem(row, row_error))
        progress.advance(len(batch))
    return result


def _server_problem(row: PlannedRow, exc: PermanentError) -> RowProblem:
    from .models import RowProblem

    return RowProblem(
        row=row.row, property_number=row.number, column=None, message=exc.message, value=None
    )


def mark_removed(client: PostgrestClient, numbers: Sequence[str], *, sync_id: str) -> int:
    """Set removed_at on listings that left the sheet (never delete them)."""
    count = 0
    now = iso(utcnow())
    for flt in in_filters(sorted(numbers)):
        count += client.update(
            LISTINGS,
            {KEY: flt, "removed_at": "is.null"},
            {"removed_at": now, "last_sync_id": sync_id},
        )
    return count


# --- the run ------------------------------------------------------------------


@dataclass
class SyncDeps:
    """What a run talks to."""

    client: PostgrestClient
    state: SyncStateStore
    source: SheetSource
    aliases: dict[str, str]
    batch_size: int
    batch_max_bytes: int
    max_remove_fraction: float


def run_sync(deps: SyncDeps, request: SyncRequest, progress: Progress | None = None) -> SyncReport:
    """Run one sync (or a dry run) and return its report.

    Raises ListingSyncError for a run that could not finish; the run is then
    recorded as failed in sync_state (unless it is a dry run).
    """
    progress = progress or NoProgress()
    report = SyncReport(sync_type=request.sync_type, dry_run=request.dry_run)
    if request.dry_run:
        plan = make_plan(
            request,
            deps.source,
            deps.client,
            aliases=deps.aliases,
            max_remove_fraction=deps.max_remove_fraction,
            progress=progress,
        )
        describe_changes(deps.client, plan)
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
    # Open the sheet (tabs, header) before creating the run: a wrong SYNC_SHEET_NAME or
    # SYNC_SPREADSHEET_ID is a bad setting, which records nothing, not even a failed run.
    # Any other failure here (Sheets unreachable...) is recorded as this run's outcome.
    opened: OpenedSheet | None = None
    early: Exception | None = None
    try:
        opened = OpenedSheet(deps.source.read())
    except ConfigError:
        raise
    except Exception as exc:
        early = exc
    report.sync_id = deps.state.create(request.sync_type)
    report.started_at = utcnow()
    written = WriteResult()
    try:
        deps.state.update(report.sync_id, status="in_progress")
        if early is not None:
            raise early
        assert opened is not None
        plan = make_plan(
            request,
            opened,
            deps.client,
            aliases=deps.aliases,
            max_remove_fraction=deps.max_remove_fraction,
            progress=progress,
        )
        _fill_from_plan(report, plan)
        report.removed = 0  # until mark_removed has run: a failed run removed nothing
        deps.state.update(report.sync_id, total_items=report.total)
        write_rows(
            deps.client,
            plan.to_write,
            sync_id=report.sync_id,
            batch_size=deps.batch_size,
            batch_max_bytes=deps.batch_max_bytes,
            progress=progress,
            result=written,
        )
        report.success = written.written
        report.problems = sorted([*report.problems, *written.problems], key=lambda p: p.row)
        report.failed = failed_rows(report.problems)
        if plan.removed:
            progress.phase("marking removed")
            report.removed = mark_removed(deps.client, plan.removed, sync_id=report.sync_id)
    except ListingSyncError as exc:
        report.success = written.written  # batches that landed before the failure
        _finish(deps, report, "failed", exc.exit_code, error=str(exc))
        raise
    except Exception as exc:
        report.success = written.written
        _finish(deps, report, "failed", 70, error=f"unexpected error: {type(exc).__name__}")
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
            error_details=report.error_details() or None,
            error_message=error,
            exit_code=exit_code,
        )
    except ListingSyncError as exc:
        report.state_recorded = False
        log.error("could not record the outcome of run %s in sync_state: %s", report.sync_id, exc)
