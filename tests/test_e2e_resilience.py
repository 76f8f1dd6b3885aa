"""End to end: what a sync does when PostgREST or Google Sheets fails (issue 3).

The CLI runs as a separate process against the real stack. PostgREST is reached
through devstack's FaultProxy, which counts every request and injects 5xx answers,
dropped connections and slow answers; the local Sheets server counts and fails its
own requests. Each test checks the exact calls made, the table against the sheet,
and what sync_state says about the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Spawn, Sync

from devstack import LocalStack
from devstack.proxy import FaultProxy
from listing_sync.pipeline import convert
from listing_sync.resilience import BreakerState, CircuitBreaker, FileStore, RunLock
from listing_sync.sheets import chunk_rows_for

TAB = "Listings"
HEADER = ["property_number", "address", "price"]
LISTINGS = "/property_listings"
STATE = "/sync_state"
# A 1 ms backoff base: no test waits out a real backoff.
FAST = {"SYNC_RETRY_DELAY": "1"}
# Two failures open a breaker, which then stays open 1.5 s.
TRIP = {
    "SYNC_RETRY_ATTEMPTS": "2",
    "SYNC_CIRCUIT_BREAKER_THRESHOLD": "2",
    "SYNC_CIRCUIT_BREAKER_TIMEOUT": "1500",
}
# The same, but the open breaker cools down for a minute: a run that starts slowly on
# a busy machine still finds it open (the timeout is read by each run from its settings).
PATIENT = {**TRIP, "SYNC_CIRCUIT_BREAKER_TIMEOUT": "60000"}
# "Exits within a second": a second of work plus the interpreter's start-up (about
# 0.6 s idle, more when the 2-core CI machine is busy).
SOON = 2.0


# --- helpers ------------------------------------------------------------------------


def listings(n: int, start: int = 0) -> list[list[object]]:
    """``n`` sheet rows P-0000.. with an address and a price."""
    return [[f"P-{i:04d}", f"address {i}", 1000 + i] for i in range(start, start + n)]


def put_sheet(stack: LocalStack, rows: list[list[object]], **grid: int) -> None:
    stack.sheets.set_sheet(stack.spreadsheet_id, TAB, [HEADER, *rows], **grid)


def as_table(rows: list[list[object]]) -> list[tuple[str, ...]]:
    """What property_listings should hold for these sheet rows, sorted by number."""
    data = [tuple(str(c) for c in r) for r in rows if r]
    return sorted(data)


def table(stack: LocalStack) -> list[tuple[str | None, ...]]:
    return stack.sql(
        "select property_number, address, price from property_listings "
        "where removed_at is null order by property_number"
    )


def table_count(stack: LocalStack) -> int:
    return int(stack.sql("select count(*) from property_listings")[0][0] or 0)


def runs(stack: LocalStack) -> list[tuple[str | None, ...]]:
    """(status, exit_code, error_message, success_count, finished?) per run, oldest first."""
    return stack.sql(
        "select status, exit_code, error_message, success_count, "
        "case when completed_at is null then 'open' else 'finished' end "
        "from sync_state order by started_at"
    )


def breaker(stack: LocalStack, name: str) -> BreakerState:
    """The breaker state as the next run will read it from the state directory."""
    return FileStore(stack.state_dir).load(name)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` every 20 ms; fail the test if it stays false."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout}s")
        time.sleep(0.02)


def wait_for_half_open(stack: LocalStack, name: str) -> None:
    """Wait (polling) until the open breaker's timeout has elapsed."""
    state = breaker(stack, name)
    assert "open" == state.state and state.opened_at is not None, state
    retry_at = state.opened_at + 1.5
    wait_until(lambda: time.time() > retry_at + 0.05, timeout=5)


def wait_for_lock_wait(proc: subprocess.Popen[str], lock_file: Path) -> None:
    """Wait until ``proc`` has opened the lock file, i.e. is waiting for the lock."""

    def has_it_open() -> bool:
        fds = Path(f"/proc/{proc.pid}/fd")
        try:
            return any(os.readlink(fd) == str(lock_file) for fd in fds.iterdir())
        except OSError:  # an fd closed while we looked
            return False

    wait_until(has_it_open)


def out(r: subprocess.CompletedProcess[str]) -> str:
    return f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


