"""The only module that speaks PostgREST (Supabase's REST API) over httpx.

Every request goes through the ``postgrest`` Guard (rate limit, breaker,
retry). httpx errors and PostgREST error bodies are translated into the
``listing_sync.errors`` tree here and nowhere else.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote

import httpx

from . import fastjson
from .errors import ConfigError, Failure, ListingSyncError, RemoteError, remote_error
from .resilience import Guard, parse_retry_after
from .workers import Workers

DEPENDENCY = "postgrest"
# Proxies in front of Supabase answer 414 beyond about 8 KB of URL.
MAX_FILTER_CHARS = 6000


def quote_value(value: str) -> str:
    """Quote one value for an ``in.(...)`` list: wrap in "", escape \\ and "."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def in_filters(values: Sequence[str], max_chars: int = MAX_FILTER_CHARS) -> Iterator[str]:
    """Yield ``in.(...)`` filters over ``values``, each short enough for one URL."""
    chunk: list[str] = []
    size = 0
    for value in values:
        quoted = quote_value(value)
        # Budget the fully percent-encoded length (an upper bound of what httpx sends),
        # so plain ASCII numbers are not charged 3x and split into needlessly many requests.
        cost = len(quote(quoted, safe="")) + 3  # + the encoded comma
        if chunk and size + cost > max_chars:
            yield "in.(" + ",".join(chunk) + ")"
            chunk, size = [], 0
        chunk.append(quoted)
        size += cost
    if chunk:
        yield "in.(" + ",".join(chunk) + ")"


def translate_httpx_error(exc: httpx.HTTPError, what: str) -> RemoteError:
    """Turn an httpx transport error into a (transient) RemoteError naming host and port.

    The URL never holds the key (it travels in headers), so naming the address is safe.
    """
    kind = type(exc).__name__
    detail = str(exc) or kind
    where = ""
    try:
        url = exc.request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        where = f" at {url.host}:{port}"
    except RuntimeError:  # an error raised before any request was built
        pass
    return remote_error(
        f"PostgREST{where} {what}: {kind}: {detail}", Failure(network=True), dependency=DEPENDENCY
    )


def key_expiry(authorization: str | None) -> datetime | None:
    """Return when the bearer JWT expires, read without verifying it (None if unknown).

    Only to tell "expired" from "signed with another secret" when PostgREST says 401.
    """
    if not authorization or not authorization.startswith("Bearer "):
        return None
    parts = authorization.removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = payload.get("exp") if isinstance(payload, dict) else None
        return datetime.fromtimestamp(float(exp), UTC) if exp is not None else None
    except (ValueError, TypeError, binascii.Error, OverflowError, OSError):
        return None


def _refused_key_hint(response: httpx.Response) -> str:
    try:
        expires = key_expiry(response.request.headers.get("Authorization"))
    except RuntimeError:  # a response built without a request (tests)
        expires = None
    if expires is not None and expires <= datetime.now(UTC):
        return (
            f"the key expired at {expires.isoformat(timespec='seconds')}: mint a new one "
            "(listing-sync mint-key) and set SUPABASE_SERVICE_ROLE_KEY"
        )
    return _KEY_REFUSED


# Answers that say the deployment, not the data or the network, is wrong: the key is
# refused, the role lacks a grant, or the table is not the one sql/ creates. Retrying
# cannot help and no row is to blame, so they stop the run as configuration errors.
_KEY_REFUSED = (
    "the key was refused: check SUPABASE_SERVICE_ROLE_KEY (wrong project or rotated JWT secret)"
)
_SETUP_HINTS = {
    "42501": "the key's role lacks a grant: apply the files in sql/ (README, Supabase set-up)",
    "42P01": "the table is missing: apply the files in sql/ (README, Supabase set-up)",
    "42703": "a column is missing: apply the files in sql/ (README, Supabase set-up)",
    "PGRST204": "a column is missing: apply the files in sql/ (README, Supabase set-up)",
    "PGRST205": "the table is missing: apply the files in sql/ (README, Supabase set-up)",
}


def error_from_response(response: httpx.Response, what: str) -> ListingSyncError:
    """Build the error for a non-2xx PostgREST response.

    A RemoteError (transient or permanent) as a rule; a ConfigError when the
    answer says the key or the schema is wrong.
    """
    code: str | None = None
    message = response.reason_phrase or "error"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = body.get("code") if isinstance(body.get("code"), str) else None
        parts = [str(body.get(k)) for k in ("message", "details", "hint") if body.get(k)]
        if parts:
            message = "; ".join(parts)
    elif response.text:
        message = response.text[:200]
    label = f"{response.status_code} {code}" if code else str(response.status_code)
    hint = (
        _refused_key_hint(response) if response.status_code == 401 else _SETUP_HINTS.get(code or "")
    )
    if hint:
        return ConfigError(f"PostgREST {what}: {label} {message}; {hint}")
    return remote_error(
        f"PostgREST {what}: {label} {message}",
        Failure(status=response.status_code, code=code),
        dependency=DEPENDENCY,
        retry_after=parse_retry_after(response.headers.get("Retry-After"), now=time.time()),
    )


