"""A local HTTP server that speaks enough Google Sheets API v4 for the real client libraries.

``google-api-python-client`` (static discovery, ``client_options={"api_endpoint": url}``)
and ``google-auth`` service-account credentials whose ``token_uri`` is ``url + "/token"``
talk to it exactly as they talk to Google:

* ``POST /token``: the JWT-bearer grant; the assertion's RS256 signature is checked
  against registered service-account keys (any well-formed assertion is accepted when
  none is registered). Issued access tokens are remembered; a self-signed service-account
  JWT used directly as the Bearer token is accepted too.
* ``GET /v4/spreadsheets/{id}`` (with ``fields`` partial responses),
  ``GET /v4/spreadsheets/{id}/values/{range}`` and ``GET .../values:batchGet?ranges=..``
  with A1 ranges, returning values with Google's quirks: trailing empty cells and rows
  omitted, an empty row inside the range as ``[]``, no ``values`` key for an empty range.

Cells are stored as the UNFORMATTED_VALUE render (str, int, float, bool; None or ""
is an empty cell). ``valueRenderOption=FORMATTED_VALUE`` (Google's default) turns
numbers and booleans into strings the way the "General" format shows them, or the
column's number format when the tab has one (``formats``: zero-padded ``00000``,
dates ``yyyy/mm/dd``, ``yyyy-mm-dd``, ``yyyy年m月d日``). With UNFORMATTED_VALUE,
``dateTimeRenderOption=FORMATTED_STRING`` shows the date-formatted cells and leaves
numbers raw, as Google does. Merged ranges (``merges``) are listed by
``spreadsheets.get``; their value is only in the top-left cell, as in a real sheet.

Tests inject faults (``fail_next``, ``fail_after``), slow responses (``delay``) and read
what was asked (``requests``, ``count``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import re
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from devstack._util import BackgroundServer

DEFAULT_ROW_COUNT = 1000
DEFAULT_COLUMN_COUNT = 26
TOKEN_LIFETIME = 3600
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
SHEETS_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/spreadsheets",
        "https://www.googleapis.com/auth/spreadsheets.readonly",
        "https://www.googleapis.com/auth/drive",
        "https://www.googleapis.com/auth/drive.readonly",
        "https://www.googleapis.com/auth/drive.file",
    }
)
GOOGLE_STATUS_FOR_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    "RESOURCE_EXHAUSTED": (
        "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute "
        "per user' of service 'sheets.googleapis.com' for consumer "
        "'project_number:000000000000'."
    ),
    "INTERNAL": "Internal error encountered.",
    "UNAVAILABLE": "The service is currently unavailable.",
    "DEADLINE_EXCEEDED": "The request timed out. Please try again.",
    "PERMISSION_DENIED": "The caller does not have permission",
    "SERVICE_DISABLED": (
        "Google Sheets API has not been used in project 000000000000 before or it is disabled. "
        "Enable it by visiting https://console.developers.google.com/apis/api/"
        "sheets.googleapis.com/overview?project=000000000000 then retry. If you enabled this "
        "API recently, wait a few minutes for the action to propagate to our systems and retry."
    ),
    "NOT_FOUND": "Requested entity was not found.",
    "UNAUTHENTICATED": (
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project."
    ),
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "CANCELLED": "The operation was cancelled.",
}

Cell = str | int | float | bool | None
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _dumps(value: object) -> str:
    """Return JSON text that encodes as UTF-8.

    A lone surrogate (a LEFT() over an emoji makes one in a real sheet) cannot be
    UTF-8; in JSON it travels as a \\uXXXX escape, which the client decodes back.
    """
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", _encode(value))


# --------------------------------------------------------------------------- A1 notation
_REF = re.compile(r"^([A-Za-z]{0,3})([0-9]{0,7})$")
_PLAIN_TITLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOOKS_LIKE_CELL = re.compile(r"^([A-Za-z]{1,3}[0-9]+|[Rr][0-9]+[Cc][0-9]+)$")


class RangeError(ValueError):
    """An A1 range that cannot be parsed or names no tab."""


def column_letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def column_index(letters: str) -> int:
    """A -> 0, Z -> 25, AA -> 26."""
    value = 0
    for ch in letters.upper():
        value = value * 26 + (ord(ch) - 64)
    return value - 1


def quote_sheet_title(title: str) -> str:
    """Quote a tab title for an A1 range the way the API echoes it."""
    if _PLAIN_TITLE.match(title) and not _LOOKS_LIKE_CELL.match(title):
        return title
    return "'" + title.replace("'", "''") + "'"


def split_sheet(a1: str) -> tuple[str | None, str | None]:
    """Split ``'Tab'!A1:B2`` into (tab title or None, cells part or None)."""
    if a1.startswith("'"):
        name: list[str] = []
        i = 1
        while i < len(a1):
            ch = a1[i]
            if ch == "'":
                if a1[i + 1 : i + 2] == "'":
                    name.append("'")
                    i += 2
                    continue
                rest = a1[i + 1 :]
                if rest == "":
                    return "".join(name), None
                if rest.startswith("!") and len(rest) > 1:
                    return "".join(name), rest[1:]
                raise RangeError(a1)
            name.append(ch)
            i += 1
        raise RangeError(a1)
    if "!" in a1:
        sheet, cells = a1.rsplit("!", 1)
        if not sheet or not cells:
            raise RangeError(a1)
        return sheet, cells
    return None, a1


@dataclass(frozen=True)
class CellBox:
    """A parsed cells part: 0-based, end-exclusive; None means open (sheet edge)."""

    r0: int | None
    r1: int | None
    c0: int | None
    c1: int | None
    single: bool = False


def _parse_ref(ref: str) -> tuple[int | None, int | None]:
    m = _REF.match(ref)
    if not m or (not m.group(1) and not m.group(2)):
        raise RangeError(ref)
    col = column_index(m.group(1)) if m.group(1) else None
    if m.group(2):
        row = int(m.group(2))
        if row < 1:
            raise RangeError(ref)
        return col, row - 1
    return col, None


def parse_cells(cells: str) -> CellBox:
    """Parse ``A1``, ``A1:B2``, ``A:B``, ``1:2``, ``A2:Z`` (open end) into a CellBox."""
    parts = cells.split(":")
    if len(parts) > 2:
        raise RangeError(cells)
    if len(parts) == 1:
        col, row = _parse_ref(parts[0])
        if col is not None and row is not None:
            return CellBox(row, row + 1, col, col + 1, single=True)
        if col is not None:
            return CellBox(None, None, col, col + 1)
        assert row is not None
        return CellBox(row, row + 1, None, None)
    (ca, ra), (cb, rb) = _parse_ref(parts[0]), _parse_ref(parts[1])
    if (ca is None) != (cb is None):
        raise RangeError(cells)
    if ca is None and (ra is None or rb is None):
        raise RangeError(cells)
    c0 = c1 = None
    if ca is not None and cb is not None:
        c0, c1 = min(ca, cb), max(ca, cb) + 1
    r0 = r1 = None
    if ra is not None and rb is not None:
        r0, r1 = min(ra, rb), max(ra, rb) + 1
    elif ra is not None:
        r0 = ra
    elif rb is not None:
        r1 = rb + 1
    single = r0 is not None and r1 == r0 + 1 and c0 is not None and c1 == c0 + 1
    return CellBox(r0, r1, c0, c1, single=single)


# --------------------------------------------------------------------------- field masks
def _merge_field(tree: dict[str, Any], path: list[str], sub: dict[str, Any] | None) -> None:
    """Add one mask path to ``tree``; an empty dict means "the whole value"."""
    node = tree
    for name in path[:-1]:
        child = node.get(name)
        if child is None:
            child = node[name] = {}
        elif child == {}:
            return  # the whole parent is selected already
        node = child
    leaf = path[-1]
    existing = node.get(leaf)
    if not sub:
        node[leaf] = {}
    elif existing is None:
        node[leaf] = dict(sub)
    elif existing:
        existing.update(sub)


def parse_fields(spec: str) -> dict[str, Any]:
    """Parse a partial-response mask (``a.b,c(d,e)``, ``a/b`` too) into a nested dict."""
    pos = 0

    def parse_list() -> dict[str, Any]:
        nonlocal pos
        tree: dict[str, Any] = {}
        while pos < len(spec):
            start = pos
            while pos < len(spec) and spec[pos] not in ",()":
                pos += 1
            path = [p for p in re.split(r"[./]", spec[start:pos].strip()) if p]
            sub: dict[str, Any] | None = None
            if pos < len(spec) and spec[pos] == "(":
                pos += 1
                sub = parse_list()
                if pos >= len(spec) or spec[pos] != ")":
                    raise ValueError(f"bad fields mask: {spec!r}")
                pos += 1
            if path:
                _merge_field(tree, path, sub)
            if pos < len(spec) and spec[pos] == ",":
                pos += 1
                continue
            break
        return tree

    tree = parse_list()
    if pos != len(spec):
        raise ValueError(f"bad fields mask: {spec!r}")
    return tree


def apply_fields(obj: Any, tree: dict[str, Any]) -> Any:
    """Keep only the masked parts of a JSON value (an empty subtree keeps everything)."""
    if not tree or "*" in tree:
        return obj
    if isinstance(obj, list):
        return [apply_fields(item, tree) for item in obj]
    if isinstance(obj, dict):
        return {k: apply_fields(v, tree[k]) for k, v in obj.items() if k in tree}
    return obj


# --------------------------------------------------------------------------- data
def _trim(row: Iterable[Cell]) -> list[Cell]:
    out: list[Cell] = ["" if v is None else v for v in row]
    while out and out[-1] == "":
        out.pop()
    return out


# How cells are rendered: valueRenderOption x dateTimeRenderOption.
RAW, SHOWN, DATES = "raw", "shown", "dates"
_DATE_PATTERN = re.compile(r"[yd]", re.IGNORECASE)
_SERIAL_EPOCH = 693594  # date(1899, 12, 30).toordinal()


def is_date_format(pattern: str) -> bool:
    """Tell whether a number format shows a date."""
    return bool(_DATE_PATTERN.search(pattern))


def apply_format(value: Cell, pattern: str) -> Cell:
    """Show a number with ``pattern`` (the few formats tests use); other cells as General."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _format_cell(value)
    if is_date_format(pattern):
        from datetime import date

        day = date.fromordinal(_SERIAL_EPOCH + int(value))
        text = pattern.replace("yyyy", f"{day.year:04d}")
        if "mm" in text:
            text = text.replace("mm", f"{day.month:02d}").replace("dd", f"{day.day:02d}")
        else:
            text = text.replace("m", str(day.month)).replace("d", str(day.day))
        return text
    if pattern and set(pattern) <= {"0", "#"}:
        return str(round(value)).zfill(pattern.count("0"))
    return _format_cell(value)


