"""Keyset paging survives a server that caps rows per response below the page size."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
import pytest

from listing_sync.postgrest import PostgrestClient
from listing_sync.resilience.backoff import RetryPolicy
from listing_sync.resilience.breaker import CircuitBreaker, MemoryStore
from listing_sync.resilience.guard import Guard

KEYS = [f"K{i:03d}" for i in range(10)]


def capped_server(cap: int, seen: list[dict[str, str]]) -> httpx.MockTransport:
    """A PostgREST stand-in holding KEYS that never returns more than ``cap`` rows."""

    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.url.query.decode()))
        seen.append(params)
        after = params.get("property_number", "gt.")[3:]
        rows = [{"property_number": k} for k in KEYS if k > after]
        return httpx.Response(200, json=rows[: min(cap, int(params["limit"]))])

    return httpx.MockTransport(handle)


def client(transport: httpx.MockTransport) -> PostgrestClient:
    guard = Guard(
        "postgrest",
        breaker=CircuitBreaker("postgrest", MemoryStore(), threshold=5, timeout=60),
        limiter=None,
        policy=RetryPolicy(attempts=1, base=0.001),
    )
    return PostgrestClient(
        "http://rest.test", "key", guard=guard, http=httpx.Client(transport=transport)
    )


def test_pages_past_a_cap_below_the_page_size() -> None:
    """With a cap of 3 and pages of 5, every row is read and an empty page ends the paging."""
    seen: list[dict[str, str]] = []
    rows = client(capped_server(3, seen)).select_pages(
        "property_listings", select="property_number", key="property_number", page_size=5
    )

    assert KEYS == [r["property_number"] for r in rows]
    assert [None, "gt.K002", "gt.K005", "gt.K008", "gt.K009"] == [
        p.get("property_number") for p in seen
    ]


def test_uncapped_pages_end_with_one_empty_page() -> None:
    """Without a cap, 10 rows in pages of 4 take three pages and one empty one."""
    seen: list[dict[str, str]] = []
    rows = client(capped_server(1000, seen)).select_pages(
        "property_listings", select="property_number", key="property_number", page_size=4
    )

    assert KEYS == [r["property_number"] for r in rows]
    assert [None, "gt.K003", "gt.K007", "gt.K009"] == [p.get("property_number") for p in seen]


def offset_server(
    keys: list[str], cap: int, seen: list[dict[str, str]], *, shift_after: int | None = None
) -> httpx.MockTransport:
    """A PostgREST stand-in answering limit/offset pages, the count, and a row cap.

    ``shift_after``: once that many requests were answered, a row is inserted at the
    start of the table (another writer), so later offsets see every row one place on.
    """
    table = list(keys)

    def handle(request: httpx.Request) -> httpx.Response:
        params = dict(parse_qsl(request.url.query.decode()))
        seen.append(params)
        if shift_after is not None and len(seen) == shift_after + 1:
            table.insert(0, "A000")
        if "offset" not in params:  # keyset paging
            after = params.get("property_number", "gt.")[3:]
            rows = [k for k in sorted(table) if k > after][: min(cap, int(params["limit"]))]
            return httpx.Response(200, json=[{"k": k} for k in rows])
        start = int(params["offset"])
        rows = sorted(table)[start : start + min(cap, int(params["limit"]))]
        headers = {}
        if "count=exact" in request.headers.get("Prefer", ""):
            end = start + len(rows) - 1
            headers["Content-Range"] = f"{start}-{end}/{len(table)}"
        return httpx.Response(200, json=[{"k": k} for k in rows], headers=headers)

    return httpx.MockTransport(handle)


MANY = [f"K{i:04d}" for i in range(1000)]


def read_all(transport: httpx.MockTransport, concurrency: int) -> list[str]:
    pages = client(transport).select_all(
        "property_listings",
        select="k:property_number",
        key="property_number",
        key_field="k",
        page_size=300,
        concurrency=concurrency,
    )
    return [r["k"] for page in pages for r in page]


def test_pages_by_offset_under_a_cap_come_in_key_order() -> None:
    """The first page shows the cap (100 of 300 asked); the rest go by offsets of 100."""
    seen: list[dict[str, str]] = []
    assert read_all(offset_server(MANY, 100, seen), concurrency=4) == MANY
    assert [p["offset"] for p in seen][:1] == ["0"]
    assert sorted(int(p["offset"]) for p in seen) == list(range(0, 1000, 100))
    assert {p["limit"] for p in seen[1:]} == {"100"}


def test_a_table_that_fits_the_first_page_takes_one_request() -> None:
    seen: list[dict[str, str]] = []
    assert read_all(offset_server(MANY[:250], 1000, seen), concurrency=4) == MANY[:250]
    assert len(seen) == 1


def test_rows_that_move_while_pages_are_read_are_detected() -> None:
    from listing_sync.postgrest import PagesShifted

    seen: list[dict[str, str]] = []
    with pytest.raises(PagesShifted, match="999 distinct rows read, 1000 counted"):
        read_all(offset_server(MANY, 100, seen, shift_after=1), concurrency=1)


def test_the_store_reads_again_by_keys_when_rows_moved() -> None:
    from listing_sync.listings import ListingsStore

    seen: list[dict[str, str]] = []
    rows = [{"k": k, "r": None, "s": "s", "t": "T"} for k in MANY]
    transport = offset_server(MANY, 100, seen, shift_after=1)

    def with_columns(request: httpx.Request) -> httpx.Response:
        response = transport.handle_request(request)
        found = {r["k"] for r in response.json()}
        body = [r for r in rows if r["k"] in found] + (
            [{"k": "A000", "r": None, "s": "s", "t": "T"}] if "A000" in found else []
        )
        kept = {k: v for k, v in response.headers.items() if k.lower() == "content-range"}
        return httpx.Response(200, json=body, headers=kept)

    store = ListingsStore(client(httpx.MockTransport(with_columns)), read_concurrency=3)
    stored = store.stored()
    assert sorted(stored) == ["A000", *MANY]  # every row, the inserted one too
    assert any("offset" not in p for p in seen)  # ...read again by keys


def test_the_count_is_told_before_the_other_pages_are_read() -> None:
    """``on_count`` hears the table's size from the first page, before any other is asked."""
    seen: list[dict[str, str]] = []
    told: list[tuple[int, int]] = []
    pages = client(offset_server(MANY, 100, seen)).select_all(
        "property_listings",
        select="k:property_number",
        key="property_number",
        key_field="k",
        page_size=300,
        concurrency=2,
        on_count=lambda total: told.append((total, len(seen))),
    )
    assert MANY == [r["k"] for page in pages for r in page]
    assert [(1000, 1)] == told
