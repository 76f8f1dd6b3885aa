"""Decide a run before anything is written: new, changed, unchanged, removed, invalid.

The table's hashes are read first: a sheet row whose raw cells digest
(source_hash) equals that of its active listing is the listing the table holds,
so it is counted unchanged without being validated again (unless forced). It
still counts as in the sheet for duplicate keys and removals.
"""

from __future__ import annotations

import difflib
import gc
import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final, Literal

from ..errors import DataError
from ..listings import ListingsStore, StoredListing
from ..mapping import normalize_header
from ..workers import Workers
from .progress import NoProgress, Progress
from .read import SheetReading, SheetSource, ValidRow, read_listings

if TYPE_CHECKING:
    from ..rows import RowProblem

SyncType = Literal["full", "selective"]


@dataclass(frozen=True)
class SyncRequest:
    """What the operator asked for."""

    sync_type: SyncType
    numbers: tuple[str, ...] = ()
    force: bool = False
    dry_run: bool = False
    allow_mass_removal: bool = False
    # Go on when a mapped column's header is missing; leave that column as stored.
    allow_missing_columns: bool = False


@dataclass
class Plan:
    """Everything a run will do, decided before anything is written."""

    tab: str = ""
    tabs: tuple[str, ...] = ()  # in the order they were read
    sheet_rows: int = 0
    new: list[ValidRow] = field(default_factory=list)
    changed: list[ValidRow] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    invalid_numbers: set[str] = field(default_factory=set)
    not_found: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    active_before: int = 0
    changed_fields: dict[str, list[str]] = field(default_factory=dict)
    # Sheet-fed columns this run does not write (header missing, values kept as stored).
    omitted: tuple[str, ...] = ()
    # The header's warnings (a mapped column with no header, duplicate headers...), also
    # in ``warnings``: a human must act, so they reach stderr even when the run is clean;
    # cell warnings need --verbose.
    notices: list[str] = field(default_factory=list)
    # The upsert's columns; None: every column the table declares.
    write_columns: tuple[str, ...] | None = None

    def problem_order(self, problem: RowProblem) -> tuple[int, int]:
        """Sort key of a problem: tabs in reading order, then sheet rows."""
        tab = problem.tab or ""
        return (self.tabs.index(tab) if tab in self.tabs else 0, problem.row)

    @property
    def to_write(self) -> list[ValidRow]:
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


def stored_numbers(request: SyncRequest) -> tuple[str, ...] | None:
    """Return the listings a run reads from the table: its numbers, or None for all."""
    return request.numbers if request.sync_type == "selective" else None


def failed_rows(problems: Iterable[RowProblem]) -> int:
    """Count the rows behind ``problems`` (a row with three bad cells fails once)."""
    return len({(p.row, p.property_number) for p in problems})


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


def _needs_write(request: SyncRequest, stored: StoredListing, row: ValidRow) -> bool:
    return (
        request.force
        or stored.content_hash != row.hash
        or not stored.active
        # Written before source_hash existed: write it once, so later runs can skip it.
        # (A known digest that differs only because a cell was retyped to an equal
        # value stays unchanged and unwritten; the row is validated again next run.)
        or stored.source_hash is None
        # Moved to another tab: same values, but source_tab must follow it.
        or stored.source_tab != row.tab
    )


