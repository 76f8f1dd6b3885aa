"""End to end: every run leaves one truthful record (issue 12).

Lost answers and late writes between listing-sync and PostgREST (devstack's
FaultProxy forwards a request and closes the connection without the answer, or
holds a request past the client's timeout and forwards it later), signals at the
edges of a run, and hostile cells: the table still equals the sheet, each run has
exactly one final sync_state row whose counts are what happened, and nothing
exits 70.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from conftest import Spawn, Sync
from e2e_util import HEADER, listings, row, runs, set_sheet
from pingserver import PingRecorder

from devstack import LocalStack
from devstack.proxy import FaultProxy

LISTINGS = "/property_listings"
STATE = "/sync_state"
# A 1 ms backoff base and no rate limit: no test waits out a real backoff.
FAST = {"SYNC_RETRY_DELAY": "1", "SYNC_RATE_LIMIT": "1000"}
# The client gives up on an answer after 0.5 s (a held request is past it).
SHORT_TIMEOUT = {"SYNC_HTTP_TIMEOUT": "0.5"}


def out(r: subprocess.CompletedProcess[str]) -> str:
    return f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"


def numbers(n: int) -> list[list[object]]:
    return [row(f"K-{i:03d}") for i in range(n)]


def counts(run: Mapping[str, object]) -> dict[str, object]:
    keys = ("status", "exit_code", "total_items", "success_count", "failed_count")
    return {k: run[k] for k in (*keys, "skipped_count", "removed_count")}


def active(stack: LocalStack) -> list[str]:
    return sorted(n for n, r in listings(stack).items() if r["removed_at"] is None)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``condition`` every 20 ms; fail the test if it stays false."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {timeout}s")
        time.sleep(0.02)


# --- 1. creating a run is idempotent --------------------------------------------------


def test_a_lost_answer_to_the_create_leaves_one_run_and_health_ok(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """The create reached the database, its answer was lost: the retry makes no second row."""
    set_sheet(clean_stack, numbers(3))
    proxy.lose_answer(1, method="POST", path=STATE)
    r = sync("sync", "all")
    assert 0 == r.returncode, out(r)
    assert ["lost", "forwarded"] == [
        q.outcome for q in proxy.requests if (q.method, q.path) == ("POST", STATE)
    ]
    second = sync("sync", "all")
    assert 0 == second.returncode, out(second)
    assert ["completed", "completed"] == [run["status"] for run in runs(clean_stack)]
    health = sync("health")
    assert 0 == health.returncode, out(health)


# --- 2. a late write never overwrites the outcome --------------------------------------


def test_an_in_progress_write_landing_after_the_outcome_changes_nothing(
    clean_stack: LocalStack, proxy: FaultProxy, spawn: Spawn
) -> None:
    """The in_progress PATCH held past the timeout, executed after the final PATCH, is a no-op."""
    set_sheet(clean_stack, numbers(3))
    proxy.hold(1, method="PATCH", path=STATE)
    proc = spawn("sync", "all", env=SHORT_TIMEOUT)
    stdout, stderr = proc.communicate(timeout=120)
    assert 0 == proc.returncode, f"{stdout}\n{stderr}"
    (before,) = runs(clean_stack)
    proxy.release()
    assert proxy.wait_idle(20)
    held = [q for q in proxy.requests if q.outcome == "held"]
    assert 1 == len(held)
    (after,) = runs(clean_stack)
    assert {"status": "completed", "exit_code": 0} == {
        "status": after["status"],
        "exit_code": after["exit_code"],
    }
    assert before == after


# --- 3. counts come from what the run did ------------------------------------------------


def test_removed_count_is_right_when_the_removal_answer_is_lost(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """The removal PATCH landed but its answer was lost; the retry matches nothing: still 1."""
    set_sheet(clean_stack, numbers(10))
    first = sync("sync", "all")
    assert 0 == first.returncode, out(first)
    set_sheet(clean_stack, numbers(9))
    proxy.lose_answer(1, method="PATCH", path=LISTINGS)
    r = sync("sync", "all", "--json")
    assert 0 == r.returncode, out(r)
    assert 1 == json.loads(r.stdout)["removed"]
    assert [f"K-{i:03d}" for i in range(9)] == active(clean_stack)
    last = runs(clean_stack)[-1]
    assert {
        "status": "completed",
        "exit_code": 0,
        "total_items": 9,
        "success_count": 0,
        "failed_count": 0,
        "skipped_count": 9,
        "removed_count": 1,
    } == counts(last)


def test_success_count_is_right_when_an_upsert_answer_is_lost(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """An upsert batch landed, its answer was lost, the retry lands again: counted once."""
    set_sheet(clean_stack, numbers(5))
    proxy.lose_answer(1, method="POST", path=LISTINGS)
    r = sync("sync", "all", "--json", env={"SYNC_BATCH_SIZE": "2"})
    assert 0 == r.returncode, out(r)
    assert 5 == json.loads(r.stdout)["success"]
    assert 5 == runs(clean_stack)[-1]["success_count"]
    assert 4 == proxy.count("POST", LISTINGS)  # 3 batches + 1 retry


def test_the_total_is_recorded_while_the_rows_are_written(
    clean_stack: LocalStack, proxy: FaultProxy, spawn: Spawn
) -> None:
    """The total goes with the first upsert, not a round trip before it: `status` shows it
    while the write is still held."""
    set_sheet(clean_stack, numbers(4))
    proxy.hold(1, method="POST", path=LISTINGS)
    proc = spawn("sync", "all")
    try:
        wait_until(lambda: proxy.count("POST", LISTINGS) == 1 and bool(runs(clean_stack)))
        wait_until(lambda: runs(clean_stack)[0]["total_items"] == 4)
        assert "in_progress" == runs(clean_stack)[0]["status"]
    finally:
        proxy.release()
    stdout, stderr = proc.communicate(timeout=120)
    assert 0 == proc.returncode, f"{stdout}\n{stderr}"
    (done,) = runs(clean_stack)
    assert ("completed", 4, 4) == (done["status"], done["total_items"], done["success_count"])


def test_a_run_with_nothing_to_write_records_its_total_with_the_outcome(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """No round trip for the total before an outcome that follows at once."""
    set_sheet(clean_stack, numbers(5))
    assert 0 == sync("sync", "all").returncode
    patches, upserts = proxy.count("PATCH", STATE), proxy.count("POST", LISTINGS)
    r = sync("sync", "all", "--json")
    assert 0 == r.returncode, out(r)
    assert 2 == proxy.count("PATCH", STATE) - patches  # in_progress, then the outcome
    assert upserts == proxy.count("POST", LISTINGS)
    last = runs(clean_stack)[-1]
    assert ("completed", 5, 5) == (last["status"], last["total_items"], last["skipped_count"])


# --- 4. signals at the edges of a run --------------------------------------------------


def _blocked_writing_stdout(pid: int) -> bool:
    try:
        # "pipe_write" or "anon_pipe_write", depending on the kernel
        return Path(f"/proc/{pid}/wchan").read_text().endswith("pipe_write")
    except OSError:
        return False


def test_sigterm_after_the_outcome_is_recorded_keeps_its_exit_code(
    clean_stack: LocalStack, proxy: FaultProxy, spawn: Spawn
) -> None:
    """SIGTERMs while the finished run prints its report: exit with the recorded outcome."""
    # Many bad rows make a --json report larger than the pipe, so the process blocks
    # writing it (after recording the outcome) until the test reads.
    bad = [row(f"B-{i:04d}", price="not a price " + "x" * 100) for i in range(800)]
    set_sheet(clean_stack, [*numbers(3), *bad])
    proc = spawn("sync", "all", "--json")
    wait_until(lambda: _blocked_writing_stdout(proc.pid), timeout=60)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert 1 == proc.returncode, stderr
    assert 1 == json.loads(stdout)["exit_code"]
    (run,) = runs(clean_stack)
    assert ("partial", 1) == (run["status"], run["exit_code"])


def test_sigterms_during_the_final_ping_change_nothing(
    clean_stack: LocalStack, proxy: FaultProxy, spawn: Spawn
) -> None:
    """Two SIGTERMs while the success ping is in flight: the run still exits 0."""
    set_sheet(clean_stack, numbers(3))
    with PingRecorder(hold_path="/ping/check-uuid") as pings:
        proc = spawn("sync", "all", env={"SYNC_PING_URL": pings.url})
        wait_until(lambda: "/ping/check-uuid" in pings.paths(), timeout=60)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        _stdout, stderr = proc.communicate(timeout=60)
    assert 0 == proc.returncode, stderr
    (run,) = runs(clean_stack)
    assert ("completed", 0) == (run["status"], run["exit_code"])


def test_sigterm_at_start_up_leaves_no_trace(
    clean_stack: LocalStack, proxy: FaultProxy, spawn: Spawn
) -> None:
    """A SIGTERM in the first moments: the process ends by the signal or 75, nothing recorded."""
    set_sheet(clean_stack, numbers(3))
    proc = spawn("sync", "all")
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode in (-signal.SIGTERM, 75), stderr
    assert [] == runs(clean_stack)
    assert [] == active(clean_stack)


# --- 5.-7. hostile cells and headers ----------------------------------------------------


def test_a_number_of_4301_digits_fails_its_row_only(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """Python's int-string limit is a cell problem, not a crash: the good rows are written."""
    set_sheet(clean_stack, [*numbers(2), row("BIG", land_area_m2="9" * 4301)])
    r = sync("sync", "all", "--json")
    assert 1 == r.returncode, out(r)
    report = json.loads(r.stdout)
    assert (2, 1) == (report["success"], report["failed"])
    (run,) = runs(clean_stack)
    (problem,) = run["error_details"]
    assert problem["message"].startswith("number too long (4301 digits; at most 1000)")
    assert ["K-000", "K-001"] == active(clean_stack)


