"""Everything the terminal sees: rich tables, progress and JSON (log lines: ``logs``).

Nothing outside the CLI, this module and ``logs`` prints. JSON keys are stable:
scripts read them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from .health import NAGIOS, HealthReport
from .pipeline.run import SyncReport
from .state import duration_of, short_id
from .timeutil import parse_ts

if TYPE_CHECKING:
    # rich is imported when something is drawn: a cron run or --json output needs none
    # of it (50 ms of every run's start).
    from rich.console import Console
    from rich.table import Table

MAX_PROBLEM_LINES = 20
MAX_WARNING_LINES = 10


@dataclass(frozen=True)
class OutputMode:
    """How a command talks: chosen once from the flags and the terminal."""

    json: bool = False
    quiet: bool = False
    verbose: bool = False
    interactive: bool = False  # stdout is a terminal: progress and tables

    @classmethod
    def detect(cls, *, json: bool, quiet: bool, verbose: bool) -> OutputMode:
        return cls(
            json=json,
            quiet=quiet,
            verbose=verbose and not quiet,
            interactive=sys.stdout.isatty() and not json and not quiet,
        )


def stdout_console() -> Console:
    # Piped output (less, a log file, a demo) would otherwise be cut to 80 columns.
    # (COLUMNS, when set, is the width asked for, as on a terminal.)
    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
    return Console(highlight=False, soft_wrap=True, width=width)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _table(**options: Any) -> Table:
    from rich.table import Table

    return Table(**options)


def print_json(data: Any, stream: TextIO | None = None) -> None:
    from .sanitize import clean

    stream = stream or sys.stdout
    stream.write(json.dumps(clean(data), ensure_ascii=False, indent=2, default=str) + "\n")
    stream.flush()


# --- progress -----------------------------------------------------------------


class RichProgress:
    """Draw the pipeline's progress on a terminal (rows read, rows written)."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.elapsed:>5.1f}s"),
            console=console,
            transient=True,
        )
        self._task: Any = None
        self._last = 0.0

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def phase(self, name: str, total: int | None = None) -> None:
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(name, total=total)

    def advance(self, amount: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)
            now = time.monotonic()
            if now - self._last > 0.1:
                self._last = now
                self._progress.refresh()


# --- sync ---------------------------------------------------------------------


def sync_to_dict(report: SyncReport) -> dict[str, Any]:
    """Return the stable JSON form of a sync report."""
    data: dict[str, Any] = {
        "sync_id": report.sync_id,
        "sync_type": report.sync_type,
        "status": report.status,
        "dry_run": report.dry_run,
        "exit_code": report.exit_code,
        "started_at": report.started_at.isoformat(),
        "completed_at": report.completed_at.isoformat() if report.completed_at else None,
        "duration_seconds": report.duration,
        "total": report.total,
        "written": report.success,
        "unchanged": report.skipped,
        "failed": report.failed,
        # The names of the first releases, kept for scripts that read them.
        "success": report.success,
        "skipped": report.skipped,
        "removed": report.removed,
        "not_found": report.not_found,
        "problems": [p.to_dict() for p in report.problems],
        "warnings": report.warnings,
        "error": report.error,
        "state_recorded": report.state_recorded,
    }
    plan = report.plan
    if report.dry_run and plan is not None:
        data["plan"] = {
            "new": [p.number for p in plan.new],
            "changed": [
                {"property_number": p.number, "fields": plan.changed_fields.get(p.number, [])}
                for p in plan.changed
            ],
            "unchanged": plan.unchanged,
            "removed": plan.removed,
            "invalid": [p.to_dict() for p in plan.problems],
        }
    return data


def _problem_table(problems: Sequence[Any], title: str) -> Table:
    table = _table(title=title, title_justify="left")
    rows = [p if isinstance(p, dict) else p.to_dict() for p in problems[:MAX_PROBLEM_LINES]]
    tabs = any(row.get("tab") for row in rows)
    for name in ("tab", "row", "property number", "column", "problem")[0 if tabs else 1 :]:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(
            *([str(row.get("tab") or "")] if tabs else []),
            str(row.get("row") or ""),
            str(row.get("property_number") or ""),
            str(row.get("column") or ""),
            str(row.get("message") or ""),
        )
    if len(problems) > MAX_PROBLEM_LINES:
        table.caption = f"... and {len(problems) - MAX_PROBLEM_LINES} more (use --json for all)"
    return table


