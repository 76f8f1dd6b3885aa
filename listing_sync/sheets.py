"""The only module that knows Google: read a sheet's rows through the Sheets API.

Rows are read in chunks (bounded memory, each response under Google's 2 MB
advice) with ``valueRenderOption=UNFORMATTED_VALUE`` and
``dateTimeRenderOption=SERIAL_NUMBER``. Every request goes through the
``sheets`` Guard; Google's errors are translated here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .errors import (
    ConfigError,
    Failure,
    ListingSyncError,
    PermanentError,
    remote_error,
)
from .resilience import Guard, parse_retry_after

DEPENDENCY = "sheets"
SCOPES = ["https://www.googleapis.com/auth/spreadsheets.readonly"]
# Google advises responses under about 2 MB; budget ~30 bytes a cell.
RESPONSE_BUDGET_BYTES = 2_000_000
BYTES_PER_CELL = 30
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 100, 10_000


def chunk_rows_for(columns: int) -> int:
    """Return how many rows to ask for per request for a sheet this wide."""
    rows = RESPONSE_BUDGET_BYTES // (max(columns, 1) * BYTES_PER_CELL)
    return max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, rows))


def a1_tab(title: str) -> str:
    """Quote a tab title for an A1 range: 'It''s' style."""
    return "'" + title.replace("'", "''") + "'"


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
                f"enabled in {where} (the project of the service account in "
                f"GOOGLE_APPLICATION_CREDENTIALS); enable it at {link}, wait a few minutes, "
                "then run again"
            )
        if status == 400 and "Unable to parse range" in message:
            return ConfigError(
                f"SYNC_SHEET_NAME: Google Sheets {what}: 400 {message}; set SYNC_SHEET_NAME "
                "to a tab's exact name as shown in the sheet (or unset it for the first tab)"
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
    if isinstance(exc, auth_exceptions.RefreshError):
        # The token endpoint refused the key: wrong key, disabled account, bad clock.
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


class SheetLine(NamedTuple):
    """One sheet row as the API sent it."""

    number: int  # 1-based sheet row number
    cells: list[Any]


@dataclass(frozen=True)
class SheetData:
    """A tab's title, its header cells and a lazy iterator over its data rows."""

    tab: str
    header: list[Any]
    rows: Iterator[SheetLine]


@dataclass(frozen=True)
class Tab:
    """One tab of the spreadsheet."""

    title: str
    row_count: int
    column_count: int


