"""Table tests for the single "may this failure be retried" decision."""

from __future__ import annotations

import pytest

from listing_sync.errors import (
    Failure,
    PermanentError,
    RemoteError,
    TransientError,
    is_retryable,
    remote_error,
)

CASES = [
    # (id, failure, retryable)
    ("network error", Failure(network=True), True),
    ("network error with status", Failure(status=None, network=True), True),
    ("no response, not network", Failure(), False),
    ("408 request timeout", Failure(status=408), True),
    ("429 too many requests", Failure(status=429), True),
    ("429 RESOURCE_EXHAUSTED", Failure(status=429, code="RESOURCE_EXHAUSTED"), True),
    ("403 RESOURCE_EXHAUSTED", Failure(status=403, code="RESOURCE_EXHAUSTED"), True),
    ("503 UNAVAILABLE (Google)", Failure(status=503, code="UNAVAILABLE"), True),
    ("500 INTERNAL (Google)", Failure(status=500, code="INTERNAL"), True),
    ("502 bad gateway", Failure(status=502), True),
    ("503 service unavailable", Failure(status=503), True),
    ("503 PGRST001", Failure(status=503, code="PGRST001"), True),
    ("504 gateway timeout", Failure(status=504), True),
    ("504 PGRST003", Failure(status=504, code="PGRST003"), True),
    ("500 40001 serialization failure", Failure(status=500, code="40001"), True),
    ("500 40P01 deadlock", Failure(status=500, code="40P01"), True),
    ("500 57014 statement timeout", Failure(status=500, code="57014"), True),
    ("500 other code", Failure(status=500, code="XX000"), False),
    ("500 no code", Failure(status=500), False),
    ("400 bad request", Failure(status=400, code="22P02"), False),
    ("400 PGRST102", Failure(status=400, code="PGRST102"), False),
    ("401 unauthorized", Failure(status=401), False),
    ("403 forbidden", Failure(status=403, code="42501"), False),
    ("403 PERMISSION_DENIED", Failure(status=403, code="PERMISSION_DENIED"), False),
    ("404 not found", Failure(status=404), False),
    ("409 conflict", Failure(status=409, code="23505"), False),
    ("413 payload too large", Failure(status=413), False),
    ("400 21000 duplicate key in batch", Failure(status=400, code="21000"), False),
    ("500 21000 duplicate key in batch", Failure(status=500, code="21000"), False),
]


@pytest.mark.parametrize(("failure", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_is_retryable(failure: Failure, expected: bool) -> None:
    """Classify each known failure as retryable or not."""
    assert expected == is_retryable(failure)


@pytest.mark.parametrize(("failure", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_remote_error_class_matches_is_retryable(failure: Failure, expected: bool) -> None:
    """Build a TransientError for retryable failures and a PermanentError otherwise."""
    err = remote_error("boom", failure, dependency="postgrest", retry_after=2.0)
    expected_class = TransientError if expected else PermanentError
    assert expected_class is type(err)
    assert expected == err.retryable


def test_remote_error_carries_details() -> None:
    """Copy message, dependency, status, code and retry_after onto the error."""
    err = remote_error(
        "slow down",
        Failure(status=429, code="RESOURCE_EXHAUSTED"),
        dependency="sheets",
        retry_after=7.0,
    )
    assert isinstance(err, RemoteError)
    expected = ("slow down", "slow down", "sheets", 429, "RESOURCE_EXHAUSTED", 7.0)
    assert expected == (
        str(err),
        err.message,
        err.dependency,
        err.status,
        err.code,
        err.retry_after,
    )