@pytest.mark.parametrize(
    ("cell", "shown"),
    [("12\x00万円", "12\\u0000万円"), ("価格\udc80", "価格\\udc80")],
    ids=["nul", "lone-surrogate"],
)
def test_an_unencodable_bad_cell_is_recorded_escaped(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync, cell: str, shown: str
) -> None:
    """NUL or a lone surrogate in a bad cell: the run is recorded partial, the value escaped."""
    set_sheet(clean_stack, [*numbers(2), row("BAD", price=cell)])
    r = sync("sync", "all", "--json")
    assert 1 == r.returncode, out(r)
    report = json.loads(r.stdout)
    assert shown == report["problems"][0]["value"]
    (run,) = runs(clean_stack)
    assert ("partial", 1) == (run["status"], run["exit_code"])
    assert shown == run["error_details"][0]["value"]
    text = sync("sync", "all")
    assert 1 == text.returncode, out(text)
    assert "row 4 (BAD) column price" in text.stderr
    health = sync("health")
    assert "no completed full sync" not in health.stdout, out(health)


def test_a_lone_surrogate_in_a_header_is_an_escaped_extra_column(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """A header with a lone surrogate: every run completes, the extra key is escaped."""
    header = [*HEADER, "メモ\ud83d"]
    set_sheet(clean_stack, [[*r, "x"] for r in numbers(2)], header=header)
    for _ in range(2):
        r = sync("sync", "all", "--json")
        assert 0 == r.returncode, out(r)
    extras = {n: r["extra"] for n, r in listings(clean_stack).items()}
    assert {"K-000": {"メモ\\ud83d": "x"}, "K-001": {"メモ\\ud83d": "x"}} == extras
    assert ["completed", "completed"] == [run["status"] for run in runs(clean_stack)]


def test_a_lone_surrogate_in_the_key_header_is_a_sheet_error(
    clean_stack: LocalStack, proxy: FaultProxy, sync: Sync
) -> None:
    """The key header spoiled by a lone surrogate: exit 65 with one escaped line, not 70."""
    header = ["property_number\udc80", *HEADER[1:]]
    set_sheet(clean_stack, numbers(2), header=header)
    r = sync("sync", "all", "--json")
    assert 65 == r.returncode, out(r)
    assert "property_number\\udc80" in json.loads(r.stdout)["error"]
    assert [] == active(clean_stack)