# --- fixtures -----------------------------------------------------------------------


# --- PostgREST failures -----------------------------------------------------------


def test_503_with_retry_after_waits_that_long_then_completes(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """A 503 with Retry-After: 1 on the first upsert is retried after 1 s, not the 1 ms backoff."""
    rows = listings(25)
    put_sheet(clean_stack, rows)
    proxy.fail(1, status=503, retry_after="1", method="POST", path=LISTINGS)

    began = time.monotonic()
    r = sync("sync", "all", "--verbose", env={"SYNC_BATCH_SIZE": "10"})
    elapsed = time.monotonic() - began

    assert 0 == r.returncode, out(r)
    assert 4 == proxy.count("POST", LISTINGS)  # 3 batches + 1 retry
    assert elapsed >= 1.0, out(r)
    assert "retrying in 1.0s" in r.stderr
    assert as_table(rows) == table(clean_stack)
    assert [("completed", "0", None, "25", "finished")] == runs(clean_stack)


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("fail", {"status": 503}),
        ("fail", {"status": 500, "code": "40001"}),
        ("drop", {}),
        ("drop", {"partial": True}),
    ],
    ids=["503", "500-40001", "reset-no-answer", "reset-partial-headers"],
)
def test_transient_failure_of_one_upsert_is_retried_once(
    clean_stack: LocalStack,
    proxy: FaultProxy,
    sync: Sync,
    fault: str,
    options: dict[str, object],
) -> None:
    """A transient failure of the second batch costs exactly one more POST; nothing is lost."""
    rows = listings(25)
    put_sheet(clean_stack, rows)
    getattr(proxy, fault)(1, method="POST", path=LISTINGS, skip=1, **options)

    r = sync("sync", "all", env={"SYNC_BATCH_SIZE": "10"})

    assert 0 == r.returncode, out(r)
    outcomes = [q.outcome for q in proxy.requests if q.method == "POST" and q.path == LISTINGS]
    assert 4 == len(outcomes)  # 3 batches + 1 retry of batch 2
    assert ["forwarded", "forwarded", "forwarded"] == [outcomes[0], *outcomes[2:]]
    assert "forwarded" != outcomes[1]
    # The retry recovered: nothing about it for cron to mail.
    assert "attempt 1 failed" not in r.stderr, out(r)
    assert "retrying" not in r.stderr, out(r)
    assert as_table(rows) == table(clean_stack)
    assert [("completed", "0", None, "25", "finished")] == runs(clean_stack)


