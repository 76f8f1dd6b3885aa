"""The command line: parse options, call one core function, map the outcome to output and
an exit code. Heavy modules (pydantic, httpx, Google's client) are imported
inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from .errors import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_SOFTWARE,
    ConfigError,
    ListingSyncError,
    UsageError,
)

if TYPE_CHECKING:
    from .config import Settings
    from .output import OutputMode
    from .sync import SyncReport, SyncRequest

SYNC_EXIT_CODES = """\
Exit codes: 0 completed (also when nothing changed); 1 partial (some rows failed or
numbers were not found, the rest written); 2 usage error; 65 the sheet is unusable
(missing key header, duplicate headers, mass removal); 69 Google Sheets or PostgREST
unreachable after retries, or a circuit breaker is open; 70 unexpected error;
75 another sync is running, or the run was interrupted; 78 configuration error."""

app = typer.Typer(
    name="listing-sync",
    help="Keep a Supabase/PostgREST property_listings table equal to a Google Sheet.\n\n"
    "Run `listing-sync sync all` nightly from cron; see `listing-sync COMMAND --help`.\n\n"
    "Example: listing-sync sync all --dry-run\n\n"
    "Exit codes: each command's --help lists its own; for sync, 0 completed, 1 partial, "
    "65 sheet unusable, 69 unavailable, 75 locked, 78 configuration error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
sync_app = typer.Typer(
    help="Sync listings from the sheet into the table.\n\n"
    "Example: listing-sync sync numbers A-0012 00123\n\n" + SYNC_EXIT_CODES,
    no_args_is_help=True,
    rich_markup_mode=None,
)
breaker_app = typer.Typer(
    help="Show the circuit breakers (one per dependency), or reset one by hand.\n\n"
    "Example: listing-sync breaker; listing-sync breaker reset sheets\n\n"
    "Exit codes: 0 shown; 78 configuration error.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(sync_app, name="sync")
app.add_typer(breaker_app, name="breaker")

# --- options every command takes ---------------------------------------------------

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON with stable keys on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Print debug details.")]
LogFormatOpt = Annotated[
    str,
    typer.Option(
        "--log-format", help="Log lines on stderr as 'text' or 'json' (for log shippers)."
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML file with settings (same names as the environment variables); "
        "also LISTING_SYNC_CONFIG. The environment wins.",
        envvar="LISTING_SYNC_CONFIG",
    ),
]
InsecureOpt = Annotated[
    bool,
    typer.Option("--allow-insecure-http", help="Allow plain http:// to hosts other than loopback."),
]


@dataclass(frozen=True)
class Common:
    json: bool
    quiet: bool
    verbose: bool
    log_format: str
    config: Path | None
    allow_insecure_http: bool

    def mode(self) -> OutputMode:
        from .output import OutputMode

        return OutputMode.detect(json=self.json, quiet=self.quiet, verbose=self.verbose)


def _exit(code: int) -> NoReturn:
    raise typer.Exit(code)


def fail(message: str, code: int, *, as_json: bool) -> NoReturn:
    """Print a one-line error (and a JSON error object with --json) and exit."""
    from .output import error_line, redact

    # One line whatever the exception said, and never a secret it may have quoted.
    message = redact(" ".join(message.split()))
    if as_json:
        from .output import print_json

        print_json({"status": "error", "error": message, "exit_code": code})
    error_line(message)
    _exit(code)


@contextlib.contextmanager
def errors_to_exit(
    common: Common, *, map_code: Callable[[int], int] = lambda c: c
) -> Iterator[None]:
    """Turn the core's errors into one line on stderr and the documented exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except ListingSyncError as exc:
        fail(str(exc), map_code(exc.exit_code), as_json=common.json)
    except KeyboardInterrupt:
        fail("interrupted", map_code(75), as_json=common.json)
    except Exception as exc:  # the last line of defence: no traceback for operators
        import logging

        logging.getLogger("listing_sync").debug("unexpected error", exc_info=True)
        fail(
            f"unexpected {type(exc).__name__}: {exc} (rerun with --verbose for details)",
            map_code(EXIT_SOFTWARE),
            as_json=common.json,
        )


