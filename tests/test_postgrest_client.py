"""The PostgREST client over httpx: request shape and the translation of every failure.

Unit tests of one module with pytest-httpx; the real server is exercised by the
end-to-end tests.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, unquote

import httpx
import pytest
from pytest_httpx import HTTPXMock

from listing_sync.errors import ConfigError, ListingSyncError, PermanentError, TransientError
from listing_sync.postgrest import PostgrestClient, error_from_response, in_filters, quote_value
from listing_sync.resilience.backoff import RetryPolicy
from listing_sync.resilience.breaker import CircuitBreaker, MemoryStore
from listing_sync.resilience.guard import Guard

BASE = "http://rest.test"
KEY = "service-role-key-for-tests"


def make_client(attempts: int = 1) -> PostgrestClient:
    guard = Guard(
        "postgrest",
        breaker=CircuitBreaker("postgrest", MemoryStore(), threshold=5, timeout=60),
        limiter=None,
        policy=RetryPolicy(attempts=attempts, base=0.0),
        sleep=lambda _: None,
    )
    return PostgrestClient(BASE, KEY, guard=guard, http=httpx.Client())


def test_upsert_sends_the_key_twice_and_merge_duplicates(httpx_mock: HTTPXMock) -> None:
    """An upsert is one POST with on_conflict, fixed columns, the Prefer header and both keys."""
    httpx_mock.add_response(method="POST", status_code=201)
    body = b'[{"property_number":"A-1","price":1}]'
    make_client().upsert(
        "property_listings",
        body,
        on_conflict="property_number",
        columns=["property_number", "price"],
    )
    [request] = httpx_mock.get_requests()
    expected = {"on_conflict": "property_number", "columns": "property_number,price"}
    assert expected == dict(parse_qsl(request.url.query.decode()))
    assert "resolution=merge-duplicates,return=minimal" == request.headers["Prefer"]
    assert (f"Bearer {KEY}", KEY) == (request.headers["Authorization"], request.headers["apikey"])
    assert body == request.content


def postgrest_error(status: int, code: str | None, **headers: str) -> httpx.Response:
    body = {"code": code, "message": f"message for {code}", "details": None, "hint": None}
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "22P02", PermanentError),  # bad input
        (400, "23502", PermanentError),  # not null
        (400, "PGRST102", PermanentError),  # keys do not match
        (400, "21000", PermanentError),  # ON CONFLICT twice in one batch (12.0.2)
        (500, "21000", PermanentError),  # ... and from 12.0.3 on
        (404, None, PermanentError),
        (409, "23505", PermanentError),
        (413, None, PermanentError),
        (500, "XX000", PermanentError),  # a trigger raising: the same next time
        (500, "40001", TransientError),  # serialization failure
        (500, "40P01", TransientError),  # deadlock
        (500, "57014", TransientError),  # statement timeout
        (502, None, TransientError),
        (503, "PGRST001", TransientError),
        (504, "PGRST003", TransientError),
        (408, None, TransientError),
        (429, None, TransientError),
        (401, "PGRST301", ConfigError),  # the key is refused
        (403, "42501", ConfigError),  # the role lacks a grant
        (400, "PGRST204", ConfigError),  # a column missing: sql/ not applied
        (404, "PGRST205", ConfigError),  # the table missing
        (400, "42703", ConfigError),
        (404, "42P01", ConfigError),
    ],
)
def test_every_postgrest_answer_maps_to_one_error_class(
    status: int, code: str | None, kind: type[ListingSyncError]
) -> None:
    """Each failure becomes exactly the class that decides retry and exit code."""
    error = error_from_response(postgrest_error(status, code), "POST /property_listings")
    assert kind is type(error)
    assert f"PostgREST POST /property_listings: {status}" in str(error)
    assert KEY not in str(error)


def test_retry_after_is_read_from_a_503() -> None:
    """Retry-After in seconds is carried on the transient error."""
    error = error_from_response(postgrest_error(503, "PGRST001", **{"Retry-After": "7"}), "GET /x")
    assert isinstance(error, TransientError)
    assert 7.0 == error.retry_after


def test_a_non_json_error_body_is_still_one_line() -> None:
    """A proxy's HTML 502 page becomes a transient error quoting the start of the body."""
    error = error_from_response(httpx.Response(502, text="<html>Bad gateway</html>"), "GET /x")
    assert isinstance(error, TransientError)
    assert "PostgREST GET /x: 502 <html>Bad gateway</html>" == str(error)