def _format_cell(value: Cell) -> Cell:
    """FORMATTED_VALUE as the "General" number format would show it."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value


class _Tab:
    """One sheet (tab): trimmed rows and their pre-serialised JSON."""

    def __init__(
        self,
        title: str,
        sheet_id: int,
        index: int,
        rows: Sequence[Sequence[Cell]],
        row_count: int | None,
        column_count: int | None,
        hidden: bool = False,
        formats: dict[int, str] | None = None,
        merges: Sequence[CellBox] = (),
    ) -> None:
        self.title = title
        self.sheet_id = sheet_id
        self.index = index
        self.hidden = hidden
        self.formats = dict(formats or {})  # 0-based column -> number format pattern
        self.merges = list(merges)
        self.rows: list[list[Cell]] = [_trim(r) for r in rows]
        self.width = max((len(r) for r in self.rows), default=0)
        self.row_count = row_count or max(DEFAULT_ROW_COUNT, len(self.rows))
        self.column_count = column_count or max(DEFAULT_COLUMN_COUNT, self.width)
        self._lock = threading.Lock()
        self._encoded: dict[str, list[bytes]] = {RAW: [_dumps(r).encode() for r in self.rows]}
        if not any(is_date_format(p) for p in self.formats.values()):
            self._encoded[DATES] = self._encoded[RAW]

    def render(self, column: int, value: Cell, mode: str) -> Cell:
        """One cell as ``mode`` shows it."""
        if mode == RAW:
            return value
        pattern = self.formats.get(column, "")
        if mode == SHOWN:
            return apply_format(value, pattern)
        if is_date_format(pattern) and isinstance(value, int | float):
            return apply_format(value, pattern)  # DATES: dates as shown, numbers raw
        return value

    def encoded(self, mode: str) -> list[bytes]:
        """Each full row as JSON bytes (built once per render option)."""
        with self._lock:
            enc = self._encoded.get(mode)
            if enc is None:
                enc = [
                    _dumps([self.render(c, v, mode) for c, v in enumerate(r)]).encode()
                    for r in self.rows
                ]
                self._encoded[mode] = enc
            return enc

    def properties(self) -> dict[str, Any]:
        """The sheet's ``properties`` object (Google sends ``hidden`` only when true)."""
        props: dict[str, Any] = {
            "sheetId": self.sheet_id,
            "title": self.title,
            "index": self.index,
            "sheetType": "GRID",
            "gridProperties": {"rowCount": self.row_count, "columnCount": self.column_count},
        }
        if self.hidden:
            props["hidden"] = True
        return props

    def grid_ranges(self) -> list[dict[str, Any]]:
        """The tab's ``merges``: GridRanges, 0-based, end-exclusive."""
        return [
            {
                "sheetId": self.sheet_id,
                "startRowIndex": box.r0,
                "endRowIndex": box.r1,
                "startColumnIndex": box.c0,
                "endColumnIndex": box.c1,
            }
            for box in self.merges
        ]

    def value_range(self, box: CellBox, *, mode: str, major: str) -> bytes:
        """A ValueRange JSON document for ``box`` within this tab."""
        r0 = box.r0 or 0
        c0 = box.c0 or 0
        r1 = self.row_count if box.r1 is None else min(box.r1, self.row_count)
        c1 = self.column_count if box.c1 is None else min(box.c1, self.column_count)
        r1, c1 = max(r1, r0 + 1), max(c1, c0 + 1)
        title = quote_sheet_title(self.title)
        if box.single or (r1 - r0 == 1 and c1 - c0 == 1):
            label = f"{title}!{column_letters(c0)}{r0 + 1}"
        else:
            label = f"{title}!{column_letters(c0)}{r0 + 1}:{column_letters(c1 - 1)}{r1}"
        head = b'{"range":' + _dumps(label).encode() + b',"majorDimension":"' + major.encode()
        hi = min(r1, len(self.rows))
        window: list[bytes]
        if major == "COLUMNS":
            window = self._columns(r0, hi, c0, c1, mode)
        elif c0 == 0 and c1 >= self.width:
            window = self.encoded(mode)[r0:hi]
        else:
            render = self.render
            window = [
                _dumps(_trim(render(c0 + i, v, mode) for i, v in enumerate(r[c0:c1]))).encode()
                for r in self.rows[r0:hi]
            ]
        n = len(window)
        while n and window[n - 1] == b"[]":
            n -= 1
        if n == 0:
            return head + b'"}'
        if n != len(window):
            window = window[:n]
        return head + b'","values":[' + b",".join(window) + b"]}"

    def _columns(self, r0: int, r1: int, c0: int, c1: int, mode: str) -> list[bytes]:
        rows = self.rows[r0:r1]
        width = min(c1, max((len(r) for r in rows), default=0))
        out = []
        for c in range(c0, width):
            col = _trim(r[c] if c < len(r) else "" for r in rows)
            out.append(_dumps([self.render(c, v, mode) for v in col]).encode())
        return out


