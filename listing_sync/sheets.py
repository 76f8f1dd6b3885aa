"""The only module that knows Google: read a sheet's rows through the Sheets API.

Rows are read in chunks (bounded memory, each response under Google's 2 MB
advice) with ``valueRenderOption=UNFORMATTED_VALUE`` and
``dateTimeRenderOption=SERIAL_NUMBER``. Every request goes through the
``sheets`` Guard; Google's errors are translated here and nowhere else.

Cells are then made what the sheet shows: a number in a column the caller reads as
text (the key, notes) is replaced by its FORMATTED_VALUE (``00123``, ``2025/01/09``),
fetched by one batchGet per chunk for only the columns that hold a number in that
chunk; and a vertical merge gives every row it spans its top-left value.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any, Final, NamedTuple

import orjson

from . import fastjson
from .areas import Area, a1_tab, column_letters, parse_a1_area
from .errors import ConfigError, Failure, ListingSyncError, PermanentError, remote_error
from .resilience import Guard, parse_retry_after
from .workers import Workers

DEPENDENCY = "sheets"
SCOPES = ["https://www.googleapis.com/auth/spreadsheets.readonly"]
# Google advises responses under about 2 MB; budget ~30 bytes a cell.
RESPONSE_BUDGET_BYTES = 2_000_000
BYTES_PER_CELL = 30
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 100, 10_000


def rows_per_response(rows: list[list[Any]], asked: int) -> int:
    """Return how many rows make a ~2 MB response, judging by ``rows`` (a response's rows).

    ``asked``: what was asked for, kept when ``rows`` is too few to judge (a sheet
    that ends early, or mostly empty rows).
    """
    if len(rows) < MIN_CHUNK_ROWS:
        return asked
    try:
        size = len(orjson.dumps(rows))
    except TypeError:  # an integer beyond 64 bits: the standard library writes it
        size = len(json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode())
    fitting = RESPONSE_BUDGET_BYTES * len(rows) // max(size, 1)
    return max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, fitting))


def chunk_rows_for(columns: int) -> int:
    """Return how many rows to ask for per request for a sheet this wide."""
    rows = RESPONSE_BUDGET_BYTES // (max(columns, 1) * BYTES_PER_CELL)
    return max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, rows))


def _error_info_reasons(error: dict[str, Any]) -> tuple[set[str], str | None]:
    """Return the ErrorInfo reasons of a Google error body and the project number it names."""
    reasons: set[str] = set()
    project = None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("ErrorInfo"):
            reasons.add(str(detail.get("reason")))
            consumer = str((detail.get("metadata") or {}).get("consumer", ""))
            project = consumer.rpartition("/")[2] or project
    if project is None:
        found = re.search(r"project (\d+)", str(error.get("message", "")))
        project = found.group(1) if found else None
    return reasons, project


def translate_google_error(exc: BaseException, what: str) -> ListingSyncError:
    """Turn an error raised by googleapiclient/google-auth/httplib2 into our tree.

    A RemoteError as a rule; a ConfigError when Google says a setting is wrong (a
    range it cannot parse, the Sheets API not enabled in the key's project).
    """
    from google.auth import exceptions as auth_exceptions
    from googleapiclient.errors import HttpError

    if isinstance(exc, HttpError):
        status = int(exc.resp.status)
        google_status: str | None = None
        message = exc.reason or ""
        reasons: set[str | None] = set()
        try:
            error = json.loads(exc.content).get("error", {})
            google_status = error.get("status")
            message = error.get("message") or message
            reasons = {e.get("reason") for e in error.get("errors", []) if isinstance(e, dict)}
            info, project = _error_info_reasons(error)
        except (ValueError, AttributeError):
            info, project = set(), None
        if "SERVICE_DISABLED" in info:
            where = f"Cloud project {project}" if project else "the key's Cloud project"
            link = (
                "https://console.developers.google.com/apis/api/sheets.googleapis.com/overview"
                + (f"?project={project}" if project else "")
            )
            return ConfigError(
                f"Google Sheets {what}: 403 SERVICE_DISABLED: the Google Sheets API is not "
                f"enabled in {where} (the project of the Google account listing-sync signs "
                f"in as); enable it at {link}, wait a few minutes, then run again"
            )
        if status == 400 and "Unable to parse range" in message:
            return ConfigError(
                f"SYNC_SHEET_NAME: Google Sheets {what}: 400 {message}; set SYNC_SHEET_NAME "
                "to a tab's exact name as shown in the sheet (or unset it for the first tab), "
                "and SYNC_SHEET_RANGE to a range within it"
            )
        if reasons & {"rateLimitExceeded", "userRateLimitExceeded"}:
            google_status = "RESOURCE_EXHAUSTED"  # the v3-style quota error (403)
        if google_status is None and status >= 500:
            google_status = "INTERNAL"  # Google documents its 5xx as safe to retry
        retry_after = parse_retry_after(exc.resp.get("retry-after"), now=time.time())
        label = f"{status} {google_status}" if google_status else str(status)
        return remote_error(
            f"Google Sheets {what}: {label} {message}".rstrip(),
            Failure(status=status, code=google_status),
            dependency=DEPENDENCY,
            retry_after=retry_after,
        )
    if isinstance(exc, auth_exceptions.RefreshError | auth_exceptions.OAuthError):
        # The token endpoint refused the key: wrong key, disabled account, bad clock; or
        # the STS refused a federated token (OAuthError): wrong audience, expired token.
        retryable = bool(getattr(exc, "retryable", False))
        return remote_error(
            f"Google Sheets {what}: could not get an access token: {_first_line(exc)}",
            Failure(network=retryable),
            dependency=DEPENDENCY,
        )
    return remote_error(
        f"Google Sheets {what}: {type(exc).__name__}: {_first_line(exc)}",
        Failure(network=True),
        dependency=DEPENDENCY,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _foreign_errors() -> tuple[type[BaseException], ...]:
    import httplib2
    from google.auth import exceptions as auth_exceptions
    from googleapiclient.errors import HttpError

    return (HttpError, auth_exceptions.GoogleAuthError, httplib2.HttpLib2Error, OSError)


@dataclass(frozen=True)
class RawChunk:
    """A response's body, not parsed: for a helper process to parse (pipeline.convert).

    ``check``: the columns where a number must be read as the sheet shows it. A reader
    that finds one there (``number_columns``) hands the chunk back: ``rows`` parses it
    here and asks Google for those cells as shown, as for any chunk.
    """

    body: bytes
    check: frozenset[int]
    shown: Callable[[list[list[Any]]], None]
    asked: int  # rows asked for (the body may hold fewer: Google leaves out empty ones)

    def rows(self) -> list[list[Any]]:
        """Return the chunk's rows, cells as the sheet shows them where it matters."""
        rows = values_of(self.body)
        if self.check:
            self.shown(rows)
        return rows


class SheetBlock(NamedTuple):
    """Consecutive rows of a tab as the API sent them (one response's worth).

    ``raw``: the response, not parsed (``rows`` is then empty).
    """

    start: int  # 1-based sheet row number of rows[0]
    rows: list[list[Any]]
    raw: RawChunk | None = None


def values_of(body: bytes) -> list[list[Any]]:
    """Return the rows of a ``values.get`` response body, as the Google client reads them."""
    values: list[list[Any]] = fastjson.loads(body).get("values", [])
    return values


@dataclass(frozen=True)
class SheetData:
    """A tab's title, its header cells and a lazy iterator over its data rows."""

    tab: str
    header: list[Any]
    rows: Iterator[SheetBlock]
    # The rows again, with some columns (0-based within the range) as the sheet shows
    # them: ``shown(text, loose, raw=False)`` (``raw``: blocks may come unparsed, see
    # SheetBlock). None: ``rows`` is all a source offers.
    shown: Callable[..., Iterator[SheetBlock]] | None = None


@dataclass(frozen=True)
class Tab:
    """One tab of the spreadsheet."""

    title: str
    row_count: int
    column_count: int
    hidden: bool = False
    sheet_id: int = 0
    # Merged ranges: (first row, last row (1-based), first column (0-based)) of each
    # merge spanning more than one row.
    merges: tuple[tuple[int, int, int], ...] = ()


def _is_number(value: object) -> bool:
    return value.__class__ is int or value.__class__ is float


_PLAIN_NUMBER = re.compile(r"^[-+]?[¥$€£]?[-+]?[0-9][0-9,]*(\.[0-9]+)?%?$")


def _shows_a_number(shown: object) -> bool:
    """Tell whether a FORMATTED_VALUE is just a number written out (1,500, ¥800, 50%)."""
    return isinstance(shown, str) and bool(_PLAIN_NUMBER.match(shown.strip()))


class _MergeFill:
    """Give every row a vertical merge spans the value of its top-left cell."""

    def __init__(self, merges: tuple[tuple[int, int, int], ...], area: Area) -> None:
        self.by_top: dict[int, list[tuple[int, int]]] = {}
        end = area.end_column
        for top, last, column in merges:
            inside = column >= area.first_column and (end is None or column < end)
            if inside and top > area.header_row:
                self.by_top.setdefault(top, []).append((column - area.first_column, last))
        self.active: dict[int, tuple[object, int]] = {}  # column -> (value, last row)

    @property
    def pending(self) -> bool:
        """Tell whether a merge is open or still to come: rows may need filling."""
        return bool(self.by_top or self.active)

    def __call__(self, number: int, cells: list[Any]) -> list[Any]:
        if not self.pending:
            return cells
        for column, last in self.by_top.pop(number, ()):
            self.active[column] = (cells[column] if column < len(cells) else "", last)
        # A row with nothing else in it stays empty: a merge does not make a listing.
        if self.active and any(c not in ("", None) for c in cells):
            for column, (value, last) in list(self.active.items()):
                if number > last:
                    del self.active[column]
                    continue
                if len(cells) <= column:
                    cells = [*cells, *([""] * (column + 1 - len(cells)))]
                if cells[column] in ("", None):
                    cells[column] = value
        for column, (_, last) in list(self.active.items()):
            if number >= last:
                del self.active[column]
        return cells


# Chunk requests in flight while a tab is read (each on its own connection). Google's
# quota counts requests per minute, not at once; four hide the round trips of a sheet
# tens of milliseconds away without bursting.
READ_AHEAD = 4
# Rows asked for ahead of the chunk being handed on, at most (memory: 1.4 KB a row of
# 20 cells once parsed): two ~2 MB chunks of an ordinary sheet in flight, one of the larger
# chunks of a sheet near Google's size limit. A cold sync of 500,000 listings x 20 columns
# peaked at 783 MB with up to four chunks in flight and whole responses queued, 739 MB so.
READ_AHEAD_ROWS = 18_000
# A response is handed on in blocks of at most this many rows, so the blocks queued for
# conversion (pipeline.read.PREFETCH_BLOCKS) hold as many rows whatever the chunk size.
# (An unparsed body is a quarter of its rows' size once parsed, and is not split.)
BLOCK_ROWS = 4_500
# Chunks left after the first, at least, for a tab's chunks to come unparsed.
RAW_CHUNKS = 3
# Requests a tab's rows may take (the shown-value batchGets included) before its chunks
# grow past the ~2 MB advice. Google's quota is 60 reads a minute per user; a tab read in
# more waits for the next minute: a sheet at Google's 10-million-cell limit is ~130 MB,
# 84 chunks of ~2 MB, of which 24 waited a minute; 40 chunks of ~3.3 MB wait for none.
# The rest of the minute is left for the tabs, headers, other tabs and retries.
ROW_REQUESTS_PER_TAB = 40


def rows_per_request(weighed: int, rows_left: int, requests_per_chunk: int) -> int:
    """Return the rows to ask for per request: ``weighed`` (~2 MB), or more if ``rows_left``
    would take more than ROW_REQUESTS_PER_TAB requests at ``requests_per_chunk`` each."""
    chunks = max(1, ROW_REQUESTS_PER_TAB // max(1, requests_per_chunk))
    return max(weighed, -(-rows_left // chunks))


class _Pending:
    """The columns still read as shown; chunks read at once share it, under a lock."""

    def __init__(self, columns: frozenset[int]) -> None:
        self._columns = set(columns)
        self._lock = threading.Lock()
        self.asked = 0  # batchGets sent for shown values

    def __bool__(self) -> bool:
        return bool(self._columns)

    def columns(self) -> set[int]:
        with self._lock:
            return set(self._columns)

    def discard(self, column: int) -> None:
        with self._lock:
            self._columns.discard(column)


class SheetsReader:
    """Read one spreadsheet's rows through google-api-python-client."""

    def __init__(
        self,
        *,
        spreadsheet_id: str,
        sign_in: SignIn,
        endpoint: str,
        guard: Guard,
        tab_names: tuple[str, ...] = (),
        sheet_range: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.spreadsheet_id = spreadsheet_id
        self.guard = guard
        # (): the first tab; ("*",): every visible tab.
        self.tab_names = tab_names
        self.sheet_range = sheet_range
        self._service, self.account, new_http = _build_service(sign_in, endpoint, timeout)
        self._raw_model = _raw_model()
        # Up to READ_AHEAD chunk requests in flight, each worker on its own connection.
        self._fetchers = Workers(READ_AHEAD, name="listing-sync-sheets", local=new_http)

    def read(self) -> list[SheetData]:
        """Return each tab's title and header now, and a lazy iterator over its rows."""
        found = []
        for tab, area in self.areas():
            header = self.header(tab, area)
            width = max(len(header), 1)

            def shown(
                text: frozenset[int],
                loose: frozenset[int],
                *,
                raw: bool = False,
                tab: Tab = tab,
                area: Area = area,
                width: int = width,
            ) -> Iterator[SheetBlock]:
                return self.rows(tab, area, width, text=text, loose=loose, raw=raw)

            found.append(SheetData(tab.title, header, self.rows(tab, area, width), shown))
        return found

    def close(self) -> None:
        """Close the HTTP connections of the Sheets client."""
        self._fetchers.close()
        self._service.close()

    def _execute(self, request: Any, what: str) -> dict[str, Any]:
        errors = _foreign_errors()
        http = self._fetchers.local()  # a worker's own connection; None: the client's

        def attempt() -> dict[str, Any]:
            try:
                return request.execute(http=http, num_retries=0)
            except errors as exc:
                raise translate_google_error(exc, what) from exc

        return self.guard.call(attempt)

    def _metadata(self) -> dict[str, Any]:
        request = self._service.spreadsheets().get(
            spreadsheetId=self.spreadsheet_id,
            fields="sheets(properties(sheetId,title,index,hidden,"
            "gridProperties(rowCount,columnCount)),merges),namedRanges",
        )
        try:
            return self._execute(request, "reading the spreadsheet's tabs")
        except PermanentError as exc:
            # The first call names the spreadsheet: a 404 or 403 here is a wrong setting
            # (exit 78, nothing written), not an outage.
            if exc.status == 404:
                raise ConfigError(
                    f"SYNC_SPREADSHEET_ID: no spreadsheet {self.spreadsheet_id!r} ({exc.message}); "
                    "use the id from the sheet's URL"
                ) from exc
            if exc.status == 403:
                who = (
                    f"the service account {self.account} (client_email in "
                    "GOOGLE_APPLICATION_CREDENTIALS)"
                    if self.account.endswith(".gserviceaccount.com")
                    else self.account
                )
                raise ConfigError(
                    f"SYNC_SPREADSHEET_ID: spreadsheet {self.spreadsheet_id!r} is not shared with "
                    f"{who}: share the sheet with it as a viewer (Google said: 403 {exc.message})"
                ) from exc
            raise

    def tabs(self, meta: dict[str, Any] | None = None) -> list[Tab]:
        """List the spreadsheet's tabs in order."""
        meta = self._metadata() if meta is None else meta
        tabs = []
        for sheet in sorted(meta.get("sheets", []), key=lambda s: s["properties"].get("index", 0)):
            props = sheet["properties"]
            grid = props.get("gridProperties", {})
            merges = tuple(
                (
                    int(m.get("startRowIndex", 0)) + 1,
                    int(m.get("endRowIndex", 0)),
                    int(m.get("startColumnIndex", 0)),
                )
                for m in sheet.get("merges", [])
                if int(m.get("endRowIndex", 0)) - int(m.get("startRowIndex", 0)) > 1
            )
            tabs.append(
                Tab(
                    props["title"],
                    int(grid.get("rowCount", 0)),
                    int(grid.get("columnCount", 0)),
                    hidden=bool(props.get("hidden", False)),
                    sheet_id=int(props.get("sheetId", 0)),
                    merges=merges,
                )
            )
        if not tabs:
            raise ConfigError(f"SYNC_SPREADSHEET_ID: spreadsheet {self.spreadsheet_id} has no tabs")
        return tabs

    def areas(self) -> list[tuple[Tab, Area]]:
        """Return the tabs to read, in order, each with where its data is."""
        meta = self._metadata()
        tabs = self.tabs(meta)
        area: Area | None = Area()
        if self.sheet_range:
            area = parse_a1_area(self.sheet_range)
            if area is None:
                return [self._named_area(meta, tabs)]
        assert area is not None
        return [(tab, area) for tab in self._chosen(tabs)]

    def _chosen(self, tabs: list[Tab]) -> list[Tab]:
        if not self.tab_names:
            return tabs[:1]
        if self.tab_names == ("*",):
            visible = [t for t in tabs if not t.hidden]
            if not visible:
                raise ConfigError(
                    "SYNC_SHEET_NAME: '*' found no visible tab in spreadsheet "
                    f"{self.spreadsheet_id}"
                )
            return visible
        by_title = {t.title: t for t in tabs}
        unknown = [n for n in self.tab_names if n not in by_title]
        if unknown:
            titles = ", ".join(t.title for t in tabs)
            names = ", ".join(repr(n) for n in unknown)
            raise ConfigError(f"SYNC_SHEET_NAME: no tab named {names}; tabs: {titles}")
        return [by_title[n] for n in self.tab_names]

    def _named_area(self, meta: dict[str, Any], tabs: list[Tab]) -> tuple[Tab, Area]:
        """Resolve SYNC_SHEET_RANGE as a named range of the spreadsheet."""
        name = (self.sheet_range or "").strip()
        named = {r.get("name"): r.get("range", {}) for r in meta.get("namedRanges", [])}
        grid = named.get(name)
        if grid is None:
            known = ", ".join(repr(n) for n in named) or "none"
            raise ConfigError(
                f"SYNC_SHEET_RANGE: {name!r} is neither an A1 range (like A3:P) nor a named "
                f"range of the spreadsheet; named ranges: {known}"
            )
        tab = next((t for t in tabs if t.sheet_id == int(grid.get("sheetId", 0))), None)
        if tab is None:
            raise ConfigError(f"SYNC_SHEET_RANGE: named range {name!r} points at no tab")
        if self.tab_names and self.tab_names != ("*",) and tab.title not in self.tab_names:
            raise ConfigError(
                f"SYNC_SHEET_RANGE: named range {name!r} is on tab {tab.title!r}, which "
                "SYNC_SHEET_NAME does not name; unset SYNC_SHEET_NAME or name that tab"
            )
        # GridRange: 0-based, end-exclusive; a missing bound is the tab's edge.
        end_row = grid.get("endRowIndex")
        end_column = grid.get("endColumnIndex")
        return tab, Area(
            header_row=int(grid.get("startRowIndex", 0)) + 1,
            first_column=int(grid.get("startColumnIndex", 0)),
            end_column=None if end_column is None else int(end_column),
            last_row=None if end_row is None else int(end_row),
        )

    def _values(self, range_: str, what: str) -> list[list[Any]]:
        return self._execute(self._values_request(range_), what).get("values", [])

    def _values_body(self, range_: str, what: str) -> bytes:
        """Return the body of a ``values.get``, unparsed (errors are raised as always)."""
        request = self._values_request(range_)
        request.postproc = self._raw_model.response
        body: bytes = self._execute(request, what)  # type: ignore[assignment]
        return body

    def _values_request(self, range_: str) -> Any:
        return (
            self._service.spreadsheets()
            .values()
            .get(
                spreadsheetId=self.spreadsheet_id,
                range=range_,
                majorDimension="ROWS",
                valueRenderOption="UNFORMATTED_VALUE",
                dateTimeRenderOption="SERIAL_NUMBER",
            )
        )

    def header(self, tab: Tab, area: Area | None = None) -> list[Any]:
        """Return the header row of ``tab`` (row 1, or the first row of the range)."""
        area = area or Area()
        at = area.header_row
        rows = self._values(
            area.cells(tab.title, tab.column_count, at, at),
            f"reading the header of tab {tab.title!r}",
        )
        return rows[0] if rows else []

    def rows(
        self,
        tab: Tab,
        area: Area | None = None,
        columns: int = 1,
        *,
        text: frozenset[int] = frozenset(),
        loose: frozenset[int] = frozenset(),
        raw: bool = False,
    ) -> Iterator[SheetBlock]:
        """Yield the rows below the header, a block per request.

        Google omits trailing empty rows of a range, so a short chunk does not
        mean the end of the sheet; the tab's row count (or the range's end) does.
        A number in a ``text`` column becomes what the sheet shows; in a ``loose``
        column too, unless the sheet shows it as a plain number (dates, times do change).
        ``raw``: a large tab's chunks that need nothing of that (and no merge) come as
        unparsed bodies (SheetBlock.raw), for a helper process to parse.
        """
        area = area or Area()
        fill = _MergeFill(tab.merges, area)
        # Columns still read as shown; one whose numbers all show as General numbers
        # (no 00000, no date format) is not asked for again.
        pending = _Pending(text | loose)
        first = area.header_row + 1
        last = tab.row_count if area.last_row is None else min(area.last_row, tab.row_count)

        # Set once the first chunk's shown values have settled ``pending``: a later chunk
        # fetched meanwhile waits for it before asking for its own.
        settled = threading.Event()

        def span(start: int, step: int) -> tuple[int, str, str]:
            """Return the chunk's last row, its range and what reading it is called."""
            end = min(start + step - 1, last)
            cells = area.cells(tab.title, tab.column_count, start, end)
            return end, cells, f"reading rows {start}-{end} of tab {tab.title!r}"

        def chunk(start: int, step: int, unparsed: bool = False) -> SheetBlock:
            end, cells, what = span(start, step)
            if unparsed and not fill.pending:
                body = self._values_body(cells, what)

                def shown(rows: list[list[Any]], start: int = start) -> None:
                    self._show(tab, area, start, rows, text, pending)

                settled.wait()
                check = frozenset(pending.columns())
                return SheetBlock(start, [], RawChunk(body, check, shown, end - start + 1))
            rows = self._values(cells, what)
            settled.wait()
            if pending:
                self._show(tab, area, start, rows, text, pending)
            return SheetBlock(start, rows)

        if first > last:
            return
        # The first chunk is read alone: what it shows of each column decides which
        # columns later chunks ask for as shown, and its size how many rows make the
        # ~2 MB Google advises (the width alone guesses 30 bytes a cell). The next chunks
        # are asked for while this one is converted: at 60 ms from Google, 26 chunks one
        # after another spend 1.6 s waiting.
        step = chunk_rows_for(columns)
        _, cells, what = span(first, step)
        head = self._values(cells, what)  # always parsed here
        then = first + step
        left = last - then + 1
        weighed = rows_per_response(head, step)

        def later(step: int) -> Generator[SheetBlock, None, None]:
            unparsed = raw and left >= RAW_CHUNKS * step  # worth a helper: a few chunks more
            ahead = max(1, min(READ_AHEAD, READ_AHEAD_ROWS // step))
            return self._fetchers.ahead(
                lambda at: chunk(at, step, unparsed), range(then, last + 1, step), limit=ahead
            )

        # A column the first chunk asks for as shown, and still does after (a 00000 key),
        # costs a batchGet in every chunk: Google's quota may then want larger chunks.
        # Unless it does, the next chunks are asked for while the first one's shown
        # values are (at 60 ms from Google, two round trips sooner).
        alone, paired = rows_per_request(weighed, left, 1), rows_per_request(weighed, left, 2)
        early = later(alone) if alone == paired else None
        try:
            if pending:
                self._show(tab, area, first, head, text, pending)
        except BaseException:
            if early is not None:
                early.close()  # the chunks not yet asked for never are
            raise
        finally:
            settled.set()
        rest = early or later(paired if pending and pending.asked else alone)
        chunks = chain([SheetBlock(first, head)], rest)
        for start, rows, body in chunks:
            if body is not None:
                yield SheetBlock(start, rows, body)
                continue
            if fill.pending:
                rows = [fill(start + offset, cells) for offset, cells in enumerate(rows)]
            for at in range(0, len(rows), BLOCK_ROWS):
                yield SheetBlock(start + at, rows[at : at + BLOCK_ROWS])

    def _show(
        self,
        tab: Tab,
        area: Area,
        start: int,
        chunk: list[list[Any]],
        text: frozenset[int],
        pending: _Pending,
    ) -> None:
        """Replace numbers in the ``pending`` columns of ``chunk`` by what the sheet shows.

        One batchGet (FORMATTED_VALUE) for only the pending columns that hold a number
        in this chunk: a sheet of text keys and notes costs no extra request at all.
        Google's quota is 60 requests a minute, so a column whose numbers all show as
        the General format would show them leaves ``pending``: a sheet with plain
        numbers in extra costs one extra request, a 00000 key column one per chunk.
        A number in a ``text`` column becomes the text shown; in the others (extra) only
        when it is not shown as a plain number (a date, a time).
        """
        wanted = number_columns(chunk, pending.columns())
        if not wanted:
            return
        pending.asked += 1
        end = start + len(chunk) - 1
        ranges = [
            f"{a1_tab(tab.title)}!{column_letters(area.first_column + c)}{start}:"
            f"{column_letters(area.first_column + c)}{end}"
            for c in wanted
        ]
        request = (
            self._service.spreadsheets()
            .values()
            .batchGet(
                spreadsheetId=self.spreadsheet_id,
                ranges=ranges,
                majorDimension="COLUMNS",
                valueRenderOption="FORMATTED_VALUE",
            )
        )
        reply = self._execute(
            request, f"reading rows {start}-{end} of tab {tab.title!r} as the sheet shows them"
        )
        for column, value_range in zip(wanted, reply.get("valueRanges", []), strict=False):
            values = value_range.get("values") or [[]]
            shown = values[0]
            general = True
            for offset, cells in enumerate(chunk):
                if column >= len(cells) or not _is_number(cells[column]):
                    continue
                seen = shown[offset] if offset < len(shown) else None
                if not isinstance(seen, str):
                    continue
                if seen != _general(cells[column]):
                    general = False
                if column in text or not _shows_a_number(seen):
                    cells[column] = seen
            if general:
                pending.discard(column)


_NUMBERS: Final = frozenset({int, float})


def number_columns(chunk: list[list[Any]], columns: Iterable[int]) -> list[int]:
    """Return which of ``columns`` hold a number (not TRUE/FALSE) in some row of ``chunk``.

    Every text column of every chunk is scanned: the chunk is turned into columns in
    C, and each column's cell types gathered into a set, not tested one by one.
    """
    if not columns or not chunk:
        return []
    cells = list(zip_longest(*chunk))
    wide = len(cells)
    return [c for c in sorted(columns) if c < wide and not _NUMBERS.isdisjoint(map(type, cells[c]))]


def _general(value: float) -> str:
    """Return a number as Google's General format shows it (whole numbers without .0)."""
    if value.__class__ is float and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class SignIn:
    """How to sign in to Google: a credentials file or Application Default Credentials.

    ``file`` None: what ``google.auth.default()`` finds (gcloud's application-default
    login, the GCE/GKE/Cloud Run metadata server). ``impersonate``: act as this service
    account. ``subject``: act as this Workspace user (domain-wide delegation).
    """

    file: Path | None = None
    impersonate: str | None = None
    subject: str | None = None


_AWS_TOKEN_TYPE = "urn:ietf:params:aws:token-type:aws4_request"
_FILE_KINDS = (
    "service_account",
    "authorized_user",
    "external_account",
    "external_account_authorized_user",
    "impersonated_service_account",
)


def load_credentials(sign_in: SignIn) -> tuple[Any, str]:
    """Return (Google credentials, the account that needs access to the sheet).

    Never asks the network: a token is fetched at the first Sheets request. (google-auth's
    own loader looks a workload identity pool's project up through Cloud Resource Manager.)
    """
    import google.auth
    from google.auth import exceptions as auth_exceptions

    where = "GOOGLE_APPLICATION_CREDENTIALS"
    try:
        if sign_in.file is None:
            credentials, _ = google.auth.default(scopes=SCOPES)
            account = _account_of(credentials, {})
        else:
            credentials, account = _from_file(sign_in.file)
    except auth_exceptions.DefaultCredentialsError as exc:
        if sign_in.file is None:
            raise ConfigError(
                f"{where} is not set, and no Application Default Credentials were found (no "
                "gcloud auth application-default login, not on Google Cloud): point it at a "
                "service-account key or a workload identity federation file"
            ) from None
        raise ConfigError(f"{where}: {sign_in.file}: {_first_line(exc)}") from None
    if sign_in.subject and not sign_in.impersonate:
        if not hasattr(credentials, "with_subject"):
            raise ConfigError(
                "SYNC_GOOGLE_SUBJECT: domain-wide delegation needs a service account: a "
                "service-account key file, or SYNC_GOOGLE_IMPERSONATE"
            )
        credentials = credentials.with_subject(sign_in.subject)
        account = sign_in.subject
    if sign_in.impersonate:
        from google.auth import impersonated_credentials

        credentials = impersonated_credentials.Credentials(
            source_credentials=credentials,
            target_principal=sign_in.impersonate,
            target_scopes=SCOPES,
            subject=sign_in.subject,
        )
        account = sign_in.subject or sign_in.impersonate
    return credentials, account


def _key_problem(exc: BaseException) -> str:
    """Say in words what is wrong with a credentials file (no class names)."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError):
        return "the file does not exist"
    if isinstance(exc, OSError):
        return f"it cannot be read ({exc.strerror or 'input/output error'})"
    if isinstance(exc, json.JSONDecodeError):
        return f"it is not JSON ({text}); download it again as JSON"
    if isinstance(exc, UnicodeDecodeError):
        return "it is not text (UTF-8 JSON)"
    if "missing fields" in text:
        missing = text.split("missing fields", 1)[1].strip(" .")
        return f"it lacks {missing}"
    if "PEM" in text or "private key" in text.lower():
        return "its private_key cannot be read: create a new key for the service account"
    if isinstance(exc, AttributeError | TypeError | KeyError):
        return "it is JSON, but not an object with the fields of its type"
    return "its fields do not make a usable credential"


def _from_file(path: Path) -> tuple[Any, str]:
    where = "GOOGLE_APPLICATION_CREDENTIALS"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{where}: {path} is not a readable JSON credentials file: {_key_problem(exc)}"
        ) from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind not in _FILE_KINDS:
        raise ConfigError(
            f"{where}: {path} is not a Google credentials file (type {kind!r}; expected one of "
            f"{', '.join(_FILE_KINDS)})"
        )
    try:
        credentials = _credentials_from_info(kind, info)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # AttributeError/TypeError: valid JSON of the wrong shape (a list, a number).
        raise ConfigError(
            f"{where}: {path} is not a usable {kind} credentials file: {_key_problem(exc)}"
        ) from None
    return credentials, _account_of(credentials, info)


def _credentials_from_info(kind: str, info: dict[str, Any]) -> Any:
    if kind == "service_account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
    if kind == "authorized_user":
        from google.oauth2 import credentials as user_credentials

        return user_credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES)
    if kind == "external_account":
        source = info.get("credential_source") or {}
        if info.get("subject_token_type") == _AWS_TOKEN_TYPE:
            from google.auth import aws

            return aws.Credentials.from_info(info, scopes=SCOPES)
        if isinstance(source, dict) and source.get("executable") is not None:
            from google.auth import pluggable

            return pluggable.Credentials.from_info(info, scopes=SCOPES)
        from google.auth import identity_pool

        return identity_pool.Credentials.from_info(info, scopes=SCOPES)
    if kind == "external_account_authorized_user":
        from google.auth import external_account_authorized_user

        return external_account_authorized_user.Credentials.from_info(info, scopes=SCOPES)
    from google.auth import impersonated_credentials

    return impersonated_credentials.Credentials.from_impersonated_service_account_info(
        info, scopes=SCOPES
    )


def _account_of(credentials: Any, info: dict[str, Any]) -> str:
    """Name the Google account the sheet must be shared with, as far as it is known."""
    email = getattr(credentials, "service_account_email", None)
    if isinstance(email, str) and "@" in email:
        return email
    target = getattr(credentials, "_target_principal", None)  # impersonated_service_account
    if isinstance(target, str) and target:
        return target
    kind = info.get("type")
    if kind == "authorized_user" or kind == "external_account_authorized_user":
        who = info.get("account") or "the Google user signed in with gcloud"
        return f"{who} (gcloud auth application-default login)"
    if kind == "external_account":
        return f"the workload identity principal of {info.get('audience', '?')}"
    if email == "default":
        return "the service account of this Google Cloud VM (metadata server)"
    return "the signed-in Google account"


def _build_service(
    sign_in: SignIn, endpoint: str, timeout: float
) -> tuple[Any, str, Callable[[], Any]]:
    """Return the Sheets client, the account it signs in as, and a maker of more HTTP clients.

    httplib2 connections are not thread-safe: a thread that sends requests of its own
    needs its own (signed in with the same credentials).
    """
    import google_auth_httplib2
    import httplib2
    from googleapiclient.discovery import build_from_document

    credentials, account = load_credentials(sign_in)
    # googleapiclient logs its own warning line for every 403/429 it sees; the one line
    # we print names the account and the fix, and cron must not mail Google's as well.
    logging.getLogger("googleapiclient.http").setLevel(logging.ERROR)

    def new_http() -> Any:
        return google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout))

    document = _discovery_document()
    service = build_from_document(
        document,
        http=new_http(),
        client_options={"api_endpoint": endpoint},
        model=_json_model("dataWrapper" in document.get("features", [])),
    )
    return service, account, new_http


def _json_model(data_wrapper: bool) -> Any:
    """Return googleapiclient's JSON model, reading responses with ``fastjson``.

    A 2 MB chunk of rows is parsed in two thirds of the time, and the parse holds the
    interpreter (other threads wait) for as long. Same values as the standard library.
    """
    from googleapiclient.model import JsonModel

    class OrjsonModel(JsonModel):
        def deserialize(self, content: bytes | str) -> Any:
            try:
                body = fastjson.loads(content.encode() if isinstance(content, str) else content)
            except ValueError:  # not JSON: as the client does
                return super().deserialize(content)
            if self._data_wrapper and isinstance(body, dict) and "data" in body:
                body = body["data"]
            return body

    return OrjsonModel(data_wrapper)


def _raw_model() -> Any:
    """Return a model that hands a successful response's body on as bytes, unparsed.

    Errors are the client's own (HttpError from the status), as with the JSON model.
    """
    from googleapiclient.model import JsonModel

    class RawModel(JsonModel):
        def deserialize(self, content: bytes | str) -> Any:
            return content.encode() if isinstance(content, str) else content

    return RawModel(False)


def _discovery_document() -> dict[str, Any]:
    """Return Sheets v4's bundled discovery document, cut to the two methods we call.

    Every ``service.spreadsheets()`` renders each method's docstring from the
    schemas (megabytes for batchUpdate): 0.35 s and 70 MB the first time, 30 ms
    each time after. With stub schemas it takes microseconds; requests, parameter
    checks and JSON responses are unchanged.
    """
    from googleapiclient import discovery_cache

    doc = json.loads(discovery_cache.get_static_doc("sheets", "v4"))
    spreadsheets = doc["resources"]["spreadsheets"]
    values = spreadsheets["resources"]["values"]
    spreadsheets["methods"] = {"get": spreadsheets["methods"]["get"]}
    spreadsheets["resources"] = {
        "values": {
            "methods": {name: values["methods"][name] for name in ("get", "batchGet")},
        }
    }
    # Keep each "response" $ref: without one the client returns raw bytes, not JSON.
    doc["schemas"] = {
        name: {"id": name, "type": "object"}
        for name in ("Spreadsheet", "ValueRange", "BatchGetValuesResponse")
    }
    return doc
