"""Keyset paging survives a server that caps rows per response below the page size."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx

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