class SheetsReader:
    """Read one spreadsheet's rows through google-api-python-client."""

    def __init__(
        self,
        *,
        spreadsheet_id: str,
        credentials_file: Path,
        endpoint: str,
        guard: Guard,
        tab_name: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.spreadsheet_id = spreadsheet_id
        self.guard = guard
        self.tab_name = tab_name
        self._service, self.account = _build_service(credentials_file, endpoint, timeout)

    def read(self) -> SheetData:
        """Return the tab's title and header now, and a lazy iterator over its rows."""
        tab = self.find_tab(self.tab_name)
        header = self.header(tab)
        return SheetData(tab.title, header, self.rows(tab, columns=max(len(header), 1)))

    def close(self) -> None:
        """Close the HTTP connections of the Sheets client."""
        self._service.close()

    def _execute(self, request: Any, what: str) -> dict[str, Any]:
        errors = _foreign_errors()

        def attempt() -> dict[str, Any]:
            try:
                return request.execute(num_retries=0)
            except errors as exc:
                raise translate_google_error(exc, what) from exc

        return self.guard.call(attempt)

    def tabs(self) -> list[Tab]:
        """List the spreadsheet's tabs in order."""
        request = self._service.spreadsheets().get(
            spreadsheetId=self.spreadsheet_id,
            fields="sheets.properties(title,index,gridProperties(rowCount,columnCount))",
        )
        try:
            meta = self._execute(request, "reading the spreadsheet's tabs")
        except PermanentError as exc:
            # The first call names the spreadsheet: a 404 or 403 here is a wrong setting
            # (exit 78, nothing written), not an outage.
            if exc.status == 404:
                raise ConfigError(
                    f"SYNC_SPREADSHEET_ID: no spreadsheet {self.spreadsheet_id!r} ({exc.message}); "
                    "use the id from the sheet's URL"
                ) from exc
            if exc.status == 403:
                raise ConfigError(
                    f"SYNC_SPREADSHEET_ID: spreadsheet {self.spreadsheet_id!r} is not shared with "
                    f"the service account {self.account} (client_email in "
                    "GOOGLE_APPLICATION_CREDENTIALS): share the sheet with it as a viewer "
                    f"(Google said: 403 {exc.message})"
                ) from exc
            raise
        tabs = []
        for sheet in sorted(meta.get("sheets", []), key=lambda s: s["properties"].get("index", 0)):
            props = sheet["properties"]
            grid = props.get("gridProperties", {})
            tabs.append(
                Tab(props["title"], int(grid.get("rowCount", 0)), int(grid.get("columnCount", 0)))
            )
        return tabs

    def find_tab(self, name: str | None) -> Tab:
        """Return the tab called ``name``, or the first tab."""
        tabs = self.tabs()
        if not tabs:
            raise ConfigError(f"SYNC_SPREADSHEET_ID: spreadsheet {self.spreadsheet_id} has no tabs")
        if name is None:
            return tabs[0]
        for tab in tabs:
            if tab.title == name:
                return tab
        titles = ", ".join(t.title for t in tabs)
        raise ConfigError(f"SYNC_SHEET_NAME: no tab named {name!r}; tabs: {titles}")

    def _values(self, range_: str, what: str) -> list[list[Any]]:
        request = (
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
        return self._execute(request, what).get("values", [])

    def header(self, tab: Tab) -> list[Any]:
        """Return row 1 of ``tab``."""
        rows = self._values(f"{a1_tab(tab.title)}!1:1", f"reading the header of tab {tab.title!r}")
        return rows[0] if rows else []

    def rows(self, tab: Tab, *, columns: int) -> Iterator[SheetLine]:
        """Yield (sheet row number, cells) for rows 2.. of ``tab``, one chunk per request.

        Google omits trailing empty rows of a range, so a short chunk does not
        mean the end of the sheet; the tab's row count does.
        """
        step = chunk_rows_for(columns)
        start = 2
        while start <= tab.row_count:
            end = min(start + step - 1, tab.row_count)
            chunk = self._values(
                f"{a1_tab(tab.title)}!{start}:{end}",
                f"reading rows {start}-{end} of tab {tab.title!r}",
            )
            for offset, cells in enumerate(chunk):
                yield SheetLine(start + offset, cells)
            start = end + 1


def _key_problem(exc: BaseException) -> str:
    """Say in words what is wrong with a service-account key file (no class names)."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError):
        return "the file does not exist"
    if isinstance(exc, OSError):
        return f"it cannot be read ({exc.strerror or 'input/output error'})"
    if isinstance(exc, json.JSONDecodeError):
        return f"it is not JSON ({text}); download the key again as JSON"
    if "missing fields" in text:
        missing = text.split("missing fields", 1)[1].strip(" .")
        return (
            f"it lacks {missing}: use a service account's JSON key "
            '("type": "service_account"), not an OAuth client or user credential'
        )
    if "PEM" in text or "private key" in text.lower():
        return "its private_key cannot be read: create a new key for the service account"
    if isinstance(exc, AttributeError | TypeError | KeyError):
        return "it is JSON, but not an object with a service account's fields"
    return "it is not a service account's JSON key"


def _build_service(credentials_file: Path, endpoint: str, timeout: float) -> tuple[Any, str]:
    import google_auth_httplib2
    import httplib2
    from google.oauth2 import service_account
    from googleapiclient.discovery import build_from_document

    try:
        credentials = service_account.Credentials.from_service_account_file(
            str(credentials_file), scopes=SCOPES
        )
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        # AttributeError/TypeError: valid JSON of the wrong shape (a list, a number).
        raise ConfigError(
            f"GOOGLE_APPLICATION_CREDENTIALS: {credentials_file} is not a usable service-account "
            f"key file: {_key_problem(exc)}"
        ) from None
    # googleapiclient logs its own warning line for every 403/429 it sees; the one line
    # we print names the account and the fix, and cron must not mail Google's as well.
    logging.getLogger("googleapiclient.http").setLevel(logging.ERROR)
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout))
    service = build_from_document(
        _discovery_document(), http=http, client_options={"api_endpoint": endpoint}
    )
    return service, str(credentials.service_account_email)


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
    spreadsheets["resources"] = {"values": {"methods": {"get": values["methods"]["get"]}}}
    # Keep each "response" $ref: without one the client returns raw bytes, not JSON.
    doc["schemas"] = {
        name: {"id": name, "type": "object"} for name in ("Spreadsheet", "ValueRange")
    }
    return doc