@_fewer_collections()
def make_plan(
    request: SyncRequest,
    source: SheetSource | SheetReading,
    listings: ListingsStore,
    *,
    aliases: dict[str, str],
    max_remove_fraction: float,
    progress: Progress | None = None,
    read_stored: Callable[[], dict[str, StoredListing]] | None = None,
) -> Plan:
    """Read the table and the sheet and decide what to write; write nothing.

    ``source``: the sheet, or a reading of it the caller began already (``read_listings``
    with the same ``aliases``: its rows are being fetched since).
    ``read_stored``: returns the table's listings as ``listings.stored`` returns them for this
    request, when the caller started reading them already (they are read here if not).
    """
    progress = progress or NoProgress()
    table = listings.table
    wanted = set(request.numbers) if request.sync_type == "selective" else None
    existing: dict[str, StoredListing] = {}

    # The tab and header now (a bad sheet setting fails before the table is read), the
    # rows lazily once the table's hashes are known.
    reading = (
        source
        if isinstance(source, SheetReading)
        else read_listings(source, aliases, progress, table)
    )
    omitted, notices = _missing_columns(reading, listings, request, aliases)
    # A column the office added that no header maps to is not ours to write.
    omitted = (*omitted, *sorted(reading.unused))
    progress.phase("reading table")
    existing.update(read_stored() if read_stored else listings.stored(stored_numbers(request)))
    progress.phase("reading sheet")
    reading.only = None if wanted is None else frozenset(wanted)
    if not request.force:
        reading.known = _source_hashes(existing)

    # None: a row trusted as unchanged, never validated.
    valid: dict[str, ValidRow | None] = {}
    lookups = _ContentHashes(listings, existing, enabled=not request.force)
    # Where each key was first seen, and every place of a key seen more than once (on
    # one tab or across tabs: a duplicate either way). A place is one int, the tab's
    # index above the sheet row's number: a tuple per listing would be 30 MB at 500,000.
    order = {t.tab: i for i, t in enumerate(reading.tabs)}
    first: dict[str, int] = {}
    again: dict[str, list[int]] = {}
    for batch in reading.batches():
        index = order[batch.tab]
        places = batch.rows if not index else [(index << _ROW_BITS) | r for r in batch.rows]
        fresh = dict(zip(batch.numbers, places, strict=True))
        if len(fresh) == len(places) and first.keys().isdisjoint(fresh):
            first.update(fresh)  # no key seen twice: the whole batch at C speed
        else:
            for number, place in zip(batch.numbers, places, strict=True):
                _seen(first, again, number, place)
        # A key seen twice keeps no copy (below), so which one lands here does not matter.
        valid.update(zip(batch.numbers, batch.valid, strict=True))
        lookups.add(batch.valid)

    plan = Plan(
        tab=reading.tab,
        tabs=tuple(t.tab for t in reading.tabs),
        sheet_rows=reading.rows_seen,
        warnings=reading.warnings,
        notices=list(
            dict.fromkeys([*(w for t in reading.tabs for w in t.header_map.warnings), *notices])
        ),
    )
    if omitted:
        plan.omitted = omitted
        plan.write_columns = tuple(c for c in table.write_columns if c not in omitted)
    problems = reading.problems
    if wanted is not None:
        problems = [p for p in problems if p.property_number in wanted]
    plan.problems = list(problems)
    plan.invalid_numbers = {p.property_number for p in problems if p.property_number}

    # A row with a bad cell still claims its key: a valid copy elsewhere is a duplicate too.
    for p in problems:
        if p.property_number is not None:
            place = (order.get(p.tab or "", 0) << _ROW_BITS) | p.row
            _seen(first, again, p.property_number, place)

    # Duplicate keys: write none of them, keep the table's value, name every row.
    several = len(reading.tabs) > 1
    for number, seen in again.items():
        if len(seen) > 1:
            from ..rows import RowProblem

            rows = [(reading.tabs[at >> _ROW_BITS].tab, at & _ROW_MASK) for at in sorted(seen)]
            valid.pop(number, None)
            plan.invalid_numbers.add(number)
            where = _places(rows, several)
            for tab, r in rows:
                plan.problems.append(
                    RowProblem(
                        row=r,
                        property_number=number,
                        column=table.key,
                        message=f"duplicate property number {number!r} in {where}; "
                        "none of them was written",
                        value=number,
                        tab=tab or None,
                    )
                )
    plan.problems.sort(key=plan.problem_order)

    if wanted is not None:
        found = set(valid) | plan.invalid_numbers
        plan.not_found = [n for n in request.numbers if n not in found]

    lookups.finish()
    # Counted and compared at C speed where a re-sync has 100,000 listings and few changes:
    # the Python loop over every listing took 80 ms after the last response.
    plan.unchanged = list(valid.values()).count(None)  # trusted: never validated
    for row in valid.values():
        if row is None:
            continue
        stored = existing.get(row.number)
        if stored is None:
            plan.new.append(row)
        elif _needs_write(request, stored, row):
            plan.changed.append(row)
        else:
            plan.unchanged += 1

    if request.sync_type == "full":
        plan.active_before = list(map(_REMOVED_AT, existing.values())).count(None)
        gone = existing.keys() - valid.keys() - plan.invalid_numbers
        # In the table's order, as read.
        plan.removed = [n for n in existing if n in gone and existing[n].active] if gone else []
        _guard_removals(plan, request, max_remove_fraction)
    return plan