class _Spreadsheet:
    def __init__(self, spreadsheet_id: str) -> None:
        self.spreadsheet_id = spreadsheet_id
        self.title = spreadsheet_id
        self.tabs: dict[str, _Tab] = {}
        # name -> (tab title, cells): a named range, usable wherever a range is.
        self.named: dict[str, tuple[str, CellBox]] = {}

    def resolve(self, a1: str) -> tuple[_Tab, CellBox]:
        sheet, cells = split_sheet(a1)
        if sheet is None:
            assert cells is not None
            if cells in self.tabs:
                return self.tabs[cells], CellBox(None, None, None, None)
            if cells in self.named:
                title, box = self.named[cells]
                return self.tabs[title], box
            if not self.tabs:
                raise RangeError(a1)
            return next(iter(self.tabs.values())), parse_cells(cells)
        tab = self.tabs.get(sheet)
        if tab is None:
            raise RangeError(a1)
        return tab, (parse_cells(cells) if cells else CellBox(None, None, None, None))

    def document(self) -> dict[str, Any]:
        return {
            "spreadsheetId": self.spreadsheet_id,
            "properties": {
                "title": self.title,
                "locale": "ja_JP",
                "autoRecalc": "ON_CHANGE",
                "timeZone": "Asia/Tokyo",
            },
            "sheets": [
                {
                    "properties": tab.properties(),
                    **({"merges": m} if (m := tab.grid_ranges()) else {}),
                }
                for tab in self.tabs.values()
            ],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.spreadsheet_id}/edit",
            **({"namedRanges": self._named_ranges()} if self.named else {}),
        }

    def _named_ranges(self) -> list[dict[str, Any]]:
        """The ``namedRanges`` of the document: GridRanges, 0-based, end-exclusive.

        Like Google, an open side of the range (``A3:P``) has no index at all.
        """
        out = []
        for i, (name, (title, box)) in enumerate(self.named.items()):
            grid: dict[str, Any] = {"sheetId": self.tabs[title].sheet_id}
            for key, value in (
                ("startRowIndex", box.r0),
                ("endRowIndex", box.r1),
                ("startColumnIndex", box.c0),
                ("endColumnIndex", box.c1),
            ):
                if value is not None:
                    grid[key] = value
            out.append({"namedRangeId": f"nr{i:08d}", "name": name, "range": grid})
        return out