def load(common: Common, mode: OutputMode) -> Settings:
    """Load settings and set up logging with the secrets redacted."""
    from .config import load_settings
    from .output import setup_logging

    setup_logging(mode, log_format=common.log_format)
    if common.log_format not in ("text", "json"):
        raise UsageError(f"--log-format must be 'text' or 'json', got {common.log_format!r}")
    settings = load_settings(
        config_file=common.config, allow_insecure_http=common.allow_insecure_http
    )
    setup_logging(
        mode, log_format=common.log_format, secrets=[settings.service_role_key.get_secret_value()]
    )
    import logging

    logging.getLogger("listing_sync").debug(
        "settings: PostgREST %s, spreadsheet %s (tab %s), state dir %s, batch %d, "
        "rate %g/s, %d attempts, breaker %d/%gs",
        settings.postgrest_url,
        settings.spreadsheet_id or "-",
        settings.sheet_name or "first",
        settings.state_dir,
        settings.batch_size,
        settings.rate_limit,
        settings.retry_attempts,
        settings.breaker_threshold,
        settings.breaker_timeout,
    )
    return settings


# --- sync ------------------------------------------------------------------------


class _Signals:
    """SIGTERM/SIGINT: finish the current request, then stop; a second one aborts."""

    def __init__(self, flag: Callable[[], None]) -> None:
        self.flag = flag
        self.count = 0
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1
        self.flag()
        if self.count > 1:
            raise KeyboardInterrupt


def run_sync_command(
    common: Common,
    request: SyncRequest,
    *,
    wait: float | None,
    metrics_file: Path | None,
) -> NoReturn:
    """Run one sync for any ``sync`` subcommand and exit with its code."""
    mode = common.mode()
    with errors_to_exit(common):
        from . import runtime, service
        from .output import RichProgress, redact, stderr_console, sync_problem_lines
        from .sync import NoProgress

        settings = load(common, mode)
        settings.require_sheets()
        stop = runtime.StopFlag()
        reporting = service.Reporting(
            describe=lambda report: "\n".join(sync_problem_lines(report)), scrub=redact
        )
        with _Signals(stop.set), contextlib.ExitStack() as stack:
            progress = (
                stack.enter_context(RichProgress(stderr_console()))
                if mode.interactive
                else NoProgress()
            )
            report = service.execute(
                settings,
                request,
                stop=stop,
                progress=progress,
                reporting=reporting,
                wait=wait,
                metrics_file=metrics_file,
            )
        _show_sync(report, mode)
    _exit(report.exit_code)


def _show_sync(report: SyncReport, mode: OutputMode) -> None:
    from .output import (
        MAX_WARNING_LINES,
        print_json,
        problem_lines,
        render_sync,
        stdout_console,
        sync_problem_lines,
        sync_to_dict,
        warning_lines,
    )

    if mode.json:
        print_json(sync_to_dict(report))
    elif mode.interactive or (report.dry_run and not mode.quiet):
        render_sync(report, stdout_console())
    elif report.exit_code != EXIT_OK and not mode.quiet:
        problem_lines(sync_problem_lines(report))
    elif mode.verbose and report.warnings:
        # A clean cron run stays silent; --verbose also shows cells read as null.
        problem_lines(warning_lines(report.warnings, MAX_WARNING_LINES))


WaitOpt = Annotated[
    float | None,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        help="If another sync is running, wait up to SECONDS for it instead of exiting 75.",
    ),
]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force", help="Write the rows even when unchanged (repairs hand-edited table rows)."
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Read everything, write nothing, show the plan.")
]
MetricsOpt = Annotated[
    Path | None,
    typer.Option(
        "--metrics-file",
        help="Write Prometheus metrics here (node_exporter textfile collector); "
        "also SYNC_METRICS_FILE.",
    ),
]


@sync_app.command(
    "all",
    help="Sync every listing in the sheet (full sync).\n\n"
    "Writes new and changed rows, skips unchanged ones, and marks listings that left the "
    "sheet removed (guarded by SYNC_MAX_REMOVE_FRACTION).\n\n"
    "Example: listing-sync sync all --dry-run\n\n" + SYNC_EXIT_CODES,
)
def sync_all(
    force: ForceOpt = False,
    allow_mass_removal: Annotated[
        bool,
        typer.Option(
            "--allow-mass-removal",
            help="Allow marking more than SYNC_MAX_REMOVE_FRACTION of the listings removed.",
        ),
    ] = False,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = None,
    metrics_file: MetricsOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = "text",
    config: ConfigOpt = None,
    allow_insecure_http: InsecureOpt = False,
) -> None:
    from .sync import SyncRequest

    common = Common(json_, quiet, verbose, log_format, config, allow_insecure_http)
    request = SyncRequest(
        "full", force=force, dry_run=dry_run, allow_mass_removal=allow_mass_removal
    )
    run_sync_command(common, request, wait=wait, metrics_file=metrics_file)


