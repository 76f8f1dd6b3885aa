"""Wire settings into the objects a command uses, in one place, and close them after.

``open_runtime`` opens the guards (breaker, rate limit, retries, budget per
dependency), one PostgREST client with its keep-alive pool, the two table stores
and, when asked for, the Sheets reader; leaving it closes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from .config import HEALTH_TIMEOUT, Settings
from .errors import SyncInterrupted
from .listings import ListingsStore
from .mapping import load_aliases
from .postgrest import PostgrestClient
from .resilience import (
    CircuitBreaker,
    FileStore,
    Guard,
    Limiter,
    MemoryStore,
    RetryPolicy,
    RunLock,
    postgrest_bucket,
    sheets_limit,
)
from .state import SyncStateStore
from .workers import Background

if TYPE_CHECKING:
    from .pipeline.run import SyncDeps
    from .sheets import SheetsReader

log = logging.getLogger("listing_sync")
DEPENDENCIES = ("sheets", "postgrest")
# health and status answer monitoring systems (NRPE gives up after 10 s): their whole
# run, retries and every request included, fits SYNC_HEALTH_TIMEOUT (default 5 s), so
# the answer comes within 8 s with the interpreter's start-up on a busy host. Each
# request is cut to the budget left (PostgrestClient cap_to_deadline), so a server that
# accepts and never answers cannot stretch it.
PROBE_BUDGET = PROBE_TIMEOUT = HEALTH_TIMEOUT


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
    # Set once the run's outcome is recorded (or it ended before a run existed): a
    # signal from then on changes nothing, the outcome's exit code is the exit code.
    settled: threading.Event = field(default_factory=threading.Event)

    def __call__(self) -> bool:
        return self.event.is_set()

    def settle(self) -> None:
        self.settled.set()

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
        # Debug, not warning: a retry that recovers needs no human, and cron mails stderr.
        # A retry that does not recover ends in an error line; the count is in the metrics.
        log.debug("%s: attempt %d failed (%s); retrying in %.1fs", dependency, attempt, exc, wait)

    return report


class Guards(NamedTuple):
    """The one retrying wrapper per dependency."""

    sheets: Guard
    postgrest: Guard


def guards(settings: Settings, *, stop: StopFlag | None = None, probe: bool = False) -> Guards:
    """Return the one retrying wrapper per dependency, sharing the run's deadline.

    With ``stop``, a SIGTERM ends a backoff wait at once and the next attempt
    raises SyncInterrupted. With ``probe`` (health, status) the breakers live in
    memory: an open breaker must not hide the facts, and a probe must not trip it.
    """
    budget = min(settings.run_timeout, settings.health_timeout) if probe else settings.run_timeout
    deadline = time.time() + budget
    policy = RetryPolicy(
        attempts=settings.retry_attempts,
        base=settings.retry_delay,
        quota_window=settings.quota_window,
    )
    nap = stop.sleep if stop else time.sleep  # a SIGTERM also ends a wait for a token
    limiters: dict[str, Limiter] = {
        "sheets": sheets_limit(sleep=nap),
        "postgrest": postgrest_bucket(settings.rate_limit, sleep=nap),
    }
    built = {
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
    return Guards(**built)


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


def postgrest_client(settings: Settings, guard: Guard, *, probe: bool = False) -> PostgrestClient:
    """Return a PostgREST client using one keep-alive HTTP connection pool."""
    import httpx

    timeout = (
        min(settings.http_timeout, settings.health_timeout) if probe else settings.http_timeout
    )
    http = httpx.Client(timeout=timeout, follow_redirects=False)
    return PostgrestClient(
        settings.postgrest_url,
        settings.service_role_key.get_secret_value(),
        guard=guard,
        http=http,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        cap_to_deadline=probe,
    )


def sheets_reader(settings: Settings, guard: Guard) -> SheetsReader:
    """Return a reader for the configured spreadsheet (imports Google's libraries)."""
    from .sheets import SheetsReader, SignIn

    settings.require_sheets()
    assert settings.spreadsheet_id is not None
    return SheetsReader(
        spreadsheet_id=settings.spreadsheet_id,
        sign_in=SignIn(
            settings.google_credentials, settings.google_impersonate, settings.google_subject
        ),
        endpoint=settings.sheets_api_endpoint,
        guard=guard,
        tab_names=settings.sheet_tabs,
        sheet_range=settings.sheet_range,
        timeout=max(settings.http_timeout, 60.0),
    )


class _Opening:
    """A Sheets reader built in a background thread, used as the reader itself.

    Building it imports Google's client libraries and reads the key (a few hundred
    milliseconds of start-up): meanwhile the run takes its lock and makes its first
    PostgREST requests. An error while building is raised where the reader is used.
    """

    def __init__(self, build: Callable[[], SheetsReader]) -> None:
        self._building = Background(build, name="listing-sync-sheets")

    def _get(self) -> SheetsReader:
        return self._building.result()

    def read(self) -> Any:
        return self._get().read()

    def close(self) -> None:
        try:
            reader = self._building.result()
        except BaseException:  # never built: nothing to close (the error was reported)
            return
        reader.close()


@dataclass
class Runtime:
    """The guards, clients and stores of one command, opened by ``open_runtime``."""

    settings: Settings
    guards: Guards
    # Writes the run's outcome: skips the stop check (same breaker, rate limit, budget).
    outcome_guard: Guard
    postgrest: PostgrestClient
    listings: ListingsStore
    state: SyncStateStore
    sheets: _Opening | None = None  # opened by sync_deps

    def start_budget(self) -> None:
        """Start the run's budget (SYNC_RUN_TIMEOUT) now: waiting for the lock does not spend it."""
        deadline = time.time() + self.settings.run_timeout
        for guard in (*self.guards, self.outcome_guard):
            guard.deadline = deadline

    def sync_deps(self) -> SyncDeps:
        """Return what the pipeline needs, with a Sheets reader for the configured sheet."""
        from .pipeline.run import SyncDeps

        if self.sheets is None:
            self.settings.require_sheets()  # a missing setting is said at once
            settings, guard = self.settings, self.guards.sheets
            self.sheets = _Opening(lambda: sheets_reader(settings, guard))
        return SyncDeps(
            listings=self.listings,
            state=self.state,
            source=self.sheets,
            # Checked now for form; checked against the table's columns once the run
            # has read them (a bad alias is a setting: exit 78, no run recorded).
            aliases=load_aliases(self.settings.mapping_file, None),
            mapping_file=self.settings.mapping_file,
            batch_size=self.settings.batch_size,
            batch_max_bytes=self.settings.batch_max_bytes,
            max_remove_fraction=self.settings.max_remove_fraction,
            concurrency=self.settings.concurrency,
        )


@contextmanager
def open_runtime(
    settings: Settings, *, stop: StopFlag | None = None, probe: bool = False
) -> Iterator[Runtime]:
    """Open the guards, the PostgREST client and the stores; close the client after.

    ``probe``: the short budget, timeout and in-memory breakers of health and status.
    """
    built = guards(settings, stop=stop, probe=probe)
    # A SIGTERM stops sync_state writes too, except the run's outcome.
    outcome_guard = unstoppable(built.postgrest)
    client = postgrest_client(settings, built.postgrest, probe=probe)
    runtime = Runtime(
        settings=settings,
        guards=built,
        outcome_guard=outcome_guard,
        postgrest=client,
        listings=ListingsStore(client, read_concurrency=settings.concurrency),
        state=SyncStateStore(client, outcome_client=client.with_guard(outcome_guard)),
    )
    try:
        yield runtime
    finally:
        client.close()
        if runtime.sheets is not None:
            runtime.sheets.close()
