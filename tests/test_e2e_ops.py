"""Fit for cron and operators (issue 5), end to end on the real local stack.

Output under cron and on a terminal, health alerts and their Nagios exit codes,
the metrics file, healthchecks-style pings, key handling, the least-privilege
role, and a hunt for a planted secret in everything the tool leaves behind.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import RunCli
from helpers import rest_client
from pingserver import PingRecorder, closed_port_url, hanging_server
from promtext import parse

from devstack import LocalStack
from devstack.postgrest import mint_jwt
from listing_sync.notify import PING_TIMEOUT
from listing_sync.resilience.breaker import BreakerState, FileStore
from listing_sync.resilience.lock import RunLock
from listing_sync.schema import LISTINGS

REPO = Path(__file__).resolve().parent.parent
TAB = "Sheet1"
# Every sheet column has a header (the last ones empty): a clean run has nothing to say.
HEADER = ["property_number", "property_type", "price", "layout"] + [
    c for c in LISTINGS.columns if c not in ("property_number", "property_type", "price", "layout")
]
FAST = {"SYNC_RETRY_DELAY": "1", "SYNC_CIRCUIT_BREAKER_TIMEOUT": "50", "SYNC_RATE_LIMIT": "1000"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
COMMANDS = [("sync", "all"), ("status",), ("health",), ("breaker",)]


def listings(count: int = 3, *, bad_price_at: int | None = None) -> list[list[object]]:
    """A sheet of ``count`` listings; optionally one with an unreadable price."""
    rows: list[list[object]] = [HEADER]
    for i in range(1, count + 1):
        price: object = "not a price" if i == bad_price_at else 10_000_000 + i
        rows.append([f"L-{i:03d}", "マンション", price, "2LDK"])
    return rows


@pytest.fixture
def ops(clean_stack: LocalStack) -> LocalStack:
    """A clean stack whose sheet holds three valid listings."""
    clean_stack.sheets.set_sheet(clean_stack.spreadsheet_id, TAB, listings())
    return clean_stack


def seed_run(
    stack: LocalStack,
    *,
    sync_type: str = "full",
    status: str = "completed",
    started_ago: float = 3600,
    duration: float = 30,
    count: int = 1,
) -> None:
    """Insert ``count`` finished runs into sync_state directly (fast set-up for health)."""
    stack.psql(
        "insert into public.sync_state (sync_type, status, started_at, completed_at) "
        f"select '{sync_type}', '{status}', now() - make_interval(secs => {started_ago}), "
        f"now() - make_interval(secs => {started_ago - duration}) "
        f"from generate_series(1, {count});"
    )


def lines(text: str) -> list[str]:
    return text.splitlines()


def sync_ids(stack: LocalStack) -> list[str]:
    return [r[0] or "" for r in stack.sql("select id from sync_state order by started_at")]


# --- output ----------------------------------------------------------------------------


def test_success_under_cron_prints_nothing(ops: LocalStack, run_cli: RunCli) -> None:
    """stdout is not a terminal and the sync is clean: empty stdout and stderr, exit 0."""
    r = run_cli("sync", "all", env=FAST)
    assert 0 == r.returncode, r.stdout + r.stderr
    assert ("", "") == (r.stdout, r.stderr)
    assert [("3",)] == ops.sql("select count(*) from property_listings")


def test_summary_flag_prints_the_table_when_piped(ops: LocalStack, run_cli: RunCli) -> None:
    """--summary (as `make demo` runs it): the summary table on stdout although piped."""
    r = run_cli("sync", "all", "--summary", env=FAST)
    assert 0 == r.returncode, r.stdout + r.stderr
    text = ANSI.sub("", r.stdout)
    assert "completed" in text, text
    assert "written" in text, text
    assert "" == r.stderr


def test_problem_run_prints_a_few_lines_on_stderr_only(ops: LocalStack, run_cli: RunCli) -> None:
    """A partial run: nothing on stdout, a summary line and one line per bad row on stderr."""
    ops.sheets.set_sheet(ops.spreadsheet_id, TAB, listings(bad_price_at=2))
    r = run_cli("sync", "all", env=FAST)
    assert 1 == r.returncode, r.stdout + r.stderr
    assert "" == r.stdout
    [sync_id] = sync_ids(ops)
    err = lines(r.stderr)
    assert 2 == len(err), r.stderr
    assert (
        f"sync {sync_id} partial: 2 written, 1 failed, 0 unchanged, 0 removed, 0 not found"
        == err[0]
    )
    assert err[1].startswith("row 3 (L-002) column price: "), err[1]


def test_missing_header_reaches_stderr_under_cron(ops: LocalStack, run_cli: RunCli) -> None:
    """A clean run on a sheet lacking some headers exits 0 but says which (cron mails it)."""
    ops.sheets.set_sheet(ops.spreadsheet_id, TAB, [row[:4] for row in listings()])
    r = run_cli("sync", "all", env=FAST)
    assert 0 == r.returncode, r.stdout + r.stderr
    assert "" == r.stdout
    err = lines(r.stderr)
    assert 1 == len(err), r.stderr
    assert err[0].startswith("warning: No header in tab 'Sheet1' maps to 'status'"), err[0]
    quiet = run_cli("sync", "all", "--quiet", env=FAST)
    assert ("", "") == (quiet.stdout, quiet.stderr)


def test_recovered_retry_is_quiet_but_counted(
    ops: LocalStack, run_cli: RunCli, tmp_path: Path
) -> None:
    """A Sheets 503 that one retry got through: exit 0, silent stderr, counted in metrics."""
    path = tmp_path / "listing_sync.prom"
    ops.sheets.fail_next(1, status=503, google_status="UNAVAILABLE")
    r = run_cli("sync", "all", "--metrics-file", path, env=FAST)
    assert 0 == r.returncode, r.stdout + r.stderr
    assert ("", "") == (r.stdout, r.stderr)
    m = parse(path.read_text())
    assert 1 == m.value("listing_sync_last_run_retries", dependency="sheets")
    assert 0 == m.value("listing_sync_last_run_retries", dependency="postgrest")
    ops.sheets.fail_next(1, status=503, google_status="UNAVAILABLE")
    verbose = run_cli("sync", "all", "--verbose", env=FAST)
    assert 0 == verbose.returncode, verbose.stdout + verbose.stderr
    assert "debug: sheets: attempt 1 failed" in verbose.stderr


def test_quiet_problem_run_prints_nothing_but_keeps_the_exit_code(
    ops: LocalStack, run_cli: RunCli
) -> None:
    """--quiet on a partial run: no output at all, exit 1 still says what happened."""
    ops.sheets.set_sheet(ops.spreadsheet_id, TAB, listings(bad_price_at=2))
    r = run_cli("sync", "all", "--quiet", env=FAST)
    assert 1 == r.returncode, r.stdout + r.stderr
    assert ("", "") == (r.stdout, r.stderr)


def run_in_terminal(
    stack: LocalStack, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return (exit code, output)."""
    master, slave = pty.openpty()
    full = stack.env(TERM="xterm-256color", COLUMNS="200", LINES="50", **(env or {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "listing_sync", *args],
        env=full,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    # Without the colour and cursor escapes: what the operator reads.
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def test_terminal_shows_progress_bar_and_summary_table(ops: LocalStack) -> None:
    """On a terminal: a progress bar while syncing, then the summary table."""
    code, out = run_in_terminal(ops, "sync", "all", env=FAST)
    assert 0 == code, out
    [sync_id] = sync_ids(ops)
    assert "reading sheet" in out
    assert "writing" in out
    assert "━" in out  # the bar
    assert f"Sync {sync_id} (full)" in out
    for column in ("status", "total", "written", "unchanged", "failed", "removed"):
        assert column in out


def test_terminal_status_and_health_draw_tables(ops: LocalStack) -> None:
    """On a terminal, status and health draw their tables too."""
    seed_run(ops)
    code, out = run_in_terminal(ops, "status")
    assert 0 == code, out
    assert "Recent syncs" in out
    code, out = run_in_terminal(ops, "health")
    assert 0 == code, out
    assert "healthy (OK)" in out


def test_quiet_prints_nothing_on_every_command(ops: LocalStack, run_cli: RunCli) -> None:
    """--quiet: sync, status, health and breaker all succeed silently."""
    seed_run(ops)
    for command in COMMANDS:
        r = run_cli(*command, "--quiet", env=FAST)
        assert 0 == r.returncode, (command, r.stdout + r.stderr)
        assert ("", "") == (r.stdout, r.stderr), command


def test_json_prints_one_document_on_every_command(ops: LocalStack, run_cli: RunCli) -> None:
    """--json: one JSON document on stdout with the command's stable keys, nothing on stderr."""
    seed_run(ops)
    expected = {
        ("sync", "all"): ("status", "completed"),
        ("status",): ("runs", None),
        ("health",): ("status", "healthy"),
        ("breaker",): ("breakers", None),
    }
    for command in COMMANDS:
        r = run_cli(*command, "--json", env=FAST)
        assert 0 == r.returncode, (command, r.stdout + r.stderr)
        assert "" == r.stderr, command
        doc = json.loads(r.stdout)
        key, value = expected[command]
        assert key in doc, command
        if value is not None:
            assert value == doc[key], command


def test_json_error_object_on_every_command(ops: LocalStack, run_cli: RunCli) -> None:
    """--json on a configuration error: the error object on stdout, one line on stderr, 78."""
    message = (
        "POSTGREST_URL is not set (nor SUPABASE_URL): give the Supabase project URL "
        "or a PostgREST base URL"
    )
    # breaker reads only local files: it needs no PostgREST URL (see ONLY_STATE_DIR below).
    for command in [c for c in COMMANDS if c != ("breaker",)]:
        r = run_cli(*command, "--json", env={"POSTGREST_URL": None})
        assert 78 == r.returncode, (command, r.stdout + r.stderr)
        assert {"status": "error", "error": message, "exit_code": 78} == json.loads(r.stdout)
        assert [f"listing-sync: error: {message}"] == lines(r.stderr), command


def test_verbose_adds_debug_lines_on_every_command(ops: LocalStack, run_cli: RunCli) -> None:
    """--verbose: each command logs its settings as debug lines on stderr (never the key)."""
    seed_run(ops)
    for command in COMMANDS:
        r = run_cli(*command, "--verbose", env=FAST)
        assert 0 == r.returncode, (command, r.stdout + r.stderr)
        err = lines(r.stderr)
        assert err, command
        assert err[0].startswith(
            f"listing-sync: debug: settings: PostgREST {ops.postgrest_url}, "
            f"spreadsheet {ops.spreadsheet_id} (tab first), state dir {ops.state_dir}"
        ), err[0]
        assert ops.service_role_key not in r.stderr
        # Under cron a clean sync stays silent on stdout even when verbose.
        assert (command == ("sync", "all")) == ("" == r.stdout), command


def test_log_format_json_writes_only_json_lines(ops: LocalStack, run_cli: RunCli) -> None:
    """--log-format json: the problem lines are JSON records on stderr; a recovered retry is not."""
    ops.sheets.set_sheet(ops.spreadsheet_id, TAB, listings(bad_price_at=3))
    ops.sheets.fail_next(1, status=503, google_status="UNAVAILABLE")
    r = run_cli("sync", "all", "--log-format", "json", env=FAST)
    assert 1 == r.returncode, r.stdout + r.stderr
    assert "" == r.stdout
    records = [json.loads(line) for line in lines(r.stderr)]
    assert {"ts", "level", "logger", "message"} <= set(records[0])
    assert ["warning", "warning"] == [rec["level"] for rec in records]
    [sync_id] = sync_ids(ops)
    assert records[0]["message"].startswith(f"sync {sync_id} partial: 2 written, 1 failed")
    assert records[1]["message"].startswith("row 4 (L-003) column price: ")


def test_log_format_json_error_and_debug_lines(ops: LocalStack, run_cli: RunCli) -> None:
    """--log-format json --verbose: the debug lines and the final error are JSON too."""
    r = run_cli(
        "status",
        "--verbose",
        "--log-format",
        "json",
        env={**FAST, "POSTGREST_URL": closed_port_url(), "SYNC_RETRY_ATTEMPTS": "1"},
    )
    assert 69 == r.returncode, r.stdout + r.stderr
    records = [json.loads(line) for line in lines(r.stderr)]
    assert "debug" == records[0]["level"]
    assert "error" == records[-1]["level"]
    assert records[-1]["message"].startswith("postgrest unavailable after 1 attempts: ")


# --- health ----------------------------------------------------------------------------


def health(run_cli: RunCli, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli("health", *args, env={**FAST, **env})


def alert_names(r: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    return [(a["name"], a["level"]) for a in json.loads(r.stdout)["alerts"]]


def test_health_ok_when_recent_full_sync_and_nothing_wrong(
    clean_stack: LocalStack, run_cli: RunCli
) -> None:
    """A completed full sync an hour ago and no failures: healthy, exit 0."""
    seed_run(clean_stack, count=20)
    r = health(run_cli, "--json")
    assert 0 == r.returncode, r.stdout + r.stderr
    assert ("healthy", []) == (json.loads(r.stdout)["status"], alert_names(r))


@pytest.mark.parametrize(
    ("completed", "failed", "code", "level"),
    # The exact boundaries are table-tested in test_health.py; here the exit codes.
    [(18, 1, 1, "WARNING"), (8, 1, 2, "CRITICAL")],
)
def test_health_error_rate_alert(
    clean_stack: LocalStack,
    run_cli: RunCli,
    completed: int,
    failed: int,
    code: int,
    level: str | None,
) -> None:
    """Run failure rate over 24 h: 5% is fine, above 5% WARNING, above 10% CRITICAL."""
    seed_run(clean_stack, count=completed)
    seed_run(clean_stack, status="failed", started_ago=600, count=failed)
    r = health(run_cli, "--json")
    assert code == r.returncode, r.stdout + r.stderr
    assert ([("error_rate", level)] if level else []) == alert_names(r)


def test_health_ack_forgives_earlier_failures_only(
    clean_stack: LocalStack, run_cli: RunCli
) -> None:
    """Set-up failures, then `health --ack`: healthy again; a failure after the ack counts."""
    seed_run(clean_stack, status="failed", started_ago=7200, count=10)
    seed_run(clean_stack, started_ago=3600, count=34)
    r = health(run_cli, "--format", "nagios")
    assert 2 == r.returncode, r.stdout + r.stderr
    assert r.stdout.startswith(
        "LISTING-SYNC CRITICAL - unhealthy: 10 of 44 runs failed in the last 24 h "
        "(22.7% > 10%); once fixed, acknowledge them: listing-sync health --ack | "
    ), r.stdout

    a = run_cli("health", "--ack", env=FAST)
    assert 0 == a.returncode, a.stdout + a.stderr
    assert a.stdout.startswith("acknowledged ("), a.stdout
    assert [("ack", "acknowledged")] == clean_stack.sql(
        "select sync_type, status from sync_state where sync_type = 'ack'"
    )
    r = health(run_cli, "--json")
    assert 0 == r.returncode, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert (44, 0) == (report["runs_24h"], report["failed_runs_24h"])
    assert report["acknowledged_at"] is not None

    seed_run(clean_stack, status="failed", started_ago=-1, duration=0)
    r = health(run_cli, "--json")
    assert (45, 1) == (json.loads(r.stdout)["runs_24h"], json.loads(r.stdout)["failed_runs_24h"])


def test_health_last_run_longer_than_ten_minutes(clean_stack: LocalStack, run_cli: RunCli) -> None:
    """The most recent run took 11 minutes: WARNING, exit 1."""
    seed_run(clean_stack, started_ago=7200)
    seed_run(clean_stack, started_ago=3600, duration=660)
    r = health(run_cli, "--json")
    assert 1 == r.returncode, r.stdout + r.stderr
    assert [("last_run_duration", "WARNING")] == alert_names(r)
    assert 660.0 == json.loads(r.stdout)["alerts"][0]["value"]


def test_health_pending_failures_over_one_thousand(
    clean_stack: LocalStack, run_cli: RunCli
) -> None:
    """1001 listings whose last attempt failed and never synced since: WARNING, exit 1."""
    seed_run(clean_stack)
    clean_stack.psql(
        "insert into public.sync_state (sync_type, status, started_at, completed_at, "
        "failed_count, error_details) select 'selective', 'partial', now() - interval '1 hour', "
        "now() - interval '59 minutes', 1001, jsonb_agg(jsonb_build_object("
        "'row', g + 1, 'property_number', 'P-' || g, 'column', 'price', 'message', 'bad')) "
        "from generate_series(1, 1001) g;"
    )
    r = health(run_cli, "--json")
    assert 1 == r.returncode, r.stdout + r.stderr
    assert [("pending_failures", "WARNING")] == alert_names(r)
    assert 1001 == json.loads(r.stdout)["pending_failures"]


@pytest.mark.parametrize("dependency", ["sheets", "postgrest"])
def test_health_breaker_open_is_critical(
    clean_stack: LocalStack, run_cli: RunCli, dependency: str
) -> None:
    """A circuit breaker left open in SYNC_STATE_DIR: CRITICAL, exit 2, named in the alert."""
    seed_run(clean_stack)
    FileStore(clean_stack.state_dir).update(
        dependency, lambda s: (BreakerState("open", 5, time.time()), None)
    )
    r = health(run_cli, "--json", SYNC_CIRCUIT_BREAKER_TIMEOUT="600000")
    assert 2 == r.returncode, r.stdout + r.stderr
    assert [(f"breaker_{dependency}", "CRITICAL")] == alert_names(r)


def test_health_no_full_sync_within_max_age(clean_stack: LocalStack, run_cli: RunCli) -> None:
    """The last completed full sync is 27 h old: CRITICAL by default, OK with a 28 h limit."""
    seed_run(clean_stack, started_ago=27 * 3600)
    seed_run(clean_stack, sync_type="selective", started_ago=3600)
    r = health(run_cli, "--json")
    assert 2 == r.returncode, r.stdout + r.stderr
    assert [("last_full_sync_age", "CRITICAL")] == alert_names(r)
    r = health(run_cli, "--json", SYNC_HEALTH_MAX_AGE="28h")
    assert 0 == r.returncode, r.stdout + r.stderr


def test_health_partial_full_sync_counts_as_fresh(clean_stack: LocalStack, run_cli: RunCli) -> None:
    """A partial full sync an hour ago keeps the data fresh; a failed one does not."""
    seed_run(clean_stack, status="partial")
    r = health(run_cli, "--json")
    assert 0 == r.returncode, r.stdout + r.stderr
    clean_stack.truncate()
    seed_run(clean_stack, status="failed", started_ago=27 * 3600)
    seed_run(clean_stack, started_ago=28 * 3600, count=30)
    r = health(run_cli, "--json")
    assert 2 == r.returncode, r.stdout + r.stderr
    assert [("last_full_sync_age", "CRITICAL")] == alert_names(r)


def test_health_never_synced_is_critical(clean_stack: LocalStack, run_cli: RunCli) -> None:
    """An empty sync_state: no completed full sync ever, CRITICAL."""
    r = health(run_cli, "--format", "nagios")
    assert 2 == r.returncode, r.stdout + r.stderr
    assert r.stdout.startswith("LISTING-SYNC CRITICAL - unhealthy: no completed full sync ever | ")


def test_health_unknown_when_sync_state_cannot_be_read(
    clean_stack: LocalStack, run_cli: RunCli
) -> None:
    """PostgREST down: UNKNOWN, exit 3, in text and in the Nagios line."""
    down = {"POSTGREST_URL": closed_port_url(), "SYNC_RETRY_ATTEMPTS": "1"}
    r = health(run_cli, **down)
    assert 3 == r.returncode, r.stdout + r.stderr
    assert "unknown (UNKNOWN)" == lines(r.stdout)[0]
    r = health(run_cli, "--format", "nagios", **down)
    assert 3 == r.returncode, r.stdout + r.stderr
    [line] = lines(r.stdout)
    assert line.startswith(
        "LISTING-SYNC UNKNOWN - unknown: cannot read sync_state: postgrest unavailable after "
        "1 attempts: "
    ), line


def test_health_nagios_line_when_the_key_is_refused(
    clean_stack: LocalStack, run_cli: RunCli
) -> None:
    """A key signed with another secret (rotated JWT secret): one UNKNOWN line, exit 3."""
    wrong = mint_jwt("a-rotated-jwt-secret-" * 3, "service_role")
    r = health(run_cli, "--format", "nagios", SUPABASE_SERVICE_ROLE_KEY=wrong)
    assert 3 == r.returncode, r.stdout + r.stderr
    [line] = lines(r.stdout)
    assert line.startswith("LISTING-SYNC UNKNOWN - unknown: PostgREST GET /sync_state"), line
    assert "the key was refused" in line, line
    assert wrong not in r.stdout + r.stderr


def test_health_nagios_line_when_sync_state_is_missing(
    clean_stack: LocalStack, run_cli: RunCli
) -> None:
    """sync_state missing at read time: one UNKNOWN line naming the missing table, exit 3."""
    clean_stack.psql(
        "alter table public.sync_state rename to sync_state_away; notify pgrst, 'reload schema';"
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            r = health(run_cli, "--format", "nagios")
            if "table is missing" in r.stdout or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # PostgREST reloads its schema cache asynchronously
    finally:
        clean_stack.psql(
            "alter table public.sync_state_away rename to sync_state; "
            "notify pgrst, 'reload schema';"
        )
    assert 3 == r.returncode, r.stdout + r.stderr
    [line] = lines(r.stdout)
    assert line.startswith("LISTING-SYNC UNKNOWN - unknown: PostgREST GET /sync_state"), line
    assert "the table is missing" in line, line


def test_health_and_status_answer_a_hanging_postgrest_within_8_seconds(
    clean_stack: LocalStack, run_cli: RunCli
) -> None:
    """PostgREST accepts connections and never answers: health (nagios) and status end < 8 s."""
    with hanging_server() as url:
        hanging = {"POSTGREST_URL": url.rsplit("/ping", 1)[0], "SYNC_RETRY_ATTEMPTS": "3"}
        began = time.monotonic()
        r = health(run_cli, "--format", "nagios", **hanging)
        took = time.monotonic() - began
        assert 3 == r.returncode, r.stdout + r.stderr
        [line] = lines(r.stdout)
        assert line.startswith("LISTING-SYNC UNKNOWN - unknown: cannot read sync_state: "), line
        assert took < 8.0, took
        began = time.monotonic()
        s = run_cli("status", env={**FAST, **hanging})
        took = time.monotonic() - began
        assert 69 == s.returncode, s.stdout + s.stderr
        assert took < 8.0, took


def test_health_nagios_unknown_on_configuration_error(
    clean_stack: LocalStack, run_cli: RunCli
) -> None:
    """--format nagios with a broken configuration: still one UNKNOWN line on stdout, exit 3."""
    r = health(run_cli, "--format", "nagios", SYNC_HEALTH_MAX_AGE="soon")
    assert 3 == r.returncode, r.stdout + r.stderr
    assert [
        "LISTING-SYNC UNKNOWN - unknown: SYNC_HEALTH_MAX_AGE must be a duration such as 26h "
        "or 90m, got 'soon'"
    ] == lines(r.stdout)


def test_health_nagios_line_with_perfdata(clean_stack: LocalStack, run_cli: RunCli) -> None:
    """--format nagios: one line `LISTING-SYNC WARNING - ... | perfdata` in plugin syntax."""
    seed_run(clean_stack, count=18)
    seed_run(clean_stack, status="failed", started_ago=600)
    r = health(run_cli, "--format", "nagios")
    assert 1 == r.returncode, r.stdout + r.stderr
    [line] = lines(r.stdout)
    text, perf = line.split(" | ")
    assert (
        "LISTING-SYNC WARNING - degraded: 1 of 19 runs failed in the last 24 h (5.3% > 5%); "
        "once fixed, acknowledge them: listing-sync health --ack"
    ) == text
    items = perf.split(" ")
    assert "error_rate=0.0526;0.05;0.1;0;1" == items[0]
    assert ["runs_24h=19", "failed_runs_24h=1", "pending_failures=0;1000"] == items[1:4]
    assert "last_run_duration=30.0s;600" == items[4]
    assert ["breaker_postgrest_open=0;;0;0;1", "breaker_sheets_open=0;;0;0;1"] == items[-2:]
    perfdata = re.compile(r"^[a-z0-9_]+=-?[0-9.]+(s|%|c)?(;[-~@:0-9.]*){0,4}$")
    assert [] == [item for item in items if not perfdata.match(item)]


# --- metrics ---------------------------------------------------------------------------


def test_metrics_file_after_a_successful_sync(ops: LocalStack, run_cli: RunCli, tmp_path) -> None:
    """--metrics-file: Prometheus text with timestamps, duration, rows, breakers, exit code."""
    path = tmp_path / "textfile" / "listing_sync.prom"
    path.parent.mkdir()
    before = time.time()
    r = run_cli("sync", "all", "--metrics-file", path, env=FAST)
    assert 0 == r.returncode, r.stdout + r.stderr
    m = parse(path.read_text())
    finished = m.value("listing_sync_last_run_timestamp_seconds", sync_type="full")
    assert before <= finished <= time.time()
    assert finished == m.value("listing_sync_last_success_timestamp_seconds")
    assert 0 < m.value("listing_sync_last_run_duration_seconds", sync_type="full") < 60
    rows = {dict(k)["result"]: v for k, v in m.series("listing_sync_last_run_rows").items()}
    assert {"written": 3, "failed": 0, "unchanged": 0, "removed": 0, "not_found": 0} == rows
    assert 0 == m.value("listing_sync_last_exit_code")
    assert {"sheets": 0, "postgrest": 0} == {
        dict(k)["dependency"]: v for k, v in m.series("listing_sync_circuit_breaker_open").items()
    }
    assert ["listing_sync.prom"] == [p.name for p in path.parent.iterdir()]


def test_metrics_last_success_survives_a_failing_run(
    ops: LocalStack, run_cli: RunCli, tmp_path
) -> None:
    """SYNC_METRICS_FILE: a failing run updates the run metrics but not last_success."""
    path = tmp_path / "listing_sync.prom"
    env = {**FAST, "SYNC_METRICS_FILE": str(path), "SYNC_RETRY_ATTEMPTS": "1"}
    r = run_cli("sync", "all", env=env)
    assert 0 == r.returncode, r.stdout + r.stderr
    first = parse(path.read_text())
    success = first.value("listing_sync_last_success_timestamp_seconds")
    ops.sheets.fail_next(1, status=503, google_status="UNAVAILABLE")
    r = run_cli("sync", "all", env=env)
    assert 69 == r.returncode, r.stdout + r.stderr
    second = parse(path.read_text())
    assert success == second.value("listing_sync_last_success_timestamp_seconds")
    assert success < second.value("listing_sync_last_run_timestamp_seconds", sync_type="full")
    assert 69 == second.value("listing_sync_last_exit_code")


def test_partial_run_is_not_a_success_in_metrics(
    ops: LocalStack, run_cli: RunCli, tmp_path
) -> None:
    """A partial run (exit 1) never sets last_success; the failed rows are counted."""
    path = tmp_path / "listing_sync.prom"
    ops.sheets.set_sheet(ops.spreadsheet_id, TAB, listings(bad_price_at=1))
    r = run_cli("sync", "all", "--metrics-file", path, env=FAST)
    assert 1 == r.returncode, r.stdout + r.stderr
    m = parse(path.read_text())
    assert {} == m.series("listing_sync_last_success_timestamp_seconds")
    assert 1 == m.value("listing_sync_last_run_rows", result="failed")
    assert 1 == m.value("listing_sync_last_exit_code")


def test_dry_run_writes_no_metrics(ops: LocalStack, run_cli: RunCli, tmp_path) -> None:
    """--dry-run changes nothing, not even the metrics file."""
    path = tmp_path / "listing_sync.prom"
    r = run_cli("sync", "all", "--dry-run", "--json", "--metrics-file", path, env=FAST)
    assert 0 == r.returncode, r.stdout + r.stderr
    assert not path.exists()


# --- pings -----------------------------------------------------------------------------


def test_ping_start_then_success(ops: LocalStack, run_cli: RunCli) -> None:
    """A clean run pings URL/start, then URL."""
    with PingRecorder() as server:
        r = run_cli("sync", "all", env={**FAST, "SYNC_PING_URL": server.url})
    assert 0 == r.returncode, r.stdout + r.stderr
    assert ("", "") == (r.stdout, r.stderr)
    assert ["/ping/check-uuid/start", "/ping/check-uuid"] == server.paths()


def test_ping_partial_run_sends_its_exit_code(ops: LocalStack, run_cli: RunCli) -> None:
    """A partial run pings URL/start, then URL/1 with the problem lines as the body."""
    ops.sheets.set_sheet(ops.spreadsheet_id, TAB, listings(bad_price_at=2))
    with PingRecorder() as server:
        r = run_cli("sync", "all", env={**FAST, "SYNC_PING_URL": server.url})
    assert 1 == r.returncode, r.stdout + r.stderr
    assert ["/ping/check-uuid/start", "/ping/check-uuid/1"] == server.paths()
    [sync_id] = sync_ids(ops)
    assert server.requests[1][2].startswith(f"sync {sync_id} partial: 2 written, 1 failed")


def test_ping_failed_run_sends_its_exit_code(ops: LocalStack, run_cli: RunCli) -> None:
    """The sheet unreachable after retries: URL/start, then URL/69 with the error as body."""
    ops.sheets.fail_next(5, status=503, google_status="UNAVAILABLE")
    with PingRecorder() as server:
        r = run_cli(
            "sync", "all", env={**FAST, "SYNC_PING_URL": server.url, "SYNC_RETRY_ATTEMPTS": "2"}
        )
    assert 69 == r.returncode, r.stdout + r.stderr
    assert ["/ping/check-uuid/start", "/ping/check-uuid/69"] == server.paths()
    assert server.requests[1][2].startswith("sheets unavailable after 2 attempts: ")


def test_ping_server_down_changes_nothing(ops: LocalStack, run_cli: RunCli) -> None:
    """Pings to a closed port: the sync still succeeds (exit 0), with a warning per ping."""
    began = time.monotonic()
    r = run_cli("sync", "all", env={**FAST, "SYNC_PING_URL": closed_port_url()})
    elapsed = time.monotonic() - began
    assert 0 == r.returncode, r.stdout + r.stderr
    assert [("3",)] == ops.sql("select count(*) from property_listings")
    err = lines(r.stderr)
    assert 2 == len(err), r.stderr
    assert err[0].startswith("listing-sync: warning: ping start failed after ")
    assert err[1].startswith("listing-sync: warning: ping success failed after ")
    assert elapsed < 15


def test_ping_server_that_hangs_delays_the_run_by_at_most_the_timeouts(
    ops: LocalStack, run_cli: RunCli
) -> None:
    """A ping server that never answers: exit 0, and the run waits no more than the timeouts."""
    with hanging_server() as url:
        began = time.monotonic()
        r = run_cli("sync", "all", env={**FAST, "SYNC_PING_URL": url})
        elapsed = time.monotonic() - began
    assert 0 == r.returncode, r.stdout + r.stderr
    assert [("3",)] == ops.sql("select count(*) from property_listings")
    # Two pings (start, outcome) of at most PING_TIMEOUT each, plus the run itself.
    assert elapsed < 2 * PING_TIMEOUT + 5, elapsed


def test_no_pings_for_a_dry_run(ops: LocalStack, run_cli: RunCli) -> None:
    """--dry-run is not a run the monitor should hear about."""
    with PingRecorder() as server:
        r = run_cli("sync", "all", "--dry-run", "--json", env={**FAST, "SYNC_PING_URL": server.url})
    assert 0 == r.returncode, r.stdout + r.stderr
    assert [] == server.paths()


def test_no_pings_when_the_lock_refuses_the_run(ops: LocalStack, run_cli: RunCli) -> None:
    """Another sync holds the lock: exit 75 and no ping (the running sync reports itself)."""
    lock = RunLock(ops.state_dir / "sync.lock")
    lock.acquire()
    try:
        with PingRecorder() as server:
            r = run_cli("sync", "all", env={**FAST, "SYNC_PING_URL": server.url})
    finally:
        lock.release()
    assert 75 == r.returncode, r.stdout + r.stderr
    assert [] == server.paths()


# --- key handling ----------------------------------------------------------------------


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_key_from_file(ops: LocalStack, run_cli: RunCli, tmp_path) -> None:
    """SUPABASE_SERVICE_ROLE_KEY_FILE (mode 600, trailing newline) works."""
    key_file = private_file(tmp_path / "key", ops.service_role_key + "\n")
    env = {
        **FAST,
        "SUPABASE_SERVICE_ROLE_KEY": None,
        "SUPABASE_SERVICE_ROLE_KEY_FILE": str(key_file),
    }
    r = run_cli("sync", "all", env=env)
    assert 0 == r.returncode, r.stdout + r.stderr


def test_key_and_google_key_from_systemd_credentials(
    ops: LocalStack, run_cli: RunCli, tmp_path
) -> None:
    """$CREDENTIALS_DIRECTORY (LoadCredential=) holds both keys; its ACL-style 0440 is fine."""
    creds = tmp_path / "credentials"
    creds.mkdir()
    private_file(creds / "supabase-service-role-key", ops.service_role_key, 0o440)
    google = private_file(creds / "google-key.json", ops.key_path.read_text(), 0o440)
    env = {
        **FAST,
        "SUPABASE_SERVICE_ROLE_KEY": None,
        "CREDENTIALS_DIRECTORY": str(creds),
        "GOOGLE_APPLICATION_CREDENTIALS": str(google),
    }
    r = run_cli("sync", "all", env=env)
    assert 0 == r.returncode, r.stdout + r.stderr


def test_key_file_readable_by_others_is_refused(ops: LocalStack, run_cli: RunCli, tmp_path) -> None:
    """A key file with mode 640: exit 78 naming the file and `chmod 600`, nothing written."""
    key_file = private_file(tmp_path / "key", ops.service_role_key, 0o640)
    env = {
        **FAST,
        "SUPABASE_SERVICE_ROLE_KEY": None,
        "SUPABASE_SERVICE_ROLE_KEY_FILE": str(key_file),
    }
    r = run_cli("sync", "all", env=env)
    assert 78 == r.returncode, r.stdout + r.stderr
    assert [
        f"listing-sync: error: SUPABASE_SERVICE_ROLE_KEY_FILE: {key_file} is readable by group "
        f"or others (mode 640); run: chmod 600 {key_file}"
    ] == lines(r.stderr)
    assert [] == ops.sql("select id from sync_state")


def test_google_key_file_readable_by_others_is_refused(
    ops: LocalStack, run_cli: RunCli, tmp_path
) -> None:
    """A Google key file with mode 644: exit 78 naming the file and `chmod 600`."""
    google = private_file(tmp_path / "google.json", ops.key_path.read_text(), 0o644)
    r = run_cli("sync", "all", env={**FAST, "GOOGLE_APPLICATION_CREDENTIALS": str(google)})
    assert 78 == r.returncode, r.stdout + r.stderr
    assert [
        f"listing-sync: error: GOOGLE_APPLICATION_CREDENTIALS: {google} is readable by group "
        f"or others (mode 644); run: chmod 600 {google}"
    ] == lines(r.stderr)
    assert [] == ops.sql("select id from sync_state")


def test_key_file_with_a_second_line_is_refused_without_echoing_it(
    ops: LocalStack, run_cli: RunCli, tmp_path
) -> None:
    """A key file with a comment line: exit 78 before any request, the key never printed."""
    key_file = private_file(tmp_path / "key", ops.service_role_key + "\n# prod key\n")
    env = {
        **FAST,
        "SUPABASE_SERVICE_ROLE_KEY": None,
        "SUPABASE_SERVICE_ROLE_KEY_FILE": str(key_file),
    }
    r = run_cli("sync", "all", "--json", "--verbose", env=env)
    assert 78 == r.returncode, r.stdout + r.stderr
    assert [
        f"listing-sync: error: SUPABASE_SERVICE_ROLE_KEY_FILE: {key_file} must hold only the "
        "key: it contains a space, a line break or a non-ASCII character (a second line, a "
        "comment, a smart quote?)"
    ] == lines(r.stderr)
    signature = ops.service_role_key.rsplit(".", 1)[1]
    assert signature not in r.stdout + r.stderr


def test_google_key_file_of_the_wrong_shape_is_a_configuration_error(
    ops: LocalStack, run_cli: RunCli, tmp_path
) -> None:
    """A Google key file holding a JSON list: exit 78 naming the file, not a crash (70)."""
    google = private_file(tmp_path / "google.json", f"[{ops.key_path.read_text()}]")
    r = run_cli("sync", "all", env={**FAST, "GOOGLE_APPLICATION_CREDENTIALS": str(google)})
    assert 78 == r.returncode, r.stdout + r.stderr
    assert [
        f"listing-sync: error: GOOGLE_APPLICATION_CREDENTIALS: {google} is not a Google "
        "credentials file (type None; expected one of service_account, authorized_user, "
        "external_account, external_account_authorized_user, impersonated_service_account)"
    ] == lines(r.stderr)


@pytest.mark.parametrize(
    ("variable", "url", "host"),
    [
        ("POSTGREST_URL", "http://db.internal.example:3000", "db.internal.example"),
        ("SUPABASE_URL", "http://project.example.co", "project.example.co"),
        ("SYNC_SHEETS_API_ENDPOINT", "http://10.0.0.7", "10.0.0.7"),
    ],
)
def test_plain_http_to_another_host_is_refused(
    clean_stack: LocalStack, run_cli: RunCli, variable: str, url: str, host: str
) -> None:
    """http:// to a host other than loopback: exit 78 before any request is made."""
    env: dict[str, str | None] = {**FAST, variable: url}
    if variable == "SUPABASE_URL":
        env["POSTGREST_URL"] = None
    r = run_cli("sync", "all", env=env)
    assert 78 == r.returncode, r.stdout + r.stderr
    assert [
        f"listing-sync: error: {variable} uses plain http:// to {host}, which would send the key "
        "in clear; use https:// or pass --allow-insecure-http"
    ] == lines(r.stderr)


# --- least privilege -------------------------------------------------------------------


@contextmanager
def other_table(stack: LocalStack) -> Iterator[None]:
    """A table listing-sync has no business with, granted to anon and service_role only."""
    stack.psql(
        "create table public.agents (id int primary key, name text);"
        "insert into public.agents values (1, '高橋');"
        "grant select on public.agents to anon, service_role;"
        "notify pgrst, 'reload schema';"
    )
    try:
        with rest_client(stack) as admin:
            deadline = time.monotonic() + 10
            while admin.get("/agents").status_code != 200:
                assert time.monotonic() < deadline, "PostgREST never saw public.agents"
                time.sleep(0.05)
        yield
    finally:
        stack.psql("drop table if exists public.agents; notify pgrst, 'reload schema';")


def test_sql_role_file_is_idempotent(clean_stack: LocalStack) -> None:
    """sql/004 applies again and again without error (it runs on every deploy)."""
    text = (REPO / "sql" / "004_listing_sync_role.sql").read_text()
    clean_stack.psql(text)
    clean_stack.psql(text)
    grants = clean_stack.sql(
        "select table_name, string_agg(privilege_type, ',' order by privilege_type) "
        "from information_schema.role_table_grants where grantee = 'listing_sync' "
        "group by table_name order by table_name"
    )
    assert [
        ("property_listings", "INSERT,SELECT,UPDATE"),
        ("sync_state", "INSERT,SELECT,UPDATE"),
    ] == grants
    policies = clean_stack.sql(
        "select tablename, string_agg(cmd, ',' order by cmd) from pg_policies "
        "where 'listing_sync' = any(roles) group by tablename order by tablename"
    )
    assert [
        ("property_listings", "INSERT,SELECT,UPDATE"),
        ("sync_state", "INSERT,SELECT,UPDATE"),
    ] == policies


def test_least_privilege_role_runs_the_whole_sync(ops: LocalStack, run_cli: RunCli) -> None:
    """A listing_sync key: full sync, removal, status and health all work end to end."""
    env = {**FAST, "SUPABASE_SERVICE_ROLE_KEY": ops.mint_key("listing_sync")}
    ops.sheets.set_sheet(ops.spreadsheet_id, TAB, listings(6))
    r = run_cli("sync", "all", env=env)
    assert 0 == r.returncode, r.stdout + r.stderr
    ops.sheets.set_sheet(ops.spreadsheet_id, TAB, listings(5))  # L-006 left the sheet
    r = run_cli("sync", "all", "--json", env=env)
    assert 0 == r.returncode, r.stdout + r.stderr
    assert (0, 5, 1) == tuple(json.loads(r.stdout)[k] for k in ("success", "skipped", "removed"))
    assert [("L-006",)] == ops.sql(
        "select property_number from property_listings where removed_at is not null"
    )
    assert [("completed", "6", "6"), ("completed", "5", "0")] == ops.sql(
        "select status, total_items::text, success_count::text from sync_state order by started_at"
    )
    r = run_cli("sync", "numbers", "L-001", env=env)
    assert 0 == r.returncode, r.stdout + r.stderr
    for command in (("status",), ("health",)):
        r = run_cli(*command, "--json", env=env)
        assert 0 == r.returncode, (command, r.stdout + r.stderr)


def test_least_privilege_role_cannot_delete_or_read_other_tables(ops: LocalStack) -> None:
    """With the listing_sync key PostgREST refuses DELETE on both tables and any other table."""
    seed_run(ops)
    with rest_client(ops) as admin:
        admin.post("/property_listings", json=[{"property_number": "L-001"}]).raise_for_status()
    with other_table(ops), rest_client(ops, "listing_sync") as limited:
        deletes = [
            limited.delete("/property_listings", params={"property_number": "eq.L-001"}),
            limited.delete("/sync_state", params={"status": "eq.completed"}),
        ]
        assert [(403, "42501"), (403, "42501")] == [
            (resp.status_code, resp.json()["code"]) for resp in deletes
        ]
        other = limited.get("/agents")
        assert (403, "42501") == (other.status_code, other.json()["code"])
        assert 200 == limited.get("/property_listings").status_code
    assert [("1",)] == ops.sql("select count(*) from property_listings")
    assert [("1",)] == ops.sql("select count(*) from sync_state")


# --- no secret anywhere ----------------------------------------------------------------


def _pem_lines(google_key_file: Path) -> list[str]:
    pem = json.loads(google_key_file.read_text())["private_key"]
    return [line for line in pem.splitlines() if len(line) >= 40 and "PRIVATE KEY" not in line]


def test_planted_secrets_never_leak(ops: LocalStack, run_cli: RunCli, tmp_path: Path) -> None:
    """401, 500, timeouts, crashes, debug and JSON logging: the keys appear nowhere."""
    # A recognisable, valid service-role key (the exp claim makes it unique to this test)
    # and one signed with the wrong secret (PostgREST answers 401).
    key = ops.mint_key("service_role", expires_in=86_400 + 4242)
    wrong = mint_jwt("not-the-secret-" * 3, "service_role", expires_in=86_400 + 4343)
    google = private_file(tmp_path / "google-key.json", ops.key_path.read_text())
    metrics = tmp_path / "listing_sync.prom"
    base: dict[str, str | None] = {
        **FAST,
        "SUPABASE_SERVICE_ROLE_KEY": key,
        "GOOGLE_APPLICATION_CREDENTIALS": str(google),
        "SYNC_METRICS_FILE": str(metrics),
        "SYNC_RETRY_ATTEMPTS": "2",
    }
    outputs: list[str] = []
    codes: list[int] = []

    def run(log_format: str, *args: object, **env: str | None) -> None:
        """Run with debug logging in ``log_format``; keep everything it printed."""
        r = run_cli(*args, "--verbose", "--log-format", log_format, env={**base, **env})
        outputs.extend([r.stdout, r.stderr])
        codes.append(r.returncode)

    def trigger(name: str, body: str, table: str = "property_listings") -> None:
        ops.psql(
            f"create function public.{name}() returns trigger language plpgsql as $$ begin "
            f"{body} end $$; create trigger {name} before insert or update on "
            f"public.{table} for each row execute function public.{name}();"
        )

    def drop(name: str, table: str = "property_listings") -> None:
        ops.psql(f"drop trigger {name} on public.{table}; drop function public.{name}();")

    with PingRecorder() as pings:
        base["SYNC_PING_URL"] = pings.url
        run("text", "sync", "all")  # a clean run, for the record
        run("json", "sync", "all", "--json", SUPABASE_SERVICE_ROLE_KEY=wrong)  # 401
        run("text", "health", "--format", "nagios", SUPABASE_SERVICE_ROLE_KEY=wrong)
        trigger("boom", "raise exception 'trigger says no' using errcode = 'XX000';")
        try:
            run("json", "sync", "all", "--force")  # 500 on every write
        finally:
            drop("boom")
        trigger("slow", "perform pg_sleep(0.5); return new;")
        try:
            run("text", "sync", "all", "--force", SYNC_HTTP_TIMEOUT="0.2")  # read timeouts
        finally:
            drop("slow")
        # Crashes (unexpected errors): a trigger that silently swallows the run's
        # sync_state insert leaves PostgREST answering []; with --verbose the
        # tracebacks are logged.
        trigger("swallow", "return null;", table="sync_state")
        try:
            run("text", "sync", "all")
            run("json", "sync", "numbers", "L-001")
        finally:
            drop("swallow", table="sync_state")
        # A key file with a second line used to end up quoted in an httpx error.
        two_lines = private_file(tmp_path / "key-two-lines", f"{key}\nsecond line\n")
        run(
            "text",
            "sync",
            "all",
            SUPABASE_SERVICE_ROLE_KEY=None,
            SUPABASE_SERVICE_ROLE_KEY_FILE=str(two_lines),
        )
        ping_bodies = [body for _, _, body in pings.requests]

    everything = "\n".join(outputs)
    assert [0, 78, 3, 1, 69, 70, 70, 78] == codes, everything
    # The runs failed the ways intended, so the hunt below means something.
    assert "401 PGRST301" in everything
    assert "trigger says no" in everything
    assert "ReadTimeout" in everything
    # A swallowed sync_state insert is no longer a crash (issue 12: the client picks the
    # run's id and inserts with return=minimal) but the run's one-line error, exit 70.
    assert 2 == everything.count("sync_state did not keep run"), everything
    state_files = [p.read_text(errors="replace") for p in ops.state_dir.rglob("*") if p.is_file()]
    table = [row[0] or "" for row in ops.sql("select t::text from public.sync_state t")]
    assert 3 == len(table)
    haystack = "\n".join([everything, *state_files, metrics.read_text(), *ping_bodies, *table])
    needles = {
        "service-role key": key,
        "its signature": key.rsplit(".", 1)[1],
        "wrong key": wrong,
        "wrong key's signature": wrong.rsplit(".", 1)[1],
        "JWT secret": ops.jwt_secret,
        "private key id": json.loads(google.read_text())["private_key_id"],
    }
    needles.update({f"private key line {i}": line for i, line in enumerate(_pem_lines(google))})
    assert [] == [name for name, needle in needles.items() if needle in haystack]


def test_insecure_http_flag_is_accepted_by_every_command(
    clean_stack: LocalStack, run_cli: RunCli
) -> None:
    """--allow-insecure-http is an option of every command (loopback, so no traffic leaves)."""
    seed_run(clean_stack)
    for command in (("status",), ("health",), ("breaker",)):
        r = run_cli(*command, "--allow-insecure-http", "--quiet", env=FAST)
        assert 0 == r.returncode, (command, r.stdout + r.stderr)


# --- settings and messages (issue 11) -------------------------------------------------

ONLY_STATE_DIR = {
    "POSTGREST_URL": None,
    "SUPABASE_SERVICE_ROLE_KEY": None,
    "GOOGLE_APPLICATION_CREDENTIALS": None,
    "SYNC_SPREADSHEET_ID": None,
    "SYNC_SHEETS_API_ENDPOINT": None,
}


def test_unknown_config_file_key_is_refused(ops: LocalStack, run_cli: RunCli, tmp_path) -> None:
    """--config with SYNC_BATCH_SIZ = 500: exit 78 naming it and SYNC_BATCH_SIZE."""
    cfg = tmp_path / "listing-sync.toml"
    cfg.write_text("SYNC_BATCH_SIZ = 500\n")
    r = run_cli("sync", "all", "--config", cfg, env=FAST)
    assert 78 == r.returncode, r.stdout + r.stderr
    assert [
        f"listing-sync: error: LISTING_SYNC_CONFIG: {cfg}: unknown setting SYNC_BATCH_SIZ "
        "(did you mean SYNC_BATCH_SIZE?); the names are those of the environment variables "
        "(README)"
    ] == lines(r.stderr)
    assert [] == ops.sql("select id from sync_state")


def test_all_missing_settings_in_one_message(clean_stack: LocalStack, run_cli: RunCli) -> None:
    """A bare environment: one line naming all four missing settings of a sync, exit 78."""
    r = run_cli("sync", "all", env=ONLY_STATE_DIR)
    assert 78 == r.returncode, r.stdout + r.stderr
    [line] = lines(r.stderr)
    assert line.startswith("listing-sync: error: 4 settings are missing: POSTGREST_URL"), line
    for name in (
        "SUPABASE_SERVICE_ROLE_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "SYNC_SPREADSHEET_ID",
    ):
        assert f"{name} is not set" in line, line


def test_breaker_needs_only_the_state_directory(clean_stack: LocalStack, run_cli: RunCli) -> None:
    """breaker and breaker reset with SYNC_STATE_DIR alone: exit 0, the local files read."""
    r = run_cli("breaker", "--json", env=ONLY_STATE_DIR)
    assert 0 == r.returncode, r.stdout + r.stderr
    assert ["postgrest", "sheets"] == sorted(b["name"] for b in json.loads(r.stdout)["breakers"])
    r = run_cli("breaker", "reset", "postgrest", env=ONLY_STATE_DIR)
    assert 0 == r.returncode, r.stdout + r.stderr
    assert "closed: postgrest" == r.stdout.strip()


def test_connection_refused_names_the_address(clean_stack: LocalStack, run_cli: RunCli) -> None:
    """Nothing listens at POSTGREST_URL: the error names host:port, never the key."""
    url = closed_port_url().rsplit("/ping", 1)[0]
    port = url.rsplit(":", 1)[1]
    r = run_cli("status", env={**FAST, "POSTGREST_URL": url, "SYNC_RETRY_ATTEMPTS": "1"})
    assert 69 == r.returncode, r.stdout + r.stderr
    [line] = lines(r.stderr)
    assert f"PostgREST at 127.0.0.1:{port} GET /sync_state: ConnectError" in line, line
    assert clean_stack.service_role_key not in r.stderr


def test_expired_key_says_when_it_expired(clean_stack: LocalStack, run_cli: RunCli) -> None:
    """A key past its exp: exit 78, 'the key expired at', not the rotated-secret hint."""
    expired = clean_stack.mint_key("service_role", expires_in=-60)
    r = run_cli("status", env={**FAST, "SUPABASE_SERVICE_ROLE_KEY": expired})
    assert 78 == r.returncode, r.stdout + r.stderr
    [line] = lines(r.stderr)
    assert "401 PGRST301" in line, line
    assert "the key expired at " in line, line
    assert "rotated" not in line, line
    assert expired not in r.stderr