def read_numbers(numbers: list[str], from_file: str | None) -> list[str]:
    """Collect property numbers from arguments and --from-file (one per line, - for stdin)."""
    collected = [n.strip() for n in numbers if n.strip()]
    if from_file is not None:
        try:
            if from_file == "-":
                text = sys.stdin.read()
            else:
                text = Path(from_file).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise UsageError(f"--from-file: cannot read {from_file}: {exc.strerror}") from None
        collected += [line.strip() for line in text.splitlines() if line.strip()]
    from .mapping import CellError, coerce_key

    def normal(number: str) -> str | None:
        # The same normalisation as the sheet's keys (NFKC, trimmed), so a
        # full-width Ｊ－００１ finds the listing stored as J-001.
        try:
            return coerce_key(number)
        except CellError:
            return number

    unique = list(dict.fromkeys(k for k in map(normal, collected) if k))
    if not unique:
        raise UsageError("give at least one property number (or --from-file FILE)")
    return unique


@sync_app.command(
    "numbers",
    help="Re-sync only the given property numbers (selective sync).\n\n"
    "Numbers not in the sheet are reported and counted; the others sync. Unchanged "
    "listings are skipped unless --force. Never marks anything removed.\n\n"
    "Example: listing-sync sync numbers A-0012 00123 --dry-run; "
    "cut -f1 list.tsv | listing-sync sync numbers --from-file -\n\n" + SYNC_EXIT_CODES,
)
def sync_numbers(
    numbers: Annotated[
        list[str] | None, typer.Argument(help="Property numbers, as in the sheet.")
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option("--from-file", metavar="FILE", help="Read numbers, one per line; - is stdin."),
    ] = None,
    force: ForceOpt = False,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = None,
    metrics_file: MetricsOpt = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = "text",
    config: ConfigOpt = None,
    allow_insecure_http: InsecureOpt = False,
) -> None:
    from .sync import SyncRequest

    common = Common(json_, quiet, verbose, log_format, config, allow_insecure_http)
    with errors_to_exit(common):
        wanted = read_numbers(numbers or [], from_file)
    request = SyncRequest("selective", numbers=tuple(wanted), force=force, dry_run=dry_run)
    run_sync_command(common, request, wait=wait, metrics_file=metrics_file)


# --- status ----------------------------------------------------------------------


@app.command(
    help="Show what a sync did: one run in detail with its row problems, or the recent runs.\n\n"
    "Example: listing-sync status; listing-sync status 3f1c...-uuid --json\n\n"
    "Exit codes: 0 shown; 1 no such sync id; 69 PostgREST unreachable; 78 configuration error."
)
def status(
    sync_id: Annotated[str | None, typer.Argument(help="A run's id (from sync output).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs.")] = 10,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = "text",
    config: ConfigOpt = None,
    allow_insecure_http: InsecureOpt = False,
) -> None:
    common = Common(json_, quiet, verbose, log_format, config, allow_insecure_http)
    mode = common.mode()
    with errors_to_exit(common):
        from . import runtime
        from .output import print_json, render_run, render_runs, run_to_dict, stdout_console
        from .state import SyncStateStore

        settings = load(common, mode)
        state = SyncStateStore(
            runtime.postgrest_client(
                settings, runtime.guards(settings, probe=True)["postgrest"], probe=True
            )
        )
        if sync_id:
            run = state.get(sync_id)
            if mode.json:
                print_json(run_to_dict(run))
            elif not mode.quiet:
                render_run(run, stdout_console())
        else:
            runs = state.recent(limit)
            if mode.json:
                print_json({"runs": [run_to_dict(r) for r in runs]})
            elif not mode.quiet:
                render_runs(runs, stdout_console())
    _exit(EXIT_OK)


# --- health ----------------------------------------------------------------------