# --------------------------------------------------------------------------- recording, faults
@dataclass(frozen=True)
class RecordedRequest:
    """One request the server answered."""

    method: str
    path: str  # percent-decoded path, e.g. /v4/spreadsheets/ID/values/'Tab'!A1:Z5
    query: dict[str, list[str]]
    time: float  # time.time() when the request arrived
    status: int  # the status answered (0: connection dropped)


@dataclass
class _Fault:
    status: int
    google_status: str
    message: str
    retry_after: str | None
    path_contains: str
    skip: int  # matching requests to let through first
    remaining: int | None  # failures left; None: forever


@dataclass
class _Delay:
    seconds: float
    path_contains: str
    remaining: int | None


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT")
    header = json.loads(_b64decode(parts[0]))
    payload = json.loads(_b64decode(parts[1]))
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("not a JWT")
    return header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), _b64decode(parts[2])


@dataclass(frozen=True)
class _Grant:
    client_email: str
    scopes: frozenset[str]
    expires_at: float


Response = tuple[int, bytes, list[tuple[str, str]]]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def google_error(
    status: int, google_status: str | None = None, message: str | None = None
) -> bytes:
    """Google's JSON error body, as the real API sends it (ErrorInfo details, no Retry-After).

    ``google_status`` "SERVICE_DISABLED" gives the 403 PERMISSION_DENIED that Google sends
    when the Sheets API is not enabled in the key's Cloud project.
    """
    gstatus = google_status or GOOGLE_STATUS_FOR_CODE.get(status, "UNKNOWN")
    error: dict[str, Any] = {
        "code": status,
        "message": message or DEFAULT_MESSAGES.get(gstatus) or _phrase(status),
        "status": "PERMISSION_DENIED" if gstatus == "SERVICE_DISABLED" else gstatus,
    }
    if gstatus == "RESOURCE_EXHAUSTED":
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "quota_location": "global",
                    "quota_metric": "sheets.googleapis.com/read_requests",
                    "quota_limit": "ReadRequestsPerMinutePerUser",
                    "quota_limit_value": "60",
                    "service": "sheets.googleapis.com",
                    "consumer": "projects/000000000000",
                },
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Request a higher quota limit.",
                        "url": "https://cloud.google.com/docs/quota#requesting_higher_quota",
                    }
                ],
            },
        ]
    if gstatus == "SERVICE_DISABLED":
        overview = (
            "https://console.developers.google.com/apis/api/sheets.googleapis.com/overview"
            "?project=000000000000"
        )
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {"description": "Google developers console API activation", "url": overview}
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "SERVICE_DISABLED",
                "domain": "googleapis.com",
                "metadata": {
                    "service": "sheets.googleapis.com",
                    "consumer": "projects/000000000000",
                },
            },
        ]
    return _dumps({"error": error}).encode()