def render_sync(report: SyncReport, console: Console) -> None:
    """Draw the end-of-run summary (terminal)."""
    if report.dry_run and report.plan is not None:
        render_plan(report, console)
        return
    from rich import box

    table = _table(
        title=f"Sync {report.sync_id} ({report.sync_type})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("status", no_wrap=True)
    for name in ("total", "written", "unchanged", "failed", "removed", "not found", "time"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_row(
        _status_text(report.status),
        str(report.total),
        str(report.success),
        str(report.skipped),
        str(report.failed),
        str(report.removed),
        str(len(report.not_found)),
        seconds_text(report.duration),
    )
    console.print(table)
    if report.problems:
        console.print(_problem_table(report.problems, "Rows not written"))
    if report.not_found:
        console.print("Not in the sheet: " + ", ".join(report.not_found))
    for line in warning_lines(report.warnings, MAX_WARNING_LINES):
        console.print(line, markup=False)


def warning_lines(warnings: Sequence[str], limit: int) -> list[str]:
    """Return at most ``limit`` warning lines, and a count of the rest.

    A sheet full of #N/A would otherwise print one line per cell.
    """
    lines = [f"warning: {w}" for w in warnings[:limit]]
    if len(warnings) > limit:
        lines.append(f"... and {len(warnings) - limit} more warnings (use --json for all)")
    return lines


def render_plan(report: SyncReport, console: Console) -> None:
    """Draw what a dry run would do."""
    plan = report.plan
    assert plan is not None
    table = _table(title=f"Dry run ({report.sync_type}): nothing was written", title_justify="left")
    for name in ("new", "changed", "unchanged", "to be removed", "invalid", "not found"):
        table.add_column(name, justify="right")
    table.add_row(
        str(len(plan.new)),
        str(len(plan.changed)),
        str(plan.unchanged),
        str(len(plan.removed)),
        str(len(plan.problems)),
        str(len(plan.not_found)),
    )
    console.print(table)
    if plan.new:
        console.print("New: " + _some(p.number for p in plan.new))
    if plan.changed:
        detail = _table(title="Changed", title_justify="left")
        detail.add_column("property number")
        detail.add_column("fields")
        for p in plan.changed[:MAX_PROBLEM_LINES]:
            detail.add_row(p.number, ", ".join(plan.changed_fields.get(p.number, [])))
        console.print(detail)
    if plan.removed:
        console.print("To be removed: " + _some(plan.removed))
    if plan.problems:
        console.print(_problem_table(plan.problems, "Invalid rows"))
    if plan.not_found:
        console.print("Not in the sheet: " + ", ".join(plan.not_found))
    for line in warning_lines(plan.warnings, MAX_WARNING_LINES):
        console.print(line, markup=False)


def _some(items: Iterable[str], limit: int = 20) -> str:
    items = list(items)
    head = ", ".join(items[:limit])
    return head + (f" ... (+{len(items) - limit})" if len(items) > limit else "")


def sync_problem_lines(report: SyncReport) -> list[str]:
    """Return the few lines cron should mail when a run was not clean."""
    lines = [
        f"sync {report.sync_id or '(dry run)'} {report.status}: {report.success} written, "
        f"{report.failed} failed, {report.skipped} unchanged, {report.removed} removed, "
        f"{len(report.not_found)} not found"
    ]
    # One tab: its name is in SYNC_SHEET_NAME; several: each line says which (as JSON does).
    several = report.plan is not None and len(report.plan.tabs) > 1
    for p in report.problems[:5]:
        lines.append(_problem_line(p.to_dict(), with_tab=several))
    if len(report.problems) > 5:
        lines.append(
            f"... and {len(report.problems) - 5} more: listing-sync status {report.sync_id}"
        )
    if report.not_found:
        lines.append("not in the sheet: " + _some(report.not_found, 10))
    lines += warning_lines(report.warnings, 3)
    if not report.state_recorded:
        lines.append("warning: the outcome could not be recorded in sync_state")
    return lines


def _problem_line(p: dict[str, Any], *, with_tab: bool = False) -> str:
    where = f"row {p.get('row')}" if p.get("row") else "row ?"
    if with_tab and p.get("tab"):
        where = f"tab {p['tab']!r} {where}"
    number = p.get("property_number") or "?"
    column = f" column {p['column']}" if p.get("column") else ""
    return f"{where} ({number}){column}: {p.get('message')}"


# --- status -------------------------------------------------------------------


def _status_text(status: str) -> str:
    colour = {
        "completed": "green",
        "partial": "yellow",
        "failed": "red",
        "abandoned": "red",
        "in_progress": "cyan",
        "queued": "cyan",
    }.get(status, "white")
    return f"[{colour}]{status}[/{colour}]"


def _when(value: str | None, *, short: bool = False) -> str:
    moment = parse_ts(value)
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S")


def _duration(run: dict[str, Any]) -> str:
    return seconds_text(duration_of(run))


def seconds_text(seconds: float | None) -> str:
    """Format a duration; short runs keep their milliseconds (a 40 ms sync is not 0.0s)."""
    if seconds is None:
        return "-"
    return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"


def render_runs(runs: Sequence[dict[str, Any]], console: Console) -> None:
    """Draw the recent-runs table; it fits 80 columns, and shows more where there is room."""
    from rich import box

    wide = console.width >= 110
    table = _table(
        title="Recent syncs",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    columns: list[tuple[str, str, Any]] = [
        ("id", "left", lambda r: short_id(str(r["id"]))),
        ("type", "left", lambda r: r["sync_type"]),
        ("status", "left", lambda r: _status_text(r["status"])),
        ("started", "left", lambda r: _when(r["started_at"], short=not wide)),
    ]
    if wide:
        columns += [
            ("time", "right", _duration),
            ("total", "right", lambda r: str(r.get("total_items") or 0)),
        ]
    columns += [
        ("written", "right", lambda r: str(r.get("success_count") or 0)),
        ("unchanged", "right", lambda r: str(r.get("skipped_count") or 0)),
        ("failed", "right", lambda r: str(r.get("failed_count") or 0)),
    ]
    if wide:
        columns.append(("removed", "right", lambda r: str(r.get("removed_count") or 0)))
    for name, justify, _ in columns:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for run in runs:
        table.add_row(*(cell(run) for _, _, cell in columns))
    if runs:
        table.caption = "listing-sync status ID: one run in detail (its first digits will do)"
    else:
        table.caption = "no syncs recorded yet"
    console.print(table)


def render_run(run: dict[str, Any], console: Console) -> None:
    """Draw one run in detail with its row problems."""
    table = _table(show_header=False, title=f"Sync {run['id']}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [
        ("type", run["sync_type"]),
        ("status", _status_text(run["status"])),
        ("started", _when(run["started_at"])),
        ("completed", _when(run.get("completed_at"))),
        ("duration", _duration(run)),
        ("total", run.get("total_items")),
        ("written", run.get("success_count")),
        ("failed", run.get("failed_count")),
        ("unchanged", run.get("skipped_count")),
        ("removed", run.get("removed_count")),
        ("not found", run.get("not_found_count")),
        ("exit code", run.get("exit_code")),
        ("error", run.get("error_message")),
    ]
    for name, value in rows:
        if value is not None:
            table.add_row(name, str(value))
    console.print(table)
    problems = run.get("error_details") or []
    if problems:
        console.print(_problem_table(problems, "Row problems"))
    not_found = run.get("not_found") or []
    if not_found:
        console.print("Not in the sheet: " + _some(map(str, not_found), 50), markup=False)


def run_to_dict(run: dict[str, Any]) -> dict[str, Any]:
    """Return the stable JSON form of a sync_state row."""
    out = dict(run)
    out["duration_seconds"] = duration_of(run)
    out["error_details"] = run.get("error_details") or []
    out["not_found"] = run.get("not_found") or []
    # The words of the sync's own report and table, besides the table's column names.
    out["written"] = run.get("success_count")
    out["unchanged"] = run.get("skipped_count")
    return out


# --- health -------------------------------------------------------------------


def render_health(report: HealthReport, console: Console) -> None:
    colour = {0: "green", 1: "yellow", 2: "red", 3: "magenta"}[report.code]
    console.print(f"[bold {colour}]{report.status}[/bold {colour}] ({NAGIOS[report.code]})")
    if report.error:
        console.print(report.error)
        return
    data = report.to_dict()
    table = _table(show_header=False)
    table.add_column("check", style="bold")
    table.add_column("value")
    rate = data["error_rate"]
    table.add_row("error rate (24 h)", f"{rate:.1%} of {data['runs_24h']} runs")
    table.add_row("last completed sync", _when(data["last_completed_sync"]))
    table.add_row("last completed full sync", _when(data["last_completed_full_sync"]))
    avg = data["avg_duration_seconds"]
    table.add_row("average duration", seconds_text(avg))
    last = data["last_run_duration_seconds"]
    table.add_row("last run duration", seconds_text(last))
    table.add_row("pending failures", str(data["pending_failures"]))
    for name, state in data["circuit_breakers"].items():
        table.add_row(f"breaker {name}", state)
    console.print(table)
    for alert in report.alerts:
        console.print(f"[{colour}]{NAGIOS[alert.level]}[/{colour}] {alert.message}")


# --- breakers -----------------------------------------------------------------


def render_breakers(rows: Sequence[dict[str, Any]], console: Console) -> None:
    table = _table(title="Circuit breakers", title_justify="left")
    for name in ("dependency", "state", "consecutive failures", "next try"):
        table.add_column(name)
    for row in rows:
        retry_at = row.get("retry_at")
        next_try = (
            datetime.fromtimestamp(retry_at).astimezone().strftime("%Y-%m-%d %H:%M:%S")
            + f" (in {row['retry_in_seconds']:.0f}s)"
            if retry_at
            else "-"
        )
        colour = "green" if row["state"] == "closed" else "red"
        table.add_row(
            row["name"],
            f"[{colour}]{row['state']}[/{colour}]",
            str(row["consecutive_failures"]),
            next_try,
        )
    console.print(table)