@app.command(
    help="Tell whether the sync is healthy, for humans, shell scripts and Nagios.\n\n"
    "Alerts: run failure rate over 24 h > 5% (warning) or > 10% (critical); last run over "
    "10 min; more than 1000 pending failures; a circuit breaker open; no completed full "
    "sync within SYNC_HEALTH_MAX_AGE (default 26h).\n\n"
    "Example: listing-sync health --format nagios\n\n"
    "Exit codes (Nagios convention): 0 healthy; 1 degraded; 2 unhealthy; 3 unknown "
    "(sync_state cannot be read); 78 configuration error (3 with --format nagios)."
)
def health(
    format_: Annotated[
        str, typer.Option("--format", help="text, json or nagios (one line with perfdata).")
    ] = "text",
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = "text",
    config: ConfigOpt = None,
    allow_insecure_http: InsecureOpt = False,
) -> None:
    if format_ not in ("text", "json", "nagios"):
        fail(f"--format must be text, json or nagios, got {format_!r}", 2, as_json=json_)
    as_json = json_ or format_ == "json"
    common = Common(as_json, quiet, verbose, log_format, config, allow_insecure_http)
    mode = common.mode()
    nagios = format_ == "nagios"
    unknown = 3
    with errors_to_exit(common, map_code=lambda c: unknown if nagios and c == EXIT_CONFIG else c):
        from datetime import UTC, datetime

        from . import health as health_mod
        from . import runtime, service
        from .output import print_json, render_health, stdout_console
        from .state import SyncStateStore

        try:
            settings = load(common, mode)
        except ConfigError as exc:
            if not nagios:
                raise
            # The monitoring system shows stdout: give it the plugin line, not nothing.
            report = health_mod.HealthReport(code=unknown, facts=None, error=str(exc))
            print(health_mod.nagios_line(report))
            _exit(unknown)
        breaker_states = service.breaker_states(settings)
        state = SyncStateStore(
            runtime.postgrest_client(
                settings, runtime.guards(settings, probe=True)["postgrest"], probe=True
            )
        )
        now = datetime.now(UTC)
        try:
            facts = health_mod.gather(state, breaker_states, now=now)
            report = health_mod.evaluate(facts, now=now, max_age=settings.health_max_age)
        except ListingSyncError as exc:
            if isinstance(exc, ConfigError):
                raise
            report = health_mod.HealthReport(
                code=unknown, facts=None, error=f"cannot read sync_state: {exc}"
            )
        if nagios:
            print(health_mod.nagios_line(report))
        elif mode.json:
            print_json(report.to_dict())
        elif not mode.quiet:
            render_health(report, stdout_console())
        code = report.code
    _exit(code)


# --- breakers --------------------------------------------------------------------


@breaker_app.callback()
def breaker_show(
    ctx: typer.Context,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = "text",
    config: ConfigOpt = None,
    allow_insecure_http: InsecureOpt = False,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    common = Common(json_, quiet, verbose, log_format, config, allow_insecure_http)
    mode = common.mode()
    with errors_to_exit(common):
        from . import runtime
        from .output import print_json, render_breakers, stdout_console

        settings = load(common, mode)
        rows = _breaker_rows(runtime.breakers(settings))
        if mode.json:
            print_json({"breakers": rows, "state_dir": str(settings.state_dir)})
        elif not mode.quiet:
            render_breakers(rows, stdout_console())
    _exit(EXIT_OK)


def _breaker_rows(breakers: dict[str, Any]) -> list[dict[str, Any]]:
    import time

    rows = []
    for name, breaker in breakers.items():
        s = breaker.state()
        retry_at = (
            s.opened_at + breaker.timeout if s.state == "open" and s.opened_at is not None else None
        )
        rows.append(
            {
                "name": name,
                "state": s.state,
                "consecutive_failures": s.failures,
                "opened_at": s.opened_at,
                "retry_at": retry_at,
                "retry_in_seconds": max(0.0, retry_at - time.time()) if retry_at else None,
            }
        )
    return rows


@breaker_app.command(
    "reset",
    help="Close a circuit breaker by hand (all of them without NAME).\n\n"
    "Example: listing-sync breaker reset postgrest\n\n"
    "Exit codes: 0 closed; 2 no breaker by that name; 78 configuration error.",
)
def breaker_reset(
    name: Annotated[str | None, typer.Argument(help="sheets or postgrest")] = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = "text",
    config: ConfigOpt = None,
    allow_insecure_http: InsecureOpt = False,
) -> None:
    common = Common(json_, quiet, verbose, log_format, config, allow_insecure_http)
    mode = common.mode()
    with errors_to_exit(common):
        from . import runtime
        from .output import print_json

        settings = load(common, mode)
        breakers = runtime.breakers(settings)
        if name is not None and name not in breakers:
            raise UsageError(f"no breaker named {name!r}; breakers: {', '.join(breakers)}")
        names = [name] if name else list(breakers)
        for n in names:
            breakers[n].reset()
        if mode.json:
            print_json({"reset": names})
        elif not mode.quiet:
            print("closed: " + ", ".join(names))
    _exit(EXIT_OK)


def main() -> None:
    """Entry point of the ``listing-sync`` console script."""
    app()