# --------------------------------------------------------------------------- HTTP
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "ESF"
    sys_version = ""
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log lines."""

    def _serve(self) -> None:
        self.server.app._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: SheetsServer) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client went away mid-request: nothing to report."""


class SheetsServer(BackgroundServer):
    """Google Sheets API v4 stand-in on 127.0.0.1 (see the module docstring)."""

    server_class = _HTTPServer
    thread_name = "sheets-server"

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, key_file: Path | None = None
    ) -> None:
        self._init_server(host, port)
        self._lock = threading.Lock()
        self._spreadsheets: dict[str, _Spreadsheet] = {}
        self._next_sheet_id = 1_000_000_001
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._delays: list[_Delay] = []
        self._tokens: dict[str, _Grant] = {}
        self._keys: dict[str, tuple[str, rsa.RSAPublicKey]] = {}  # email -> (kid, key)
        self.errors: list[str] = []  # unexpected exceptions while serving
        self._subject_tokens: dict[str, str] = {}  # STS: trusted subject token -> principal
        self.exchanges: list[str] = []  # STS: the audience of each token exchanged
        if key_file is not None:
            self.register_key_file(key_file)

    @property
    def token_uri(self) -> str:
        """The ``token_uri`` to put in a service-account key file."""
        return self.url + "/token"

    @property
    def sts_url(self) -> str:
        """The ``token_url`` (STS) to put in an ``external_account`` file."""
        return self.url + "/v1/token"

    # -- data --------------------------------------------------------------------------
    def set_sheet(
        self,
        spreadsheet_id: str,
        tab: str,
        rows: Sequence[Sequence[Cell]],
        *,
        row_count: int | None = None,
        column_count: int | None = None,
        hidden: bool = False,
        formats: dict[str, str] | None = None,
        merges: Sequence[str] = (),
    ) -> None:
        """Create or replace a tab; the first tab added to a spreadsheet is its first tab.

        ``row_count``/``column_count`` set gridProperties (default: the data's size, at
        least 1000 x 26 like a new Google sheet). ``hidden``: hidden from the sheet's users.
        ``formats``: {column letters: number format} (``{"A": "00000"}``). ``merges``: A1
        ranges merged in the sheet (``["C5:C7"]``); put their value in the top-left cell.
        """
        with self._lock:
            book = self._spreadsheets.get(spreadsheet_id)
            if book is None:
                book = self._spreadsheets[spreadsheet_id] = _Spreadsheet(spreadsheet_id)
            old = book.tabs.get(tab)
            if old is not None:
                sheet_id, index = old.sheet_id, old.index
            else:
                sheet_id = 0 if not book.tabs else self._next_sheet_id
                if book.tabs:
                    self._next_sheet_id += 1
                index = len(book.tabs)
        by_index = {column_index(k): v for k, v in (formats or {}).items()}
        boxes = [parse_cells(m) for m in merges]
        new = _Tab(  # the slow part: outside the lock
            tab, sheet_id, index, rows, row_count, column_count, hidden, by_index, boxes
        )
        with self._lock:
            book = self._spreadsheets.setdefault(spreadsheet_id, _Spreadsheet(spreadsheet_id))
            book.tabs[tab] = new

    def set_named_range(self, spreadsheet_id: str, name: str, tab: str, cells: str) -> None:
        """Name the range ``cells`` (A1, like ``A3:P``) of ``tab``."""
        box = parse_cells(cells)
        with self._lock:
            book = self._spreadsheets[spreadsheet_id]
            if tab not in book.tabs:
                raise KeyError(tab)
            book.named[name] = (tab, box)

    def set_title(self, spreadsheet_id: str, title: str) -> None:
        """Set the spreadsheet's title (defaults to its id)."""
        with self._lock:
            self._spreadsheets[spreadsheet_id].title = title

    def remove_sheet(self, spreadsheet_id: str, tab: str | None = None) -> None:
        """Delete one tab, or the whole spreadsheet when ``tab`` is None."""
        with self._lock:
            if tab is None:
                self._spreadsheets.pop(spreadsheet_id, None)
                return
            book = self._spreadsheets[spreadsheet_id]
            del book.tabs[tab]
            for i, t in enumerate(book.tabs.values()):
                t.index = i

    def load_json(self, path: Path, spreadsheet_id: str) -> list[str]:
        """Load ``{"tab", "rows"}`` or ``{"sheets": [{"tab", "rows"}, ...]}``; return the tabs."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        sheets = data.get("sheets", [data])
        for sheet in sheets:
            self.set_sheet(spreadsheet_id, sheet["tab"], sheet["rows"])
        return [sheet["tab"] for sheet in sheets]

    def reset(self) -> None:
        """Forget all spreadsheets, faults, delays and recorded requests (tokens stay valid)."""
        with self._lock:
            self._spreadsheets.clear()
            self._faults.clear()
            self._delays.clear()
            self._requests.clear()
            self.errors.clear()
            self._subject_tokens.clear()
            self.exchanges.clear()

    # -- auth --------------------------------------------------------------------------
    def register_key_file(self, path: Path) -> None:
        """Trust a service-account key file: assertions must be signed with its key."""
        info = json.loads(Path(path).read_text(encoding="utf-8"))
        private = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError(f"{path}: not an RSA key")
        with self._lock:
            self._keys[info["client_email"]] = (
                info.get("private_key_id", ""),
                private.public_key(),
            )

    def revoke_tokens(self) -> None:
        """Invalidate every issued access token (clients must fetch a new one)."""
        with self._lock:
            self._tokens.clear()

    def issue_token(self, client_email: str = "test@example.com", scopes: str = "") -> str:
        """Issue an access token directly (for raw HTTP tests)."""
        token = "ya29.local-" + secrets.token_urlsafe(32)
        grant = _Grant(client_email, frozenset(scopes.split()), time.time() + TOKEN_LIFETIME)
        with self._lock:
            self._tokens[token] = grant
        return token

    # -- inspection ----------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests answered so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def count(self, path_contains: str = "") -> int:
        """How many answered requests had ``path_contains`` in their (decoded) path."""
        with self._lock:
            return sum(1 for r in self._requests if path_contains in r.path)

    def reset_counts(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    # -- faults --------------------------------------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        google_status: str | None = None,
        message: str | None = None,
        retry_after: str | None = None,
        path_contains: str = "/values",
    ) -> None:
        """Answer the next ``n`` matching requests with a Google error (status 0: drop)."""
        self._add_fault(status, google_status, message, retry_after, path_contains, 0, n)

    def fail_after(
        self,
        k: int,
        *,
        status: int = 429,
        google_status: str | None = None,
        message: str | None = None,
        retry_after: str | None = None,
        path_contains: str = "/values",
        times: int | None = None,
    ) -> None:
        """Let k-1 matching requests through, then fail the k-th and later ones.

        ``times`` limits how many fail (None: every one until ``clear_faults()``).
        """
        if k < 1:
            raise ValueError("k counts from 1")
        self._add_fault(status, google_status, message, retry_after, path_contains, k - 1, times)

    def _add_fault(
        self,
        status: int,
        google_status: str | None,
        message: str | None,
        retry_after: str | None,
        path_contains: str,
        skip: int,
        remaining: int | None,
    ) -> None:
        gstatus = google_status or GOOGLE_STATUS_FOR_CODE.get(status, "UNKNOWN")
        fault = _Fault(
            status,
            gstatus,
            message or DEFAULT_MESSAGES.get(gstatus, ""),
            retry_after,
            path_contains,
            skip,
            remaining,
        )
        with self._lock:
            self._faults.append(fault)

    def delay(
        self, seconds: float, *, path_contains: str = "/values", times: int | None = None
    ) -> None:
        """Sleep ``seconds`` before answering matching requests; delay(0) removes all delays."""
        with self._lock:
            if seconds <= 0:
                self._delays.clear()
            else:
                self._delays.append(_Delay(seconds, path_contains, times))

    def clear_faults(self) -> None:
        """Remove queued faults and delays."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def _take_fault(self, path: str) -> tuple[_Fault | None, float]:
        chosen: _Fault | None = None
        pause = 0.0
        with self._lock:
            for fault in self._faults:
                if fault.path_contains not in path:
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                elif chosen is None:
                    chosen = fault
                    if fault.remaining is not None:
                        fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
            for d in self._delays:
                if d.path_contains in path and (d.remaining is None or d.remaining > 0):
                    pause += d.seconds
                    if d.remaining is not None:
                        d.remaining -= 1
        return chosen, pause

    # -- request handling --------------------------------------------------------------
    def _handle(self, handler: _Handler) -> None:
        arrived = time.time()
        parts = urlsplit(handler.path)
        raw_segments = parts.path.split("/")
        path = "/".join(unquote(s) for s in raw_segments)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        status = 500
        recorded = False
        try:
            fault, pause = self._take_fault(path)
            if pause:
                time.sleep(pause)
            if fault is not None and fault.status == 0:
                status = 0
                # Record before dropping: the client may look the moment it sees the drop.
                with self._lock:
                    self._requests.append(RecordedRequest(handler.command, path, query, arrived, 0))
                recorded = True
                handler.close_connection = True
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
                return
            if fault is not None:
                status, payload, headers = (
                    fault.status,
                    google_error(fault.status, fault.google_status, fault.message),
                    [("Retry-After", fault.retry_after)] if fault.retry_after else [],
                )
            else:
                segments = [unquote(s) for s in raw_segments]
                status, payload, headers = self._route(
                    handler.command, segments, query, body, handler.headers.get("Authorization")
                )
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            status, payload, headers = 500, google_error(500, "INTERNAL", str(exc)), []
        finally:
            if not recorded:
                with self._lock:
                    self._requests.append(
                        RecordedRequest(handler.command, path, query, arrived, status)
                    )
        self._send(handler, status, payload, headers)

    @staticmethod
    def _send(
        handler: _Handler, status: int, payload: bytes, headers: list[tuple[str, str]]
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_phrase(status)}",
            "Content-Type: application/json; charset=UTF-8",
            f"Content-Length: {len(payload)}",
            f"Date: {formatdate(usegmt=True)}",
            "Server: ESF",
            "Vary: Origin, X-Origin, Referer",
            *(f"{k}: {v}" for k, v in headers),
        ]
        if handler.close_connection:
            lines.append("Connection: close")
        try:
            handler.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)
        except OSError:
            handler.close_connection = True

    def _route(
        self,
        method: str,
        segments: list[str],
        query: dict[str, list[str]],
        body: bytes,
        authorization: str | None,
    ) -> Response:
        # segments of "/v4/spreadsheets/ID/values/RANGE": ["", "v4", "spreadsheets", ...]
        if method == "POST" and segments[-1] == "token":
            return self._token(body)
        if len(segments) < 4 or segments[1] != "v4" or segments[2] != "spreadsheets":
            return 404, google_error(404, "NOT_FOUND", "Method not found."), []
        if method != "GET":
            return 404, google_error(404, "NOT_FOUND", "Method not found."), []
        denied = self._check_auth(authorization)
        if denied is not None:
            return denied
        with self._lock:
            book = self._spreadsheets.get(segments[3])
        if book is None:
            return 404, google_error(404, "NOT_FOUND"), []
        fields = query.get("fields", [None])[0]
        rest = segments[4:]
        render = query.get("valueRenderOption", ["FORMATTED_VALUE"])[0]
        dates = query.get("dateTimeRenderOption", ["SERIAL_NUMBER"])[0]
        # Google ignores dateTimeRenderOption when values are rendered formatted.
        mode = (
            SHOWN if render == "FORMATTED_VALUE" else DATES if dates == "FORMATTED_STRING" else RAW
        )
        major = query.get("majorDimension", ["ROWS"])[0]
        if major not in ("ROWS", "COLUMNS", "DIMENSION_UNSPECIFIED"):
            return (
                400,
                google_error(400, message=f"Invalid value at 'major_dimension' ({major})"),
                [],
            )
        major = "COLUMNS" if major == "COLUMNS" else "ROWS"
        try:
            if not rest:
                return 200, self._masked(_dumps(book.document()).encode(), fields), []
            if rest[0] == "values" and len(rest) == 2:
                tab, box = book.resolve(rest[1])
                payload = tab.value_range(box, mode=mode, major=major)
                return 200, self._masked(payload, fields), []
            if rest == ["values:batchGet"]:
                ranges = query.get("ranges", [])
                parts = []
                for a1 in ranges:
                    tab, box = book.resolve(a1)
                    parts.append(tab.value_range(box, mode=mode, major=major))
                payload = b'{"spreadsheetId":' + _dumps(book.spreadsheet_id).encode()
                if parts:
                    payload += b',"valueRanges":[' + b",".join(parts) + b"]"
                return 200, self._masked(payload + b"}", fields), []
        except RangeError as exc:
            return 400, google_error(400, message=f"Unable to parse range: {exc}"), []
        return 404, google_error(404, "NOT_FOUND", "Method not found."), []

    @staticmethod
    def _masked(payload: bytes, fields: str | None) -> bytes:
        if not fields:
            return payload
        return _dumps(apply_fields(json.loads(payload), parse_fields(fields))).encode()

    def _check_auth(self, authorization: str | None) -> Response | None:
        unauth = (
            401,
            google_error(401, "UNAUTHENTICATED"),
            [("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')],
        )
        if not authorization or not authorization.startswith("Bearer "):
            return unauth
        token = authorization[len("Bearer ") :].strip()
        with self._lock:
            grant = self._tokens.get(token)
        if grant is None:
            # A service account may sign its own JWT and use it as the access token.
            try:
                grant = self._verify_assertion(token, token_endpoint=False)
            except ValueError:
                return unauth
        if grant.expires_at < time.time():
            return unauth
        if grant.scopes and not grant.scopes & SHEETS_SCOPES:
            return (
                403,
                google_error(403, message="Request had insufficient authentication scopes."),
                [],
            )
        return None

    def _verify_assertion(self, assertion: str, *, token_endpoint: bool) -> _Grant:
        header, claims, signing_input, signature = _decode_jwt(assertion)
        email = str(claims.get("iss", ""))
        with self._lock:
            known = self._keys.get(email)
            any_keys = bool(self._keys)
        if any_keys:
            if known is None:
                raise ValueError("Invalid grant: account not found")
            kid, public_key = known
            if header.get("alg") != "RS256" or (header.get("kid") and header["kid"] != kid):
                raise ValueError("Invalid JWT Signature.")
            try:
                public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                raise ValueError("Invalid JWT Signature.") from None
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise ValueError("Invalid JWT: missing iat or exp")
        if exp < now - 60 or iat > now + 300 or exp - iat > 3600 + 60:
            raise ValueError(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim."
            )
        if token_endpoint:
            return _Grant(
                email, frozenset(str(claims.get("scope", "")).split()), now + TOKEN_LIFETIME
            )
        return _Grant(email, frozenset(), float(exp))

    def _token(self, body: bytes) -> Response:
        form = parse_qs(body.decode("utf-8", "replace"))
        grant_type = form.get("grant_type", [""])[0]
        if grant_type == TOKEN_EXCHANGE:
            return self._exchange(form)
        if grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            err = {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "}
            return 400, _dumps(err).encode(), []
        try:
            grant = self._verify_assertion(form.get("assertion", [""])[0], token_endpoint=True)
        except ValueError as exc:
            err = {"error": "invalid_grant", "error_description": str(exc) or "Invalid JWT"}
            return 400, _dumps(err).encode(), []
        if not grant.scopes:
            err = {
                "error": "invalid_scope",
                "error_description": "Empty or missing scope not allowed.",
            }
            return 400, _dumps(err).encode(), []
        token = "ya29.local-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = grant
        reply = {"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"}
        return 200, _dumps(reply).encode(), [("Cache-Control", "no-cache, no-store")]

    def trust_subject_token(self, token: str, principal: str) -> None:
        """Accept ``token`` (an OIDC/SAML token of another identity provider) at the STS.

        Once any is trusted, the token exchange refuses every other subject token.
        """
        with self._lock:
            self._subject_tokens[token] = principal

    def _exchange(self, form: dict[str, list[str]]) -> Response:
        """The STS token exchange (RFC 8693) of workload identity federation."""
        subject = form.get("subject_token", [""])[0]
        audience = form.get("audience", [""])[0]
        with self._lock:
            trusted = dict(self._subject_tokens)
        if not subject or not audience or not form.get("subject_token_type", [""])[0]:
            err = {
                "error": "invalid_request",
                "error_description": "subject_token, subject_token_type and audience are required",
            }
            return 400, _dumps(err).encode(), []
        if trusted and subject not in trusted:
            err = {
                "error": "invalid_grant",
                "error_description": "The token is invalid or does not match the audience.",
            }
            return 400, _dumps(err).encode(), []
        scopes = frozenset(form.get("scope", [""])[0].split())
        principal = trusted.get(subject, audience)
        token = "ya29.sts-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = _Grant(principal, scopes, time.time() + TOKEN_LIFETIME)
            self.exchanges.append(audience)
        reply = {
            "access_token": token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
        }
        return 200, _dumps(reply).encode(), [("Cache-Control", "no-cache, no-store")]


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """Serve a JSON sheet file until Ctrl-C: ``python -m devstack.sheets_server FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.sheets_server",
        description="Serve a JSON sheet ({'tab', 'rows'}) over the Google Sheets v4 API.",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--spreadsheet-id", default="sample-listings")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--key-file",
        type=Path,
        help="service-account key to trust; written (0600, token_uri -> this server) if missing",
    )
    args = parser.parse_args(argv)
    from .keys import write_service_account_key

    with SheetsServer(port=args.port) as server:
        tabs = server.load_json(args.file, args.spreadsheet_id)
        if args.key_file is not None:
            if not args.key_file.exists():
                write_service_account_key(args.key_file, token_uri=server.token_uri)
            server.register_key_file(args.key_file)
        print(f"Sheets API v4 on {server.url}  spreadsheet {args.spreadsheet_id!r} tabs {tabs}")
        if args.key_file is not None:
            print(f"GOOGLE_APPLICATION_CREDENTIALS={args.key_file}")
        print("Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
