"""Wire settings into the clients a command needs: guards, breakers, lock."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .config import Settings
from .errors import SyncInterrupted
from .resilience import (
    CircuitBreaker,
    FileStore,
    Guard,
    MemoryStore,
    RetryPolicy,
    RunLock,
    TokenBucket,
    postgrest_bucket,
    sheets_bucket,
)

log = logging.getLogger("listing_sync")
DEPENDENCIES = ("sheets", "postgrest")
# health and status answer monitoring systems, which give up after tens of seconds:
# they get a short budget and per-request timeout instead of a sync's hour.
PROBE_BUDGET = 20.0
PROBE_TIMEOUT = 8.0


def breaker_store(settings: Settings) -> FileStore:
    """Return the file store that keeps breaker state between cron runs."""
    return FileStore(settings.ensure_state_dir(), warn=log.warning)


def breakers(
    settings: Settings, store: FileStore | MemoryStore | None = None
) -> dict[str, CircuitBreaker]:
    """Return one breaker per dependency, backed by the state directory (or ``store``)."""
    store = store or breaker_store(settings)
    return {
        name: CircuitBreaker(
            name, store, threshold=settings.breaker_threshold, timeout=settings.breaker_timeout
        )
        for name in DEPENDENCIES
    }


def run_lock(settings: Settings) -> RunLock:
    return RunLock(settings.ensure_state_dir() / "sync.lock")


@dataclass
class StopFlag:
    """Set by SIGTERM/SIGINT; checked before every remote request."""

    event: threading.Event = field(default_factory=threading.Event)

    def __call__(self) -> bool:
        return self.event.is_set()

    def set(self) -> None:
        self.event.set()

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up as soon as a stop is asked for."""
        self.event.wait(seconds)

    def sleep_or_raise(self, seconds: float) -> None:
        """Sleep like ``sleep``; raise SyncInterrupted if a stop was asked for."""
        self.event.wait(seconds)
        if self.event.is_set():
            raise SyncInterrupted("interrupted")


def _on_retry(dependency: str) -> Callable[..., None]:
    def report(exc: Exception, attempt: int, wait: float) -> None:
        log.warning("%s: attempt %d failed (%s); retrying in %.1fs", dependency, attempt, exc, wait)

    return report


def guards(
    settings: Settings, *, stop: StopFlag | None = None, probe: bool = False
) -> dict[str, Guard]:
    """Return the one retrying wrapper per dependency, sharing the run's deadline.

    With ``stop``, a SIGTERM ends a backoff wait at once and the next attempt
    raises SyncInterrupted. With ``probe`` (health, status) the breakers live in
    memory: an open breaker must not hide the facts, and a probe must not trip it.
    """
    budget = min(settings.run_timeout, PROBE_BUDGET) if probe else settings.run_timeout
    deadline = time.time() + budget
    policy = RetryPolicy(attempts=settings.retry_attempts, base=settings.retry_delay)
    nap = stop.sleep if stop else time.sleep  # a SIGTERM also ends a wait for a token
    limiters: dict[str, TokenBucket] = {
        "sheets": sheets_bucket(sleep=nap),
        "postgrest": postgrest_bucket(settings.rate_limit, sleep=nap),
    }
    return {
        name: Guard(
            name,
            breaker=breaker,
            limiter=limiters[name],
            policy=policy,
            deadline=deadline,
            should_stop=stop or (lambda: False),
            sleep=stop.sleep if stop else time.sleep,
            on_retry=_on_retry(name),
        )
        for name, breaker in breakers(settings, MemoryStore() if probe else None).items()
    }


def start_budget(settings: Settings, *guards: Guard) -> None:
    """Start the run's budget (SYNC_RUN_TIMEOUT) now: waiting for the lock does not spend it."""
    deadline = time.time() + settings.run_timeout
    for guard in guards:
        guard.deadline = deadline


def unstoppable(guard: Guard) -> Guard:
    """Return ``guard`` without the stop check (same breaker, rate limit and budget).

    For the one write that must happen after SIGTERM: the run's own outcome.
    """
    return Guard(
        guard.dependency,
        breaker=guard.breaker,
        limiter=guard.limiter,
        policy=guard.policy,
        deadline=guard.deadline,
        on_retry=_on_retry(guard.dependency),
    )


def postgrest_client(settings: Settings, guard: Guard, *, probe: bool = False):
    """Return a PostgREST client using one keep-alive HTTP connection pool."""
    import httpx

    from .postgrest import PostgrestClient

    timeout = min(settings.http_timeout, PROBE_TIMEOUT) if probe else settings.http_timeout
    http = httpx.Client(timeout=timeout, follow_redirects=False)
    return PostgrestClient(
        settings.postgrest_url,
        settings.service_role_key.get_secret_value(),
        guard=guard,
        http=http,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
    )


def sheets_reader(settings: Settings, guard: Guard):
    """Return a reader for the configured spreadsheet (imports Google's libraries)."""
    from .sheets import SheetsReader

    settings.require_sheets()
    assert settings.google_credentials is not None and settings.spreadsheet_id is not None
    return SheetsReader(
        spreadsheet_id=settings.spreadsheet_id,
        credentials_file=settings.google_credentials,
        endpoint=settings.sheets_api_endpoint,
        guard=guard,
        tab_name=settings.sheet_name,
        timeout=max(settings.http_timeout, 60.0),
    )