class PostgrestClient:
    """A small PostgREST client: upsert, insert, update and paged select."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        guard: Guard,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        api_key: str | None = None,
        cap_to_deadline: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.guard = guard
        # Probes: no request may outlive the guard's (wall-clock) deadline.
        self.cap_to_deadline = cap_to_deadline
        self.http = http or httpx.Client(timeout=timeout)
        self._headers = {
            "Authorization": f"Bearer {key}",
            # Supabase's gateway wants a project key here (anon for a custom role's JWT).
            "apikey": api_key or key,
            "Accept": "application/json",
        }

    def with_guard(self, guard: Guard) -> PostgrestClient:
        """Return a client that sends through ``guard`` over this client's connections."""
        other = object.__new__(PostgrestClient)
        other.base_url, other.guard, other.http, other._headers, other.cap_to_deadline = (
            self.base_url,
            guard,
            self.http,
            self._headers,
            self.cap_to_deadline,
        )
        return other

    def close(self) -> None:
        self.http.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        content: bytes | None = None,
        prefer: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        what = f"{method} /{path}"
        headers = dict(self._headers)
        if content is not None:
            headers["Content-Type"] = "application/json"
        if prefer:
            headers["Prefer"] = prefer
        if extra_headers:
            headers.update(extra_headers)
        url = f"{self.base_url}/{path}"

        def attempt() -> httpx.Response:
            timeout: Any = httpx.USE_CLIENT_DEFAULT
            deadline = self.guard.deadline
            if self.cap_to_deadline and deadline is not None:
                left = max(0.05, deadline - time.time())
                timeout = httpx.Timeout(min(left, self.http.timeout.read or left))
            try:
                response = self.http.request(
                    # httpx's QueryParamTypes is a union of invariant lists: ours fit it.
                    method,
                    url,
                    params=cast(Any, params),
                    content=content,
                    headers=headers,
                    timeout=timeout,
                )
            except httpx.HTTPError as exc:
                raise translate_httpx_error(exc, what) from exc
            if response.status_code >= 400:
                raise error_from_response(response, what)
            return response

        return self.guard.call(attempt)

    # --- writes -------------------------------------------------------------

    def upsert(self, table: str, body: bytes, *, on_conflict: str, columns: Sequence[str]) -> None:
        """Upsert a pre-serialised JSON array; all objects must share ``columns``."""
        self._request(
            "POST",
            table,
            params={"on_conflict": on_conflict, "columns": ",".join(columns)},
            content=body,
            prefer="resolution=merge-duplicates,return=minimal",
        )

    def insert_returning(self, table: str, row: Mapping[str, Any]) -> dict[str, Any]:
        """Insert one row and return it as stored."""
        response = self._request(
            "POST",
            table,
            content=json.dumps(row).encode(),
            prefer="return=representation",
        )
        rows = response.json()
        return rows[0]

    def insert_once(self, table: str, row: Mapping[str, Any], *, on_conflict: str) -> None:
        """Insert one row; a row with the same ``on_conflict`` value already there wins.

        Retrying it after a lost answer is safe: the second attempt inserts nothing.
        """
        self._request(
            "POST",
            table,
            params={"on_conflict": on_conflict},
            content=json.dumps(row).encode(),
            prefer="resolution=ignore-duplicates,return=minimal",
        )

    def update(self, table: str, filters: Mapping[str, str], values: Mapping[str, Any]) -> int:
        """PATCH rows matching ``filters``; return how many changed."""
        response = self._request(
            "PATCH",
            table,
            params=dict(filters),
            content=json.dumps(values, default=str).encode(),
            prefer="return=minimal,count=exact",
        )
        return _count_from_range(response.headers.get("Content-Range"))

    # --- reads --------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Return PostgREST's OpenAPI description of what this key may use (GET /)."""
        response = self._request("GET", "", extra_headers={"Accept": "application/openapi+json"})
        document = response.json()
        return document if isinstance(document, dict) else {}

    def select(
        self,
        table: str,
        *,
        select: str = "*",
        filters: Sequence[tuple[str, str]] = (),
        order: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return the rows matching ``filters``."""
        return _json(self._select(table, select, filters, order, limit, offset))

    def _select(
        self,
        table: str,
        select: str,
        filters: Sequence[tuple[str, str]] = (),
        order: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        prefer: str | None = None,
    ) -> httpx.Response:
        params: list[tuple[str, str]] = [("select", select), *filters]
        if order:
            params.append(("order", order))
        if limit is not None:
            params.append(("limit", str(limit)))
        if offset is not None:
            params.append(("offset", str(offset)))
        return self._request("GET", table, params=params, prefer=prefer)

    def select_all(
        self,
        table: str,
        *,
        select: str,
        key: str,
        page_size: int,
        concurrency: int,
        key_field: str | None = None,
        on_count: Callable[[int], None] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield every row in ``key`` order, a page at a time, ``concurrency`` pages at once.

        ``on_count`` hears the table's row count as soon as the first page tells it.

        The first page asks for the exact count; its Content-Range also shows the
        server's cap on rows per response (Supabase: 1000, whatever ``page_size``). The
        other pages are then asked for by offset, several in flight: a 100,000-row table
        at 60 ms and a cap of 1000 is 100 round trips one after another, keyset paging.
        Offsets shift if rows come or go meanwhile, so the pages must hold ``count``
        distinct keys; if not, ``PagesShifted`` is raised at the end, and the caller reads
        again with ``select_pages``.
        """
        order = f"{key}.asc"
        first = self._select(table, select, (), order, page_size, 0, prefer="count=exact")
        rows = _json(first)
        total = _total_from_range(first.headers.get("Content-Range"))
        if on_count is not None and total is not None:
            on_count(total)
        yield rows
        if total is not None and len(rows) >= total:
            return
        if total is None or not rows:
            raise PagesShifted(
                f"{table}: no exact count of rows ({total=}, first page {len(rows)})"
            )
        step = len(rows)
        field = key_field or key
        keys = {r[field] for r in rows}

        def page(offset: int) -> list[dict[str, Any]]:
            return self.select(table, select=select, order=order, limit=step, offset=offset)

        with Workers(concurrency, name="listing-sync-read") as workers:
            for rows in workers.ahead(page, range(step, total, step)):
                keys.update(r[field] for r in rows)
                yield rows
        if len(keys) != total:
            raise PagesShifted(f"{table}: {len(keys)} distinct rows read, {total} counted")

    def select_pages(
        self,
        table: str,
        *,
        select: str,
        key: str,
        filters: Sequence[tuple[str, str]] = (),
        page_size: int = 1000,
        key_field: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield every matching row, paging by ``key`` (keyset pagination).

        ``key_field``: the name ``key`` has in the rows, where ``select`` renames it
        (``k:property_number``).

        Supabase caps rows per response (1000 by default, whatever ``limit`` asks),
        so pages are asked for in ``key`` order, the next page starts after the last
        key seen, and only an empty page ends the listing: a short page may be the
        server's cap, not the end. That costs one extra request, and lets
        ``page_size`` be larger than the cap where there is none.
        """
        field = key_field or key
        last: str | None = None
        while True:
            page_filters = list(filters)
            if last is not None:
                # Unlike in.(...), PostgREST takes a gt. value verbatim: quoting it would
                # compare against '"A,1"' and restart from the first page, forever.
                page_filters.append((key, f"gt.{last}"))
            rows = self.select(
                table, select=select, filters=page_filters, order=f"{key}.asc", limit=page_size
            )
            if not rows:
                return
            yield from rows
            if last is not None and str(rows[-1][field]) == last:
                raise ListingSyncError(f"paging {table} by {key} made no progress after {last!r}")
            last = str(rows[-1][field])

    def select_in(
        self,
        table: str,
        *,
        select: str,
        column: str,
        values: Sequence[str],
        filters: Sequence[tuple[str, str]] = (),
    ) -> Iterator[dict[str, Any]]:
        """Yield rows whose ``column`` is one of ``values`` (and match ``filters``).

        Chunked to keep URLs short.
        """
        for flt in in_filters(values):
            yield from self.select(table, select=select, filters=[(column, flt), *filters])


def _json(response: httpx.Response) -> Any:
    """Return the response's JSON (``fastjson``: a page of keys and hashes 1.3x as fast)."""
    return fastjson.loads(response.content)


class PagesShifted(Exception):
    """Rows came or went while a table was read by offsets: read it again by keys."""


def _total_from_range(content_range: str | None) -> int | None:
    """Return the row count of "0-999/100000"; None for "0-999/*" or no header."""
    total = (content_range or "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _count_from_range(content_range: str | None) -> int:
    # "0-4/5" or "*/0"
    if not content_range or "/" not in content_range:
        return 0
    total = content_range.rsplit("/", 1)[1]
    return int(total) if total.isdigit() else 0