_REMOVED_AT: Final = attrgetter("removed_at")


class _ContentHashes:
    """Read the stored content_hash of the listings whose content decides the write, in
    the background while the sheet is still read.

    Those are the rows read again because their cells changed, of listings the table
    holds, active, under a known source_hash, on the same tab: any other is written
    whatever its hash. (Every listing's hashes would be twice the bytes of the table's
    read.) Each ``LOOKUP`` of them is a request (more if their numbers are long), up to
    the run's read concurrency at once: a run where 10% of 100,000 rows changed asks 40
    of them, not one by one after the sheet. A failed request fails the plan, at
    ``finish``.
    """

    LOOKUP = 250

    def __init__(
        self, listings: ListingsStore, existing: dict[str, StoredListing], *, enabled: bool
    ) -> None:
        self.listings = listings
        self.existing = existing
        self.enabled = enabled
        self.wanted: list[str] = []
        self.asked: list[Future[dict[str, str | None]]] = []
        self.workers: Workers | None = None

    def add(self, rows: Iterable[ValidRow | None]) -> None:
        """Note the rows of a batch; ask for the hashes of a ``LOOKUP`` once there are as many."""
        if not self.enabled:
            return
        existing = self.existing
        for row in rows:
            if row is None:
                continue
            stored = existing.get(row.number)
            if (
                stored is not None
                and stored.content_hash is None
                and stored.active
                and stored.source_hash is not None
                and stored.source_tab == row.tab
            ):
                self.wanted.append(row.number)
        while len(self.wanted) >= self.LOOKUP:
            self._ask(self.wanted[: self.LOOKUP])
            del self.wanted[: self.LOOKUP]

    def _ask(self, numbers: list[str]) -> None:
        if not numbers:
            return
        if self.workers is None:
            self.workers = Workers(self.listings.read_concurrency, name="listing-sync-hashes")
        self.asked.append(self.workers.submit(lambda: self.listings.content_hashes(numbers)))

    def finish(self) -> None:
        """Wait for every lookup and fill the hashes into ``existing``."""
        try:
            rest, self.wanted = self.wanted, []
            self._ask(rest)
            for future in self.asked:
                for number, content_hash in future.result().items():
                    stored = self.existing.get(number)
                    if stored is not None:
                        self.existing[number] = stored._replace(content_hash=content_hash)
        finally:
            if self.workers is not None:
                self.workers.close()


_ROW_BITS: Final = 32  # a sheet has at most 10 million cells, so rows fit
_ROW_MASK: Final = (1 << _ROW_BITS) - 1


def _seen(first: dict[str, int], again: dict[str, list[int]], number: str, place: int) -> None:
    """Note that ``number`` was seen at ``place`` (tab index, sheet row); once per place."""
    seen = first.get(number)
    if seen is None:
        first[number] = place
    elif seen != place:
        places = again.setdefault(number, [seen])
        if place not in places:
            places.append(place)


def _source_hashes(existing: dict[str, StoredListing]) -> dict[str | None, dict[str, str]]:
    """Return, per tab, the source_hash of each active listing the table holds there."""
    known: dict[str | None, dict[str, str]] = {}
    for number, stored in existing.items():
        if stored.active and stored.source_hash is not None:
            known.setdefault(stored.source_tab, {})[number] = stored.source_hash
    return known


