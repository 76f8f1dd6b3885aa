"""Breaker transitions (pure), shared behaviour on both stores, and the file store."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from listing_sync.errors import (
    CircuitOpenError,
    PermanentError,
    TransientError,
    UnavailableError,
)
from listing_sync.resilience.backoff import RetryPolicy
from listing_sync.resilience.breaker import (
    BreakerState,
    BreakerStore,
    CircuitBreaker,
    FileStore,
    MemoryStore,
    admit,
    clamp,
    on_failure,
    on_success,
)
from listing_sync.resilience.guard import Guard

T0 = 1_700_000_000.0
TIMEOUT = 30.0
THRESHOLD = 3


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- pure transitions -------------------------------------------------------------

CLOSED = BreakerState()


@pytest.mark.parametrize(
    ("state", "now", "expected"),
    [
        (CLOSED, T0, (CLOSED, True, None)),
        (BreakerState("closed", 2), T0, (BreakerState("closed", 2), True, None)),
        (
            BreakerState("open", 3, T0),
            T0 + 29.9,
            (BreakerState("open", 3, T0), False, T0 + 30),
        ),
        (BreakerState("open", 3, T0), T0 + 30, (BreakerState("half_open", 3, T0 + 30), True, None)),
        (BreakerState("open", 3, T0), T0 + 99, (BreakerState("half_open", 3, T0 + 99), True, None)),
        (BreakerState("open", 3, None), T0, (BreakerState("half_open", 3, T0), True, None)),
        (
            BreakerState("half_open", 3, T0),
            T0 + 10,
            (BreakerState("half_open", 3, T0), False, T0 + 30),
        ),
        (
            BreakerState("half_open", 3, T0),
            T0 + 30,
            (BreakerState("half_open", 3, T0 + 30), True, None),
        ),
    ],
    ids=[
        "closed",
        "closed-with-failures",
        "open-cooling",
        "open-elapsed-becomes-trial",
        "open-long-elapsed",
        "open-without-time",
        "half-open-trial-running",
        "half-open-trial-died-takeover",
    ],
)
def test_admit(
    state: BreakerState, now: float, expected: tuple[BreakerState, bool, float | None]
) -> None:
    """Admit, refuse with retry_at, or hand out the single half-open trial."""
    assert expected == admit(state, now, TIMEOUT)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (CLOSED, BreakerState("closed", 1)),
        (BreakerState("closed", 1), BreakerState("closed", 2)),
        (BreakerState("closed", 2), BreakerState("open", 3, T0)),
        (BreakerState("closed", 7), BreakerState("open", 8, T0)),
        (BreakerState("half_open", 3, T0 - 5), BreakerState("open", 4, T0)),
        (BreakerState("open", 3, T0 - 5), BreakerState("open", 4, T0 - 5)),
    ],
    ids=["first", "second", "threshold-opens", "past-threshold", "trial-fails", "late-straggler"],
)
def test_on_failure(state: BreakerState, expected: BreakerState) -> None:
    """Count consecutive failures and open at the threshold or on a failed trial."""
    assert expected == on_failure(state, T0, THRESHOLD)


@pytest.mark.parametrize(
    "state",
    [
        CLOSED,
        BreakerState("closed", 2),
        BreakerState("open", 3, T0),
        BreakerState("half_open", 3, T0),
    ],
)
def test_on_success(state: BreakerState) -> None:
    """Close the breaker and forget the failures."""
    expected = CLOSED
    assert expected == on_success(state)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (CLOSED, CLOSED),
        (BreakerState("open", 3, T0 - 1), BreakerState("open", 3, T0 - 1)),
        (BreakerState("open", 3, T0), BreakerState("open", 3, T0)),
        (BreakerState("open", 3, T0 + 3600), BreakerState("open", 3, T0)),
        (BreakerState("half_open", 3, T0 + 1), BreakerState("half_open", 3, T0)),
    ],
)
def test_clamp(state: BreakerState, expected: BreakerState) -> None:
    """Pull timestamps from the future back to now and leave the rest alone."""
    assert expected == clamp(state, T0)


# --- shared behaviour: run against MemoryStore and FileStore ----------------------


@pytest.fixture(params=["memory", "file"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], BreakerStore]:
    """Return a factory of stores sharing one backing storage (as separate processes would)."""
    if request.param == "memory":
        shared = MemoryStore()
        return lambda: shared
    return lambda: FileStore(tmp_path / "state", warn=pytest.fail)


def make_breaker(stores: Callable[[], BreakerStore], clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("postgrest", stores(), THRESHOLD, TIMEOUT, clock=clock)


def test_opens_after_threshold_consecutive_failures(stores: Callable[[], BreakerStore]) -> None:
    """Allow calls through two failures and refuse them after the third."""
    clock = Clock()
    breaker = make_breaker(stores, clock)
    for _ in range(THRESHOLD - 1):
        breaker.before_call()
        breaker.record_failure()
    breaker.before_call()
    breaker.record_failure()
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_call()
    expected = (BreakerState("open", 3, T0), "postgrest", T0 + TIMEOUT)
    assert expected == (breaker.state(), info.value.dependency, info.value.retry_at)


def test_refusal_message_says_when_to_retry(stores: Callable[[], BreakerStore]) -> None:
    """Name the dependency, the failure count, the local retry time and the wait."""
    clock = Clock()
    breaker = make_breaker(stores, clock)
    for _ in range(THRESHOLD):
        breaker.record_failure()
    clock.now += 10.5
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_call()
    at = datetime.fromtimestamp(T0 + TIMEOUT).astimezone().isoformat(timespec="seconds")
    expected = (
        f"circuit breaker for postgrest is open after 3 consecutive failures; "
        f"next try at {at} (in 20s); once postgrest is fixed: listing-sync breaker reset postgrest"
    )
    assert expected == str(info.value)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_opening_is_logged_once_as_a_warning(stores: Callable[[], BreakerStore]) -> None:
    """The failure that opens the breaker logs one warning naming the reset command."""
    breaker = make_breaker(stores, Clock())
    records = _Records()
    logger = logging.getLogger("listing_sync.resilience.breaker")
    logger.addHandler(records)
    try:
        for _ in range(THRESHOLD + 2):
            breaker.record_failure()
    finally:
        logger.removeHandler(records)
    opened = [m for m in records.messages if "opened" in m]
    assert 1 == len(opened), opened
    assert "listing-sync breaker reset postgrest" in opened[0]


def test_success_between_failures_resets_the_count(stores: Callable[[], BreakerStore]) -> None:
    """Count only consecutive failures."""
    breaker = make_breaker(stores, Clock())
    for _ in range(5):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    breaker.before_call()
    expected = CLOSED
    assert expected == breaker.state()


def test_stays_open_for_timeout(stores: Callable[[], BreakerStore]) -> None:
    """Refuse until exactly timeout seconds after opening, then admit a trial."""
    clock = Clock()
    breaker = make_breaker(stores, clock)
    for _ in range(THRESHOLD):
        breaker.record_failure()
    for offset in (0.0, 1.0, 29.999):
        clock.now = T0 + offset
        with pytest.raises(CircuitOpenError):
            breaker.before_call()
    clock.now = T0 + TIMEOUT
    breaker.before_call()
    expected = BreakerState("half_open", 3, T0 + TIMEOUT)
    assert expected == breaker.state()


def test_state_shows_elapsed_open_as_open(stores: Callable[[], BreakerStore]) -> None:
    """Report an open breaker whose timeout passed as open until someone calls."""
    clock = Clock()
    breaker = make_breaker(stores, clock)
    for _ in range(THRESHOLD):
        breaker.record_failure()
    clock.now += 10 * TIMEOUT
    expected = BreakerState("open", 3, T0)
    assert expected == breaker.state()


def test_half_open_admits_exactly_one_trial(stores: Callable[[], BreakerStore]) -> None:
    """Give the trial to the first caller and refuse a second, concurrent one."""
    clock = Clock()
    first, second = make_breaker(stores, clock), make_breaker(stores, clock)
    for _ in range(THRESHOLD):
        first.record_failure()
    clock.now = T0 + TIMEOUT
    first.before_call()
    clock.now += 1
    with pytest.raises(CircuitOpenError) as info:
        second.before_call()
    assert "is half-open (a trial call is in progress)" in str(info.value)
    expected = T0 + 2 * TIMEOUT
    assert expected == info.value.retry_at


def test_successful_trial_closes(stores: Callable[[], BreakerStore]) -> None:
    """Close the breaker for every caller when the trial succeeds."""
    clock = Clock()
    first, second = make_breaker(stores, clock), make_breaker(stores, clock)
    for _ in range(THRESHOLD):
        first.record_failure()
    clock.now = T0 + TIMEOUT
    first.before_call()
    first.record_success()
    second.before_call()
    expected = CLOSED
    assert expected == second.state()


def test_failed_trial_reopens(stores: Callable[[], BreakerStore]) -> None:
    """Reopen for a full timeout from the failed trial."""
    clock = Clock()
    breaker = make_breaker(stores, clock)
    for _ in range(THRESHOLD):
        breaker.record_failure()
    clock.now = T0 + TIMEOUT + 5
    breaker.before_call()
    breaker.record_failure()
    expected = BreakerState("open", 4, T0 + TIMEOUT + 5)
    assert expected == breaker.state()
    clock.now = T0 + 2 * TIMEOUT + 4
    with pytest.raises(CircuitOpenError):
        breaker.before_call()


def test_dead_trial_is_taken_over(stores: Callable[[], BreakerStore]) -> None:
    """Let a new caller take the trial when the previous one never reported back."""
    clock = Clock()
    first, second = make_breaker(stores, clock), make_breaker(stores, clock)
    for _ in range(THRESHOLD):
        first.record_failure()
    clock.now = T0 + TIMEOUT
    first.before_call()  # ... and this process dies
    clock.now = T0 + 2 * TIMEOUT
    second.before_call()
    expected = BreakerState("half_open", 3, T0 + 2 * TIMEOUT)
    assert expected == second.state()


def test_permanent_errors_neither_trip_nor_reset(stores: Callable[[], BreakerStore]) -> None:
    """Leave the breaker untouched when calls through Guard fail permanently."""
    clock = Clock()
    breaker = make_breaker(stores, clock)
    guard = Guard(
        "postgrest",
        breaker=breaker,
        limiter=None,
        policy=RetryPolicy(attempts=1),
        sleep=pytest.fail,
        clock=clock,
    )

    def transient() -> None:
        raise TransientError("503", dependency="postgrest", status=503)

    def permanent() -> None:
        raise PermanentError("400", dependency="postgrest", status=400)

    for fn, error in [(transient, UnavailableError)] * 2 + [(permanent, PermanentError)] * 4:
        with pytest.raises(error):
            guard.call(fn)
    expected = BreakerState("closed", 2)
    assert expected == breaker.state()
    with pytest.raises(UnavailableError):
        guard.call(transient)
    expected = BreakerState("open", 3, T0)
    assert expected == breaker.state()
    with pytest.raises(CircuitOpenError):
        guard.call(permanent)


def test_reset_closes(stores: Callable[[], BreakerStore]) -> None:
    """Force an open breaker closed."""
    clock = Clock()
    breaker = make_breaker(stores, clock)
    for _ in range(THRESHOLD):
        breaker.record_failure()
    breaker.reset()
    breaker.before_call()
    expected = CLOSED
    assert expected == breaker.state()


def test_breakers_are_independent_per_name(stores: Callable[[], BreakerStore]) -> None:
    """Keep one state per dependency name."""
    clock = Clock()
    store = stores()
    sheets = CircuitBreaker("sheets", store, THRESHOLD, TIMEOUT, clock=clock)
    postgrest = CircuitBreaker("postgrest", store, THRESHOLD, TIMEOUT, clock=clock)
    for _ in range(THRESHOLD):
        sheets.record_failure()
    postgrest.record_failure()
    postgrest.before_call()
    expected = (["postgrest", "sheets"], BreakerState("open", 3, T0), BreakerState("closed", 1))
    assert expected == (store.names(), sheets.state(), postgrest.state())


@pytest.mark.parametrize(("threshold", "timeout"), [(0, 30.0), (3, -1.0)])
def test_breaker_rejects_bad_settings(threshold: int, timeout: float) -> None:
    """Refuse a threshold below 1 and a negative timeout."""
    with pytest.raises(ValueError):
        CircuitBreaker("postgrest", MemoryStore(), threshold, timeout)


# --- FileStore specifics ----------------------------------------------------------


def file_doc(**overrides: object) -> bytes:
    doc = {
        "version": 1,
        "name": "postgrest",
        "state": "open",
        "consecutive_failures": 3,
        "opened_at": T0 - 5,
        "updated_at": T0 - 5,
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "file is empty"),
        (b"  \n", "file is empty"),
        (b'{"version": 1, "state": ', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (file_doc(version=2), "unknown version 2"),
        (file_doc(version="1"), "unknown version '1'"),
        (file_doc(state="ajar"), "bad state 'ajar'"),
        (file_doc(consecutive_failures="3"), "bad consecutive_failures '3'"),
        (file_doc(consecutive_failures=True), "bad consecutive_failures True"),
        (file_doc(consecutive_failures=-1), "bad consecutive_failures -1"),
        (file_doc(opened_at="yesterday"), "bad opened_at 'yesterday'"),
        (file_doc(opened_at=None), "state 'open' without opened_at"),
        (file_doc(name="sheets"), "holds the state of 'sheets'"),
    ],
    ids=[
        "empty",
        "blank",
        "truncated-json",
        "not-utf8",
        "not-object",
        "unknown-version",
        "version-as-string",
        "bad-state",
        "failures-as-string",
        "failures-as-bool",
        "negative-failures",
        "opened-at-as-string",
        "open-without-time",
        "wrong-name",
    ],
)
def test_unusable_file_warns_reads_closed_and_is_rewritten(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    """Warn once naming the file, treat the breaker as closed, rewrite it on update."""
    warnings: list[str] = []
    store = FileStore(tmp_path, warn=warnings.append, clock=Clock())
    path = tmp_path / "breaker-postgrest.json"
    path.write_bytes(content)
    breaker = CircuitBreaker("postgrest", store, THRESHOLD, TIMEOUT, clock=Clock())
    breaker.before_call()
    expected_warning = f"breaker state file {path} is unusable ({reason}"
    expected_shape = (1, True, True, False)
    assert expected_shape == (
        len(warnings),
        warnings[0].startswith(expected_warning),
        warnings[0].endswith("; treating postgrest as closed"),
        "\n" in warnings[0],
    )
    expected = {
        "version": 1,
        "name": "postgrest",
        "state": "closed",
        "consecutive_failures": 0,
        "opened_at": None,
        "updated_at": T0,
    }
    assert expected == json.loads(path.read_bytes())
    breaker.before_call()
    expected_count = 1
    assert expected_count == len(warnings)


def test_future_opened_at_is_clamped_on_load(tmp_path: Path) -> None:
    """Read an opened_at from the future (clock stepped back) as now."""
    store = FileStore(tmp_path, warn=pytest.fail, clock=Clock())
    (tmp_path / "breaker-postgrest.json").write_bytes(file_doc(opened_at=T0 + 86_400))
    breaker = CircuitBreaker("postgrest", store, THRESHOLD, TIMEOUT, clock=Clock())
    expected = BreakerState("open", 3, T0)
    assert expected == store.load("postgrest")
    with pytest.raises(CircuitOpenError) as info:
        breaker.before_call()
    saved = json.loads((tmp_path / "breaker-postgrest.json").read_bytes())
    expected_times = (T0 + TIMEOUT, T0)
    assert expected_times == (info.value.retry_at, saved["opened_at"])


def test_file_contents_and_modes(tmp_path: Path) -> None:
    """Write the documented JSON, files 0600 and a new directory 0700."""
    directory = tmp_path / "state" / "breakers"
    clock = Clock()
    breaker = CircuitBreaker(
        "postgrest", FileStore(directory, warn=pytest.fail, clock=clock), 1, TIMEOUT, clock=clock
    )
    breaker.record_failure()
    expected = {
        "version": 1,
        "name": "postgrest",
        "state": "open",
        "consecutive_failures": 1,
        "opened_at": T0,
        "updated_at": T0,
    }
    assert expected == json.loads((directory / "breaker-postgrest.json").read_bytes())
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in (
            directory,
            directory / "breaker-postgrest.json",
            directory / "breaker-postgrest.lock",
        )
    }
    expected_modes = {
        "breakers": 0o700,
        "breaker-postgrest.json": 0o600,
        "breaker-postgrest.lock": 0o600,
    }
    assert expected_modes == modes


def test_updates_leave_only_state_and_lock_files(tmp_path: Path) -> None:
    """Leave no temp files behind and never delete the lock file."""
    clock = Clock()
    breaker = CircuitBreaker(
        "postgrest", FileStore(tmp_path, warn=pytest.fail), 2, TIMEOUT, clock=clock
    )
    for _ in range(5):
        breaker.record_failure()
        breaker.reset()
        clock.now += 1
    expected = ["breaker-postgrest.json", "breaker-postgrest.lock"]
    assert expected == sorted(os.listdir(tmp_path))


def test_unchanged_state_is_not_rewritten(tmp_path: Path) -> None:
    """Skip the write (and its fsyncs) when a decision changes nothing."""
    breaker = CircuitBreaker("postgrest", FileStore(tmp_path, warn=pytest.fail), 3, TIMEOUT)
    for _ in range(3):
        breaker.before_call()
        breaker.record_success()
    expected = ["breaker-postgrest.lock"]
    assert expected == sorted(os.listdir(tmp_path))


def test_failed_write_keeps_old_state_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the previous file intact and remove the temp file when the rename fails."""
    clock = Clock()
    store = FileStore(tmp_path, warn=pytest.fail, clock=clock)
    breaker = CircuitBreaker("postgrest", store, 1, TIMEOUT, clock=clock)
    breaker.record_failure()
    before = (tmp_path / "breaker-postgrest.json").read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        breaker.reset()
    expected = (before, ["breaker-postgrest.json", "breaker-postgrest.lock"])
    assert expected == (
        (tmp_path / "breaker-postgrest.json").read_bytes(),
        sorted(os.listdir(tmp_path)),
    )


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "x y"])
def test_unsafe_names_are_rejected(tmp_path: Path, name: str) -> None:
    """Refuse dependency names that are not plain file-name words."""
    with pytest.raises(ValueError):
        FileStore(tmp_path).load(name)


def test_names_lists_state_files(tmp_path: Path) -> None:
    """List dependencies that have a state file; none for a missing directory."""
    store = FileStore(tmp_path / "missing")
    expected_none: list[str] = []
    assert expected_none == store.names()
    for name in ("sheets", "postgrest"):
        CircuitBreaker(name, store, 1, TIMEOUT).record_failure()
    expected = ["postgrest", "sheets"]
    assert expected == store.names()


def _hammer(directory: str, n: int) -> None:
    breaker = CircuitBreaker("postgrest", FileStore(Path(directory)), 10_000, TIMEOUT)
    for _ in range(n):
        breaker.record_failure()


def test_file_store_serialises_processes(tmp_path: Path) -> None:
    """Lose no update when four processes count failures at once."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), 25)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
    expected = ([0, 0, 0, 0], 100)
    assert expected == ([p.exitcode for p in procs], FileStore(tmp_path).load("postgrest").failures)
