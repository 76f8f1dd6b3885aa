"""The pure parts of listing_sync.output: modes, redaction, log formats, cron lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from listing_sync import output
from listing_sync.logs import JsonFormatter, RedactFilter, TextFormatter, setup_logging
from listing_sync.models import RowProblem
from listing_sync.output import OutputMode
from listing_sync.pipeline.run import SyncReport

SECRET = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.U2lnbmF0dXJlT2ZUaGVLZXk"


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Undo setup_logging: its handlers (listing_sync and root)."""
    yield
    logger = logging.getLogger("listing_sync")
    logger.handlers.clear()
    logger.propagate = True
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "listing_sync", False)]:
        root.removeHandler(handler)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"json": False, "quiet": False, "verbose": False}, OutputMode()),
        ({"json": True, "quiet": False, "verbose": False}, OutputMode(json=True)),
        ({"json": False, "quiet": True, "verbose": True}, OutputMode(quiet=True)),
        ({"json": False, "quiet": False, "verbose": True}, OutputMode(verbose=True)),
    ],
)
def test_mode_off_a_terminal_is_never_interactive(flags: dict, expected: OutputMode) -> None:
    """Under pytest stdout is not a terminal: no progress, no tables; --quiet beats --verbose."""
    assert expected == OutputMode.detect(**flags)


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc else None
    return logging.LogRecord("listing_sync", logging.WARNING, __file__, 1, message, args, exc_info)


def test_redact_filter_replaces_secrets_in_message_and_args() -> None:
    """The key in the message or in its %-args is replaced before any formatter sees it."""
    rec = record("calling with %s and %s", f"Bearer {SECRET}", 3)
    assert RedactFilter([SECRET]).filter(rec)
    assert "calling with Bearer [REDACTED] and 3" == rec.getMessage()


def test_redact_filter_redacts_the_traceback_too() -> None:
    """An exception quoting the key is redacted in the traceback text as well."""
    try:
        raise ValueError(f"Illegal header value b'Bearer {SECRET}'")
    except ValueError as exc:
        rec = record("unexpected error", exc=exc)
    RedactFilter([SECRET]).filter(rec)
    text = TextFormatter().format(rec)
    assert SECRET not in text
    assert text.startswith("listing-sync: warning: unexpected error\nTraceback (most recent")
    assert text.endswith("ValueError: Illegal header value b'Bearer [REDACTED]'")


def test_redact_filter_ignores_short_or_empty_secrets() -> None:
    """Short values would redact ordinary words: only secrets of 8+ characters count."""
    assert [SECRET] == RedactFilter(["", "abc", SECRET]).secrets


def test_json_formatter_one_parseable_line_with_traceback() -> None:
    """--log-format json: one JSON object per record, the traceback as a field."""
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        rec = record("unexpected %s", "error", exc=exc)
    line = JsonFormatter().format(rec)
    assert 1 == len(line.splitlines())
    entry = json.loads(line)
    assert ("warning", "listing_sync", "unexpected error") == (
        entry["level"],
        entry["logger"],
        entry["message"],
    )
    assert entry["traceback"].endswith("RuntimeError: boom")