def _places(rows: list[tuple[str, int]], several_tabs: bool) -> str:
    """Name sheet rows: "sheet rows 3, 7", or "販売中 row 3, 成約済 row 9" across tabs."""
    if not several_tabs:
        return "sheet rows " + ", ".join(str(r) for _, r in rows)
    return ", ".join(f"tab {tab!r} row {r}" for tab, r in rows)


def _missing_columns(
    reading: SheetReading,
    listings: ListingsStore,
    request: SyncRequest,
    aliases: dict[str, str],
) -> tuple[tuple[str, ...], list[str]]:
    """Decide about sheet-fed columns no header maps to.

    Return the columns to leave unwritten, and the warnings cron must see.

    Writing such a column would set it to null for every listing: a renamed header
    would silently wipe it. So a column the table holds values for stops the run
    (nothing is written yet) unless the operator allows it, and is then left as stored.
    A column never filled only warns, on stderr too, so cron mails it.
    """
    notices: list[str] = []
    filled: list[str] = []
    holds: dict[str, bool] = {}  # column -> the table holds values in it (asked once)
    # Every tab is checked: a tab whose header lacks the column would empty it for its rows.
    for tab in reading.tabs:
        header_map = tab.header_map
        if not header_map.missing:
            continue
        headers = list(header_map.extra.values())
        found = ", ".join(repr(h) for h in headers) or "none"
        empty: list[str] = []
        for column in header_map.missing:
            if column not in holds:
                holds[column] = listings.has_values(column)
            if not holds[column]:
                empty.append(column)
                continue
            if not request.allow_missing_columns:
                guess = _likely_rename(column, aliases, headers)
                every = ", ".join(repr(h) for h in header_map.headers if h)
                hint = (
                    f" Was {column!r} renamed to {guess!r}? Map it in SYNC_MAPPING" if guess else ""
                )
                raise DataError(
                    f"No header in tab {tab.tab!r} maps to column {column!r}, which holds "
                    f"values in the table; syncing would empty it for every listing, so nothing "
                    f"was written. Headers found: {every}."
                    f"{hint or ' Restore the header or map it in SYNC_MAPPING'}, "
                    "or pass --allow-missing-columns to sync and leave the column as it is."
                )
            if column not in filled:
                filled.append(column)
            notices.append(
                f"No header in tab {tab.tab!r} maps to {column!r}; its stored values are "
                "left as they are (--allow-missing-columns)."
            )
        if empty:
            notices.append(
                f"No header in tab {tab.tab!r} maps to {', '.join(map(repr, empty))}; "
                f"empty in the table and left empty. Unmapped headers: {found}."
            )
    if not notices:
        return (), []
    reading.omit = frozenset(filled)
    reading.warnings.extend(notices)
    return tuple(filled), notices


def _likely_rename(column: str, aliases: dict[str, str], headers: list[str]) -> str | None:
    """Return the unmapped header that most looks like ``column`` or one of its aliases."""
    names = [column, *(alias for alias, target in aliases.items() if target == column)]
    best: tuple[float, str] | None = None
    for header in headers:
        normal = normalize_header(header)
        for name in names:
            # "価格(税込)" contains "価格": a rename that added words.
            score = (
                1.0
                if name and name in normal
                else difflib.SequenceMatcher(None, name, normal).ratio()
            )
            if score >= 0.6 and (best is None or score > best[0]):
                best = (score, header)
    return None if best is None else best[1]


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


def describe_changes(listings: ListingsStore, plan: Plan) -> None:
    """Fill ``plan.changed_fields`` with the columns each changed listing would change."""
    if not plan.changed:
        return
    table = listings.table
    by_number = {p.number: p for p in plan.changed}
    compared = tuple(c for c in table.hashed_columns if c not in plan.omitted)
    for current in listings.values(list(by_number), (*compared, "removed_at", "source_tab")):
        row = by_number[current[table.key]]
        new = row.values()
        fields = [c for c in compared if _normal(current.get(c)) != _normal(new.get(c))]
        if current.get("removed_at") is not None:
            fields.append("removed_at")
        if current.get("source_tab") != row.tab:
            fields.append("source_tab")
        plan.changed_fields[current[table.key]] = fields


def _normal(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