def test_transient_failures_are_retried_then_succeed(httpx_mock: HTTPXMock) -> None:
    """A 503 then a connection reset then 200: three requests, the rows come back."""
    httpx_mock.add_response(status_code=503, json={"code": "PGRST001", "message": "down"})
    httpx_mock.add_exception(httpx.ReadError("connection reset"))
    httpx_mock.add_response(json=[{"id": 1}])
    rows = make_client(attempts=3).select("sync_state")
    assert [{"id": 1}] == rows
    assert 3 == len(httpx_mock.get_requests())


def test_a_permanent_failure_is_not_retried(httpx_mock: HTTPXMock) -> None:
    """A 400 is raised after one request, however many attempts are allowed."""
    httpx_mock.add_response(status_code=400, json={"code": "22P02", "message": "bad uuid"})
    with pytest.raises(PermanentError, match="22P02"):
        make_client(attempts=3).select("sync_state", filters=[("id", "eq.nope")])
    assert 1 == len(httpx_mock.get_requests())


def test_update_returns_the_count_from_content_range(httpx_mock: HTTPXMock) -> None:
    """PATCH asks for count=exact and reads it back from Content-Range."""
    httpx_mock.add_response(method="PATCH", status_code=204, headers={"Content-Range": "0-2/3"})
    count = make_client().update("property_listings", {"removed_at": "is.null"}, {"x": 1})
    [request] = httpx_mock.get_requests()
    assert 3 == count
    assert "return=minimal,count=exact" == request.headers["Prefer"]
    assert {"x": 1} == json.loads(request.content)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("A-1", '"A-1"'),
        ("A,1", '"A,1"'),
        ("B(2)", '"B(2)"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("物件 1/2", '"物件 1/2"'),
    ],
)
def test_in_filter_values_are_quoted(value: str, quoted: str) -> None:
    """Reserved characters survive: every value in double quotes, \\ and " escaped."""
    assert quoted == quote_value(value)


def test_in_filters_chunk_long_lists_under_the_url_budget() -> None:
    """2000 long numbers split into filters whose encoded form stays under the budget."""
    values = [f"物件-{i:05d}-" + "x" * 30 for i in range(2000)]
    filters = list(in_filters(values, max_chars=6000))
    assert 1 < len(filters)
    assert all(len(httpx.URL("http://h/t", params={"k": f}).query) <= 6000 for f in filters)
    found = [v for f in filters for v in json.loads("[" + unquote(f)[4:-1] + "]")]
    assert values == found


def test_connection_refused_names_host_and_port() -> None:
    """A refused connection names the address it tried (never the key)."""
    import httpx as _httpx

    from listing_sync.postgrest import translate_httpx_error

    request = _httpx.Request("GET", "http://db.example.internal:3001/sync_state")
    exc = _httpx.ConnectError("[Errno 111] Connection refused", request=request)
    error = translate_httpx_error(exc, "GET /sync_state")
    assert (
        "PostgREST at db.example.internal:3001 GET /sync_state: ConnectError: "
        "[Errno 111] Connection refused"
    ) == str(error)


def test_expired_key_says_it_expired_and_when() -> None:
    """401 for a key whose exp has passed: the hint says expired at <time>, not 'rotated'."""
    import base64 as _b64
    import json as _json

    import httpx as _httpx

    from listing_sync.postgrest import error_from_response

    claims = _b64.urlsafe_b64encode(_json.dumps({"role": "x", "exp": 1_700_000_000}).encode())
    key = "eyJhbGciOiJIUzI1NiJ9." + claims.decode().rstrip("=") + ".sig"
    request = _httpx.Request(
        "GET", "http://127.0.0.1:1/sync_state", headers={"Authorization": f"Bearer {key}"}
    )
    response = _httpx.Response(
        401, json={"code": "PGRST301", "message": "JWT expired"}, request=request
    )
    error = error_from_response(response, "GET /sync_state")
    assert (
        "PostgREST GET /sync_state: 401 PGRST301 JWT expired; the key expired at "
        "2023-11-14T22:13:20+00:00: mint a new one (listing-sync mint-key) and set "
        "SUPABASE_SERVICE_ROLE_KEY"
    ) == str(error)
