"""The one exception tree of listing-sync.

Every error the core raises is a ``ListingSyncError``; its class decides the
process exit code and, for errors from a remote dependency, whether a retry can
help. Foreign errors (httpx, googleapiclient) are translated into this tree in
exactly one place per library (``postgrest.translate_httpx_error`` and
``sheets.translate_google_error``), always with ``raise ... from exc``.

    ListingSyncError                    exit 70  unexpected / internal
    ├── ConfigError                     exit 78  a setting is missing or malformed
    ├── DataError                       exit 65  the sheet cannot be used as it is
    ├── UsageError                      exit 2   bad command-line input
    ├── SyncLockedError                 exit 75  another sync holds the run lock
    ├── SyncInterrupted                 exit 75  SIGTERM / SIGINT during a run
    ├── NotFoundError                   exit 1   no such sync id
    └── RemoteError                     exit 69  a dependency call failed
        ├── TransientError                       retryable: 408, 429, 502-504, ...
        │   └── CircuitOpenError                 breaker open: no call was made
        ├── PermanentError                       not retryable: 400, 401, 404, ...
        └── UnavailableError                     retries or run budget exhausted

``is_retryable`` is the single decision "may this failure be retried"; it is
table-tested in ``tests/test_errors.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Exit codes (sysexits where they fit).
EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_DATAERR = 65
EXIT_UNAVAILABLE = 69
EXIT_SOFTWARE = 70
EXIT_TEMPFAIL = 75
EXIT_CONFIG = 78


class ListingSyncError(Exception):
    """Base of every error listing-sync raises on purpose."""

    exit_code: int = EXIT_SOFTWARE


class ConfigError(ListingSyncError):
    """A setting is missing or malformed; the message names the variable."""

    exit_code = EXIT_CONFIG


class DataError(ListingSyncError):
    """The sheet cannot be synced as it is (missing key header, mass removal...)."""

    exit_code = EXIT_DATAERR


class UsageError(ListingSyncError):
    """The command line asked for something impossible."""

    exit_code = EXIT_USAGE


class SyncLockedError(ListingSyncError):
    """Another sync is running; try again later."""

    exit_code = EXIT_TEMPFAIL


class SyncInterrupted(ListingSyncError):
    """The run was stopped by SIGTERM or SIGINT."""

    exit_code = EXIT_TEMPFAIL


class NotFoundError(ListingSyncError):
    """A record asked for by id does not exist."""

    exit_code = EXIT_PARTIAL


class RemoteError(ListingSyncError):
    """A call to a dependency (``sheets`` or ``postgrest``) failed."""

    exit_code = EXIT_UNAVAILABLE
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        dependency: str,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.dependency = dependency
        self.status = status
        self.code = code
        self.retry_after = retry_after


class TransientError(RemoteError):
    """A failure that may succeed when tried again (timeouts, 429, 503...)."""

    retryable = True


class CircuitOpenError(TransientError):
    """The dependency's circuit breaker is open; no call was made."""

    def __init__(self, message: str, *, dependency: str, retry_at: float) -> None:
        super().__init__(message, dependency=dependency)
        self.retry_at = retry_at


class PermanentError(RemoteError):
    """A failure that will fail the same way again (bad input, auth, not found)."""

    retryable = False


class UnavailableError(RemoteError):
    """A dependency stayed unreachable after all retries or the run budget ran out."""

    retryable = False


_TRANSIENT_STATUS = frozenset({408, 429, 502, 503, 504})
# PostgreSQL SQLSTATEs behind a PostgREST 500 that are worth another try:
# serialization failure, deadlock, statement timeout.
_TRANSIENT_SQLSTATE = frozenset({"40001", "40P01", "57014"})
# Google's status strings for quota exhaustion (429, sometimes 403) and backend
# trouble (500/503), which Google documents as safe to retry with backoff.
_TRANSIENT_GOOGLE_STATUS = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL"})


@dataclass(frozen=True)
class Failure:
    """What is known about one failed call, independent of the HTTP library."""

    status: int | None = None  # None: no HTTP response (connection error, timeout)
    code: str | None = None  # PostgREST/PostgreSQL code, or Google's status string
    network: bool = False  # connection refused/reset, DNS, read/connect timeout


def is_retryable(failure: Failure) -> bool:
    """Decide whether retrying the call that failed this way can help.

    Anything not known to be transient is permanent (400, 401, 403, 404, 409,
    413, 21000, ...): retrying it would only fail the same way, slower.
    """
    if failure.network:
        return True
    if failure.code == "21000":  # ON CONFLICT affecting a row twice: same batch, same result
        return False
    if failure.code in _TRANSIENT_GOOGLE_STATUS:
        return True
    if failure.status is None:
        return False
    if failure.status in _TRANSIENT_STATUS:
        return True
    if failure.status == 500:
        return failure.code in _TRANSIENT_SQLSTATE
    return False


def is_quota(exc: RemoteError) -> bool:
    """Tell whether ``exc`` is Google's per-minute quota (429 RESOURCE_EXHAUSTED).

    It is not an outage: it clears when the quota window resets, so it is waited
    out (``RetryPolicy.quota_window``) and never counts toward a circuit breaker.
    """
    return isinstance(exc, TransientError) and exc.code == "RESOURCE_EXHAUSTED"


def remote_error(
    message: str,
    failure: Failure,
    *,
    dependency: str,
    retry_after: float | None = None,
) -> RemoteError:
    """Build the right ``RemoteError`` subclass for ``failure``."""
    cls = TransientError if is_retryable(failure) else PermanentError
    return cls(
        message,
        dependency=dependency,
        status=failure.status,
        code=failure.code,
        retry_after=retry_after,
    )