def test_error_line_text_is_one_line_and_redacted(
    logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The final error: `listing-sync: error: ...` on one line, the key replaced."""
    logs = setup_logging(OutputMode(), log_format="text", secrets=[SECRET])
    logs.error_line(f"PostgREST said\nno to {SECRET}")
    captured = capsys.readouterr()
    assert ("", "listing-sync: error: PostgREST said no to [REDACTED]\n") == (
        captured.out,
        captured.err,
    )


def test_error_and_problem_lines_become_json_records(
    logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --log-format json every stderr line is a JSON record (warnings, then the error)."""
    logs = setup_logging(OutputMode(), log_format="json", secrets=[SECRET])
    logs.problem_lines(["sync x partial: 1 written, 1 failed", "row 3 (A-2): bad"])
    logs.error_line(f"gave up on {SECRET}")
    captured = capsys.readouterr()
    assert "" == captured.out
    entries = [json.loads(line) for line in captured.err.splitlines()]
    assert [
        ("warning", "sync x partial: 1 written, 1 failed"),
        ("warning", "row 3 (A-2): bad"),
        ("error", "gave up on [REDACTED]"),
    ] == [(e["level"], e["message"]) for e in entries]


def test_quiet_keeps_errors_and_drops_warnings(
    logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """--quiet: the logger passes errors only."""
    setup_logging(OutputMode(quiet=True), log_format="text")
    log = logging.getLogger("listing_sync")
    log.warning("retrying")
    log.debug("details")
    log.error("gave up")
    assert "listing-sync: error: gave up\n" == capsys.readouterr().err


def test_verbose_passes_debug(logging_restored: None, capsys: pytest.CaptureFixture[str]) -> None:
    """--verbose: debug lines appear."""
    setup_logging(OutputMode(verbose=True), log_format="text")
    logging.getLogger("listing_sync").debug("settings: ...")
    assert "listing-sync: debug: settings: ...\n" == capsys.readouterr().err


def test_foreign_library_warnings_get_the_same_format_and_redaction(
    logging_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warning from googleapiclient or httpx is a JSON record too, with the key redacted."""
    setup_logging(OutputMode(), log_format="json", secrets=[SECRET])
    logging.getLogger("googleapiclient.discovery").warning("odd reply for %s", SECRET)
    entry = json.loads(capsys.readouterr().err)
    assert ("warning", "googleapiclient.discovery", "odd reply for [REDACTED]") == (
        entry["level"],
        entry["logger"],
        entry["message"],
    )


def report(**values: object) -> SyncReport:
    base: dict[str, object] = {"sync_type": "full", "dry_run": False, "sync_id": "abc"}
    base.update(values)
    return SyncReport(**base)  # type: ignore[arg-type]


def test_cron_lines_for_a_partial_run() -> None:
    """A summary line, at most five row lines, then where to see the rest."""
    problems = [
        RowProblem(row=i + 2, property_number=f"P-{i}", column="price", message="bad", value="x")
        for i in range(7)
    ]
    lines = output.sync_problem_lines(
        report(status="partial", success=10, failed=7, skipped=3, problems=problems)
    )
    assert [
        "sync abc partial: 10 written, 7 failed, 3 unchanged, 0 removed, 0 not found",
        "row 2 (P-0) column price: bad",
        "row 3 (P-1) column price: bad",
        "row 4 (P-2) column price: bad",
        "row 5 (P-3) column price: bad",
        "row 6 (P-4) column price: bad",
        "... and 2 more: listing-sync status abc",
    ] == lines


def test_cron_lines_name_missing_numbers_and_unrecorded_state() -> None:
    """Numbers not in the sheet and an outcome not recorded in sync_state are mentioned."""
    lines = output.sync_problem_lines(
        report(status="partial", not_found=["X-1", "X-2"], state_recorded=False)
    )
    assert [
        "sync abc partial: 0 written, 0 failed, 0 unchanged, 0 removed, 2 not found",
        "not in the sheet: X-1, X-2",
        "warning: the outcome could not be recorded in sync_state",
    ] == lines


def test_warning_lines_are_capped_with_a_count() -> None:
    """A sheet full of #N/A gives a few warning lines and a count, not one line per cell."""
    from listing_sync.output import warning_lines

    warnings = [f"row {n}: column price holds #N/A; read as empty" for n in range(2, 30)]
    expected = [
        "warning: row 2: column price holds #N/A; read as empty",
        "warning: row 3: column price holds #N/A; read as empty",
        "... and 26 more warnings (use --json for all)",
    ]
    assert expected == warning_lines(warnings, 2)
    assert [] == warning_lines([], 2)
