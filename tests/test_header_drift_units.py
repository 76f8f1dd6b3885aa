"""Header drift, unit by unit: the likely-rename guess and the store's column-aware requests.

The whole behaviour (exit 65, --allow-missing-columns) is in test_e2e_header_drift.py.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
import pytest
from pytest_httpx import HTTPXMock

from listing_sync.listings import ListingsStore
from listing_sync.pipeline.plan import _likely_rename
from listing_sync.postgrest import PostgrestClient
from listing_sync.resilience.backoff import RetryPolicy
from listing_sync.resilience.breaker import CircuitBreaker, MemoryStore
from listing_sync.resilience.guard import Guard
from listing_sync.schema import LISTINGS

BASE = "http://rest.test"


def make_store() -> ListingsStore:
    guard = Guard(
        "postgrest",
        breaker=CircuitBreaker("postgrest", MemoryStore(), threshold=5, timeout=60),
        limiter=None,
        policy=RetryPolicy(attempts=1, base=0.0),
        sleep=lambda _: None,
    )
    return ListingsStore(PostgrestClient(BASE, "key", guard=guard, http=httpx.Client()))


@pytest.mark.parametrize(
    ("column", "aliases", "headers", "expected"),
    [
        ("price", {"価格": "price"}, ["担当", "価格(税込)"], "価格(税込)"),
        ("price", {}, ["Sale Price", "Memo"], "Sale Price"),
        ("walk_minutes", {}, ["walk_minute", "Memo"], "walk_minute"),
        ("layout", {"間取り": "layout"}, ["間取"], "間取"),
        ("price", {"価格": "price"}, ["担当", "備考"], None),
        ("price", {}, [], None),
    ],
    ids=["alias-words-added", "name-inside", "typo", "alias-shortened", "none", "empty"],
)
def test_likely_rename(
    column: str, aliases: dict[str, str], headers: list[str], expected: str | None
) -> None:
    """The unmapped header that contains or resembles the column or its alias, else None."""
    assert expected == _likely_rename(column, aliases, headers)


def test_upsert_with_columns_sends_only_those(httpx_mock: HTTPXMock) -> None:
    """A column left out of ``columns`` is left out of ?columns=, so PostgREST keeps it."""
    httpx_mock.add_response(method="POST", status_code=201)
    written = tuple(c for c in LISTINGS.write_columns if c != "price")
    make_store().upsert(b"[]", written)
    [request] = httpx_mock.get_requests()
    assert ",".join(written) == dict(parse_qsl(request.url.query.decode()))["columns"]


def test_upsert_without_columns_sends_every_column(httpx_mock: HTTPXMock) -> None:
    """By default an upsert names every column listing-sync writes."""
    httpx_mock.add_response(method="POST", status_code=201)
    make_store().upsert(b"[]")
    [request] = httpx_mock.get_requests()
    query = dict(parse_qsl(request.url.query.decode()))
    assert ",".join(LISTINGS.write_columns) == query["columns"]


@pytest.mark.parametrize(("rows", "expected"), [([{"property_number": "A-1"}], True), ([], False)])
def test_has_values_asks_for_one_non_null_row(
    httpx_mock: HTTPXMock, rows: list[dict[str, str]], expected: bool
) -> None:
    """has_values reads at most one row whose column is not null."""
    httpx_mock.add_response(method="GET", json=rows)
    assert expected == make_store().has_values("price")
    [request] = httpx_mock.get_requests()
    query = dict(parse_qsl(request.url.query.decode()))
    assert {"select": "property_number", "price": "not.is.null", "limit": "1"} == query