def test_response_slower_than_the_timeout_is_retried_and_stays_idempotent(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """An upsert answered after the client's timeout is sent again; the late one lands too."""
    rows = listings(25)
    put_sheet(clean_stack, rows)
    proxy.slow(1, seconds=1.2, method="POST", path=LISTINGS)

    r = sync("sync", "all", "--verbose", env={"SYNC_BATCH_SIZE": "10", "SYNC_HTTP_TIMEOUT": "0.5"})
    assert proxy.wait_idle(), "the slow request never finished"

    assert 0 == r.returncode, out(r)
    assert 4 == proxy.count("POST", LISTINGS)
    assert "ReadTimeout" in r.stderr  # the retry's debug line
    assert as_table(rows) == table(clean_stack)
    assert 25 == table_count(clean_stack)
    assert [("completed", "0", None, "25", "finished")] == runs(clean_stack)


def test_permanent_400_is_not_retried_and_does_not_count_against_the_breaker(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """A 400 while reading the table fails the run after one call, writes nothing, trips nothing."""
    put_sheet(clean_stack, listings(5))
    proxy.fail(1, status=400, method="GET", path=LISTINGS)

    r = sync("sync", "all", env={"SYNC_CIRCUIT_BREAKER_THRESHOLD": "1"})

    assert 69 == r.returncode, out(r)
    # The refused request was not sent again (other reads of the table went on meanwhile).
    [refused] = [q for q in proxy.requests if q.outcome == "status 400"]
    assert (refused.method, refused.path) == ("GET", LISTINGS)
    assert 1 == sum(q.query == refused.query for q in proxy.requests)
    assert 0 == proxy.count("POST", LISTINGS)
    assert 0 == table_count(clean_stack)
    assert "closed" == breaker(clean_stack, "postgrest").state
    [(status, code, message, success, finished)] = runs(clean_stack)
    assert ("failed", "69", "0", "finished") == (status, code, success, finished)
    assert message is not None and "400 22P02" in message


def test_retry_after_beyond_the_run_budget_fails_at_once(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """A Retry-After longer than the run has left ends the run (69) instead of sleeping."""
    put_sheet(clean_stack, listings(5))
    proxy.fail(None, status=503, retry_after="30", method="POST", path=LISTINGS)

    began = time.monotonic()
    r = sync("sync", "all", env={"SYNC_RUN_TIMEOUT": "5"})
    elapsed = time.monotonic() - began

    assert 69 == r.returncode, out(r)
    assert elapsed < 4, out(r)
    assert 1 == proxy.count("POST", LISTINGS)
    assert "remaining budget" in r.stderr
    assert 0 == table_count(clean_stack)
    [(status, code, message, success, finished)] = runs(clean_stack)
    assert ("failed", "69", "0", "finished") == (status, code, success, finished)
    assert message is not None and "Retry-After wait of 30.0s" in message


# --- Google Sheets failures -------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "google_status"), [(429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL")]
)
def test_sheets_error_is_retried_then_the_run_completes(
    clean_stack: LocalStack, sync: Sync, status: int, google_status: str
) -> None:
    """One Sheets 429 or 500 costs one more read; the run completes with the whole sheet."""
    rows = listings(5)
    put_sheet(clean_stack, rows)
    clean_stack.sheets.fail_next(1, status=status)

    r = sync("sync", "all", "--verbose")

    assert 0 == r.returncode, out(r)
    assert 3 == clean_stack.sheets.count("/values")  # header (failed), header, rows
    assert f"{status} {google_status}" in r.stderr  # the debug line of the retry
    assert as_table(rows) == table(clean_stack)
    assert [("completed", "0", None, "5", "finished")] == runs(clean_stack)


def test_429_in_the_middle_of_a_chunked_read_writes_nothing(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """A 429 outlasting the retries on the second chunk fails the run (69); nothing is written."""
    step = chunk_rows_for(len(HEADER))
    first, second = listings(5), listings(3, start=5)
    # Rows 2-6 fall in the first chunk, rows step+2.. in the second one.
    put_sheet(clean_stack, [*first, *[[]] * (step - 5), *second])
    clean_stack.sheets.fail_after(3, status=429)  # header, chunk 1, then chunk 2 fails

    # No quota window: the 429 gets SYNC_RETRY_ATTEMPTS like any transient error.
    r = sync("sync", "all", env={"SYNC_SHEETS_QUOTA_WINDOW": "0"})

    assert 69 == r.returncode, out(r)
    assert 5 == clean_stack.sheets.count("/values")  # header, chunk 1, chunk 2 x 3 attempts
    assert f"reading rows {step + 2}-" in r.stderr
    assert 0 == proxy.count("POST", LISTINGS)
    assert 0 == table_count(clean_stack)
    [(status, code, message, success, finished)] = runs(clean_stack)
    assert ("failed", "69", "0", "finished") == (status, code, success, finished)
    assert message is not None and "429 RESOURCE_EXHAUSTED" in message


def test_google_quota_is_waited_out_whatever_retry_attempts_says(
    clean_stack: LocalStack, sync: Sync
) -> None:
    """Six 429 RESOURCE_EXHAUSTED (no Retry-After) with 3 attempts: retried, the run completes."""
    rows = listings(5)
    put_sheet(clean_stack, rows)
    clean_stack.sheets.fail_next(6, status=429)

    r = sync("sync", "all", env={"SYNC_RETRY_ATTEMPTS": "3", "SYNC_CIRCUIT_BREAKER_THRESHOLD": "2"})

    assert 0 == r.returncode, out(r)
    assert 8 == clean_stack.sheets.count("/values")  # header x 7 (6 refused), rows
    assert "429" not in r.stderr, out(r)
    assert as_table(rows) == table(clean_stack)
    assert [("completed", "0", None, "5", "finished")] == runs(clean_stack)


def test_google_quota_that_outlasts_the_window_fails_the_run(
    clean_stack: LocalStack, sync: Sync
) -> None:
    """A 429 lasting past the quota window (shortened to 0.3 s): exit 69, nothing written."""
    put_sheet(clean_stack, listings(5))
    clean_stack.sheets.fail_after(1, status=429)

    began = time.monotonic()
    r = sync("sync", "all", env={"SYNC_SHEETS_QUOTA_WINDOW": "0.3"})

    assert 69 == r.returncode, out(r)
    assert time.monotonic() - began < 20, out(r)
    assert clean_stack.sheets.count("/values") > 3, out(r)  # more than SYNC_RETRY_ATTEMPTS
    assert "429 RESOURCE_EXHAUSTED" in r.stderr, out(r)
    assert 0 == table_count(clean_stack)


def test_sheet_not_shared_is_one_line_naming_the_account(
    clean_stack: LocalStack, sync: Sync
) -> None:
    """Google's 403 PERMISSION_DENIED: exit 78, one line naming client_email, no Google warning."""
    put_sheet(clean_stack, listings(2))
    account = json.loads(clean_stack.key_path.read_text())["client_email"]
    clean_stack.sheets.fail_next(1, status=403, path_contains="/v4/spreadsheets")

    r = sync("sync", "all")

    assert 78 == r.returncode, out(r)
    [line] = r.stderr.splitlines()
    assert line.startswith(
        f"listing-sync: error: SYNC_SPREADSHEET_ID: spreadsheet '{clean_stack.spreadsheet_id}' "
        f"is not shared with the service account {account} "
    ), line


def test_sheets_api_not_enabled_names_the_project(clean_stack: LocalStack, sync: Sync) -> None:
    """Google's 403 SERVICE_DISABLED: exit 78, one line saying to enable the API in the project."""
    put_sheet(clean_stack, listings(2))
    clean_stack.sheets.fail_next(
        1, status=403, google_status="SERVICE_DISABLED", path_contains="/v4/spreadsheets"
    )

    r = sync("sync", "all")

    assert 78 == r.returncode, out(r)
    [line] = r.stderr.splitlines()
    assert "the Google Sheets API is not enabled in Cloud project 000000000000" in line, line
    assert "overview?project=000000000000" in line, line


def test_unparsable_range_is_a_configuration_error(clean_stack: LocalStack, sync: Sync) -> None:
    """Google's 400 "Unable to parse range": exit 78 naming SYNC_SHEET_NAME, not 69."""
    put_sheet(clean_stack, listings(2))
    clean_stack.sheets.fail_next(
        1, status=400, message=f"Unable to parse range: '{TAB}'!1:1", path_contains="/values"
    )

    r = sync("sync", "all")

    assert 78 == r.returncode, out(r)
    [line] = r.stderr.splitlines()
    assert line.startswith("listing-sync: error: SYNC_SHEET_NAME: Google Sheets reading the "), line
    assert "Unable to parse range" in line, line
    assert [] == runs(clean_stack)


# --- circuit breakers across runs ---------------------------------------------------


def test_open_postgrest_breaker_stops_the_next_run_until_one_trial_succeeds(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """Run A trips the breaker; B makes no call; C's one trial fails; D's trial recovers."""
    rows = listings(5)
    put_sheet(clean_stack, rows)
    proxy.fail(None, status=503)

    a = sync("sync", "all", env=TRIP)
    assert 69 == a.returncode, out(a)
    assert 2 == proxy.count()  # the first request and its one retry
    assert "open" == breaker(clean_stack, "postgrest").state
    assert [] == runs(clean_stack)  # PostgREST was down: the run could not record itself

    proxy.reset_counts()
    began = time.monotonic()
    b = sync("sync", "all", env=PATIENT)
    elapsed = time.monotonic() - began
    assert 69 == b.returncode, out(b)
    assert elapsed < SOON, out(b)
    assert "circuit breaker for postgrest is open" in b.stderr
    assert "next try at" in b.stderr
    assert 0 == proxy.count()
    assert 0 == clean_stack.sheets.count()

    wait_for_half_open(clean_stack, "postgrest")
    c = sync("sync", "all", env=TRIP)
    assert 69 == c.returncode, out(c)
    assert 1 == proxy.count()  # the trial, and no retry after it failed
    assert "open" == breaker(clean_stack, "postgrest").state

    wait_for_half_open(clean_stack, "postgrest")
    proxy.clear_faults()
    proxy.reset_counts()
    d = sync("sync", "all", env=TRIP)
    assert 0 == d.returncode, out(d)
    assert ("GET", STATE) == (proxy.requests[0].method, proxy.requests[0].path)
    assert {"forwarded"} == {q.outcome for q in proxy.requests}
    assert BreakerState() == breaker(clean_stack, "postgrest")
    assert as_table(rows) == table(clean_stack)
    assert [("completed", "0", None, "5", "finished")] == runs(clean_stack)


def test_open_sheets_breaker_stops_the_next_run_until_the_trial_succeeds(
    clean_stack: LocalStack, sync: Sync
) -> None:
    """Run A trips the sheets breaker; B makes no Sheets call and says when; C recovers."""
    rows = listings(5)
    put_sheet(clean_stack, rows)
    clean_stack.sheets.fail_after(1, status=503, path_contains="/v4/")

    a = sync("sync", "all", env=TRIP)
    assert 69 == a.returncode, out(a)
    assert 2 == clean_stack.sheets.count("/v4/")
    assert "open" == breaker(clean_stack, "sheets").state

    clean_stack.sheets.reset_counts()
    began = time.monotonic()
    b = sync("sync", "all", env=PATIENT)
    elapsed = time.monotonic() - began
    assert 69 == b.returncode, out(b)
    assert elapsed < SOON, out(b)
    assert 0 == clean_stack.sheets.count()  # not even a token request
    assert "circuit breaker for sheets is open" in b.stderr
    assert "next try at" in b.stderr

    wait_for_half_open(clean_stack, "sheets")
    clean_stack.sheets.clear_faults()
    c = sync("sync", "all", env=TRIP)
    assert 0 == c.returncode, out(c)
    assert 3 == clean_stack.sheets.count("/v4/")  # the trial (tabs), header, rows
    assert "closed" == breaker(clean_stack, "sheets").state
    assert as_table(rows) == table(clean_stack)
    statuses = [(s, code) for s, code, *_ in runs(clean_stack)]
    assert [("failed", "69"), ("failed", "69"), ("completed", "0")] == statuses
    assert "circuit breaker for sheets is open" in (runs(clean_stack)[1][2] or "")


def test_breaker_command_shows_and_resets_breakers(clean_stack: LocalStack, sync: Sync) -> None:
    """`breaker` lists both breakers (text and JSON); `breaker reset NAME` closes only that one."""
    store = FileStore(clean_stack.state_dir)
    for name in ("sheets", "postgrest"):
        CircuitBreaker(name, store, threshold=1, timeout=60).record_failure()

    shown = sync("breaker", "--json", env={"SYNC_CIRCUIT_BREAKER_TIMEOUT": "60000"})
    assert 0 == shown.returncode, out(shown)
    doc = json.loads(shown.stdout)
    assert str(clean_stack.state_dir) == doc["state_dir"]
    by_name = {b["name"]: b for b in doc["breakers"]}
    assert {"sheets": "open", "postgrest": "open"} == {n: b["state"] for n, b in by_name.items()}
    assert 1 == by_name["postgrest"]["consecutive_failures"]
    assert 55 < by_name["postgrest"]["retry_in_seconds"] <= 60

    text = sync("breaker")
    assert 0 == text.returncode, out(text)
    assert "postgrest" in text.stdout and "open" in text.stdout

    reset = sync("breaker", "reset", "postgrest")
    assert 0 == reset.returncode, out(reset)
    assert "closed: postgrest" == reset.stdout.strip()
    after = json.loads(sync("breaker", "--json").stdout)
    assert {"sheets": "open", "postgrest": "closed"} == {
        b["name"]: b["state"] for b in after["breakers"]
    }
    assert "closed" == breaker(clean_stack, "postgrest").state

    unknown = sync("breaker", "reset", "nope")
    assert 2 == unknown.returncode, out(unknown)
    assert 0 == sync("breaker", "reset").returncode
    assert "closed" == breaker(clean_stack, "sheets").state


# --- one run at a time --------------------------------------------------------------


def test_lock_held_second_sync_exits_75_and_status_health_still_work(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync, spawn: Spawn
) -> None:
    """While the lock is held: sync exits 75 untouched, --wait waits, status and health run."""
    rows = listings(5)
    put_sheet(clean_stack, rows)
    lock = RunLock(Path(clean_stack.state_dir) / "sync.lock")  # where runs take it
    lock.acquire()
    try:
        began = time.monotonic()
        busy = sync("sync", "all")
        assert 75 == busy.returncode, out(busy)
        assert time.monotonic() - began < 3
        assert "another listing-sync run holds the lock" in busy.stderr
        assert f"pid {os.getpid()}" in busy.stderr
        assert 0 == proxy.count()
        assert 0 == clean_stack.sheets.count()

        status = sync("status", "--json")
        assert 0 == status.returncode, out(status)
        assert {"runs": []} == json.loads(status.stdout)
        health = sync("health", "--format", "nagios")
        assert 2 == health.returncode, out(health)  # critical: no full sync yet, not 75
        assert "no completed full sync ever" in health.stdout

        waiting = spawn("sync", "all", "--wait", "20")
        wait_for_lock_wait(waiting, lock.path)
        time.sleep(0.3)
        assert waiting.poll() is None
        released = time.time()
    finally:
        lock.release()
    stdout, stderr = waiting.communicate(timeout=30)
    assert 0 == waiting.returncode, stdout + stderr
    started = clean_stack.sql("select extract(epoch from started_at) from sync_state")
    assert float(started[0][0] or 0) >= released
    assert [("completed", "0", None, "5", "finished")] == runs(clean_stack)
    assert as_table(rows) == table(clean_stack)


def test_sigterm_while_waiting_for_the_lock_exits_75_with_nothing_started(
    clean_stack: LocalStack, proxy: FaultProxy, spawn: Spawn
) -> None:
    """SIGTERM during --wait ends the wait at once: 75, no call, no sync_state row."""
    put_sheet(clean_stack, listings(5))
    lock = RunLock(Path(clean_stack.state_dir) / "sync.lock")
    lock.acquire()
    try:
        proc = spawn("sync", "all", "--wait", "30")
        wait_for_lock_wait(proc, lock.path)
        time.sleep(0.3)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        lock.release()

    assert 75 == proc.returncode, stdout + stderr
    assert time.monotonic() - began < 2, stderr
    assert "listing-sync: error: interrupted" in stderr
    assert 0 == proxy.count()
    assert 0 == clean_stack.sheets.count()
    assert [] == runs(clean_stack)


def test_run_budget_starts_when_the_lock_is_taken(
    clean_stack: LocalStack, proxy: FaultProxy, spawn: Spawn
) -> None:
    """Time spent in --wait does not count against SYNC_RUN_TIMEOUT."""
    rows = listings(5)
    put_sheet(clean_stack, rows)
    proxy.fail(1, status=503, retry_after="1", method="POST", path=LISTINGS)
    lock = RunLock(Path(clean_stack.state_dir) / "sync.lock")
    lock.acquire()
    try:
        # Budget 2 s; it waits 1.5 s for the lock, then needs a 1 s Retry-After wait.
        proc = spawn("sync", "all", "--wait", "30", env={"SYNC_RUN_TIMEOUT": "2"})
        wait_for_lock_wait(proc, lock.path)
        time.sleep(1.5)
    finally:
        lock.release()
    stdout, stderr = proc.communicate(timeout=30)

    assert 0 == proc.returncode, stdout + stderr
    assert 2 == proxy.count("POST", LISTINGS)
    assert as_table(rows) == table(clean_stack)
    assert [("completed", "0", None, "5", "finished")] == runs(clean_stack)


# --- crashes and signals ------------------------------------------------------------


def test_sigkill_mid_batches_then_rerun_marks_abandoned_and_converges(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync, spawn: Spawn
) -> None:
    """A run killed mid-write stays in_progress; the next one abandons it and finishes the table."""
    rows = listings(300)
    put_sheet(clean_stack, rows)
    victim = spawn("sync", "all", env={"SYNC_BATCH_SIZE": "10", "SYNC_RATE_LIMIT": "10"})
    wait_until(lambda: table_count(clean_stack) >= 50)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    assert proxy.wait_idle()
    written = table_count(clean_stack)
    assert 50 <= written < 300
    assert [("in_progress", None, None, "0", "open")] == runs(clean_stack)

    r = sync("sync", "all")

    assert 0 == r.returncode, out(r)
    assert "marked 1 unfinished run(s) abandoned" in r.stderr
    assert as_table(rows) == table(clean_stack)
    assert 300 == table_count(clean_stack)
    [abandoned, completed] = runs(clean_stack)
    assert ("abandoned", None, "0", "finished") == (
        abandoned[0],
        abandoned[1],
        abandoned[3],
        abandoned[4],
    )
    assert "the run ended without recording an outcome" in (abandoned[2] or "")
    assert ("completed", "0", None, str(300 - written), "finished") == completed


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_cuts_a_backoff_wait_short_and_records_interrupted(
    clean_stack: LocalStack, proxy: FaultProxy, spawn: Spawn, signum: int
) -> None:
    """A signal during a 30 s Retry-After wait ends the run at once: failed, interrupted, 75."""
    put_sheet(clean_stack, listings(5))
    proxy.fail(None, status=503, retry_after="30", method="POST", path=LISTINGS)
    proc = spawn("sync", "all", "--verbose")
    wait_until(lambda: proxy.count("POST", LISTINGS) == 1)
    time.sleep(0.3)  # now in the 30 s wait

    began = time.monotonic()
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=10)

    assert 75 == proc.returncode, stdout + stderr
    assert time.monotonic() - began < 3, stderr
    assert "retrying in 30.0s" in stderr
    assert "listing-sync: error: interrupted" in stderr
    assert 1 == proxy.count("POST", LISTINGS)
    assert 0 == table_count(clean_stack)
    assert [("failed", "75", "interrupted", "0", "finished")] == runs(clean_stack)


def test_sigterm_during_a_rate_limit_wait_stops_without_another_call(
    clean_stack: LocalStack, proxy: FaultProxy, spawn: Spawn
) -> None:
    """At 0.2 requests/s the second request waits 5 s for its token; SIGTERM ends that wait."""
    put_sheet(clean_stack, listings(5))
    proc = spawn("sync", "all", env={"SYNC_RATE_LIMIT": "0.2"})
    wait_until(lambda: proxy.count() == 1)
    time.sleep(0.3)  # now waiting for the token of the second request

    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=10)

    assert 75 == proc.returncode, stdout + stderr
    assert time.monotonic() - began < 2, stderr
    assert "listing-sync: error: interrupted" in stderr
    assert [("GET", STATE)] == [(q.method, q.path) for q in proxy.requests]
    assert [] == runs(clean_stack)  # stopped before the run's row was created


@pytest.mark.parametrize(
    ("concurrency", "slow"),
    [("1", {"count": 1, "skip": 1}), ("2", {"count": 2, "skip": 0})],
    ids=["one-at-a-time", "two-in-flight"],
)
def test_sigterm_mid_request_finishes_the_requests_in_flight_then_stops(
    clean_stack: LocalStack,
    proxy: FaultProxy,
    spawn: Spawn,
    concurrency: str,
    slow: dict[str, int],
) -> None:
    """SIGTERM while upserts are in flight: they complete and count, no other is sent, 75."""
    put_sheet(clean_stack, listings(50))
    proxy.slow(slow["count"], seconds=1.5, method="POST", path=LISTINGS, skip=slow["skip"])
    proc = spawn("sync", "all", env={"SYNC_BATCH_SIZE": "10", "SYNC_CONCURRENCY": concurrency})
    wait_until(lambda: proxy.count("POST", LISTINGS) == 2)

    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=10)

    assert 75 == proc.returncode, stdout + stderr
    assert 2 == proxy.count("POST", LISTINGS)
    assert 20 == table_count(clean_stack)
    assert [("failed", "75", "interrupted", "20", "finished")] == runs(clean_stack)


def test_concurrent_writes_fall_back_row_by_row_and_keep_every_good_row(
    clean_stack: LocalStack, sync: Sync
) -> None:
    """With 5 upserts in flight, a batch the database refuses still lands its good rows."""
    rows = listings(60)
    rows[17][2] = 99_999  # refused by the constraint below: its batch falls back row by row
    put_sheet(clean_stack, rows)
    clean_stack.sql(
        "alter table property_listings add constraint test_price_cap check (price < 10000)"
    )
    try:
        r = sync("sync", "all", env={"SYNC_BATCH_SIZE": "10", "SYNC_CONCURRENCY": "5"})
    finally:
        clean_stack.sql("alter table property_listings drop constraint test_price_cap")

    assert 1 == r.returncode, out(r)
    assert 59 == table_count(clean_stack)
    assert [("partial", "1", None, "59", "finished")] == runs(clean_stack)


@pytest.mark.parametrize(
    ("upsert_fails", "exit_code"), [(False, 0), (True, 69)], ids=["data-ok", "data-failed"]
)
def test_final_sync_state_update_failing_keeps_the_exit_code_truthful(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync, upsert_fails: bool, exit_code: int
) -> None:
    """When the run's last sync_state update fails, the exit code still says what the data did."""
    rows = listings(5)
    put_sheet(clean_stack, rows)
    # PATCHes: in_progress, total_items, then the outcome (fails, with its retries).
    proxy.fail(None, status=503, method="PATCH", path=STATE, skip=2)
    if upsert_fails:
        proxy.fail(None, status=503, method="POST", path=LISTINGS)

    r = sync("sync", "all", env={"SYNC_CIRCUIT_BREAKER_THRESHOLD": "10"})

    assert exit_code == r.returncode, out(r)
    assert 2 + 3 == proxy.count("PATCH", STATE)
    assert "could not record the outcome of run" in r.stderr
    assert (as_table(rows) if not upsert_fails else []) == table(clean_stack)
    assert [("in_progress", None, None, "0", "open")] == runs(clean_stack)


# --- helper processes (pipeline/convert.py) -------------------------------------------


def helpers_of(pid: int) -> list[int]:
    """The row conversion helpers process ``pid`` started, still running."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid, state = int(stat.rsplit(")", 1)[1].split()[1]), stat.rsplit(")", 1)[1].split()[0]
        if ppid == pid and state != "Z" and b"listing_sync.pipeline.convert" in cmdline:
            found.append(int(entry.name))
    return found


SPARE_CORES = min(convert.cores() - 1, convert.MAX_HELPERS)
needs_a_spare_core = pytest.mark.skipif(
    SPARE_CORES < 1, reason="row conversion helpers start only with a spare core"
)


def test_a_large_cold_sync_sorts_rows_in_helpers_and_writes_them_all(
    clean_stack: LocalStack, sync: Sync
) -> None:
    """12,000 rows: the first ones sorted by the CLI, the rest by its helpers (if the
    machine has a spare core); every row written, and the next run trusts every one."""
    rows = listings(12_000)
    put_sheet(clean_stack, rows)

    r = sync("sync", "all", "--verbose", "--json")

    assert 0 == r.returncode, out(r)
    used = f"rows sorted by {SPARE_CORES} helper process(es)"
    assert (used in r.stderr) == (SPARE_CORES > 0), r.stderr
    assert as_table(rows) == table(clean_stack)
    # The digests the helpers computed are the ones this process computes: all trusted.
    again = sync("sync", "all", "--json")
    assert 0 == again.returncode, out(again)
    assert (0, 12_000) == (json.loads(again.stdout)["success"], json.loads(again.stdout)["skipped"])


@needs_a_spare_core
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_helpers_sort_rows_stops_them_and_records_interrupted(
    clean_stack: LocalStack, spawn: Spawn, signum: int
) -> None:
    """The signal goes to the CLI (the helpers ignore it): the read stops, the helpers
    exit with it, the run is recorded interrupted, nothing is written."""
    put_sheet(clean_stack, listings(40_000))
    clean_stack.sheets.delay(0.3)  # every values request: the read lasts seconds
    proc = spawn("sync", "all")
    found: list[int] = []
    wait_until(lambda: bool(found.extend(helpers_of(proc.pid)) or found), timeout=30)

    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=10)

    assert 75 == proc.returncode, stdout + stderr
    assert "listing-sync: error: interrupted" in stderr
    assert [] == [pid for pid in found if Path(f"/proc/{pid}").exists()], (
        "a helper outlived the CLI"
    )
    assert 0 == table_count(clean_stack)
    assert [("failed", "75", "interrupted", "0", "finished")] == runs(clean_stack)
