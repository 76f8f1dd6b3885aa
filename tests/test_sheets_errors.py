"""Google's errors, translated in one place: every kind lands in the right class."""

from __future__ import annotations

import json
import socket

import httplib2
import pytest
from google.auth import exceptions as auth_exceptions
from googleapiclient.errors import HttpError

from listing_sync.areas import a1_tab
from listing_sync.errors import PermanentError, RemoteError, TransientError
from listing_sync.sheets import chunk_rows_for, translate_google_error


def http_error(
    status: int, google_status: str | None = None, reason: str | None = None, **headers: str
) -> HttpError:
    error: dict[str, object] = {"code": status, "message": f"{status} from Google"}
    if google_status:
        error["status"] = google_status
    if reason:
        error["errors"] = [{"reason": reason, "domain": "usageLimits"}]
    resp = httplib2.Response({"status": str(status), **headers})
    return HttpError(resp, json.dumps({"error": error}).encode())


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (http_error(429, "RESOURCE_EXHAUSTED"), TransientError),
        (http_error(403, None, reason="userRateLimitExceeded"), TransientError),
        (http_error(403, None, reason="rateLimitExceeded"), TransientError),
        (http_error(500, "INTERNAL"), TransientError),
        (http_error(503, "UNAVAILABLE"), TransientError),
        (http_error(502), TransientError),
        (http_error(500), TransientError),  # a 5xx without a status string
        (http_error(400, "INVALID_ARGUMENT"), PermanentError),
        (http_error(401, "UNAUTHENTICATED"), PermanentError),
        (http_error(403, "PERMISSION_DENIED"), PermanentError),
        (http_error(404, "NOT_FOUND"), PermanentError),
        (auth_exceptions.RefreshError("invalid_grant: Invalid JWT Signature."), PermanentError),
        (auth_exceptions.TransportError("connection refused"), TransientError),
        (httplib2.ServerNotFoundError("Unable to find the server"), TransientError),
        (TimeoutError("timed out"), TransientError),
        (ConnectionResetError(104, "Connection reset by peer"), TransientError),
        (socket.gaierror(-2, "Name or service not known"), TransientError),
    ],
)
def test_every_google_failure_maps_to_one_class(
    exc: BaseException, kind: type[RemoteError]
) -> None:
    """Quota and server trouble retry; bad requests, auth and missing sheets do not."""
    error = translate_google_error(exc, "reading rows 2-101")
    assert kind is type(error)
    assert "sheets" == error.dependency
    assert str(error).startswith("Google Sheets reading rows 2-101: ")
    assert "\n" not in str(error)


def test_retry_after_from_google_is_kept() -> None:
    """A 429 with Retry-After carries the wait to the backoff."""
    error = translate_google_error(
        http_error(429, "RESOURCE_EXHAUSTED", **{"retry-after": "12"}), "reading"
    )
    assert 12.0 == error.retry_after


@pytest.mark.parametrize(
    ("columns", "rows"),
    [(1, 10_000), (15, 4_444), (100, 666), (1000, 100), (0, 10_000)],
)
def test_chunk_rows_keep_responses_near_two_megabytes(columns: int, rows: int) -> None:
    """Wider sheets are read in fewer rows per request, within 100..10,000."""
    assert rows == chunk_rows_for(columns)


@pytest.mark.parametrize(
    ("title", "quoted"),
    [("Listings", "'Listings'"), ("物件一覧", "'物件一覧'"), ("It's", "'It''s'")],
)
def test_tab_titles_are_quoted_for_a1_ranges(title: str, quoted: str) -> None:
    """Tab titles go in single quotes with inner quotes doubled."""
    assert quoted == a1_tab(title)
