"""The command line: parse options, call one core function, render the outcome, exit.

Heavy modules (pydantic, httpx, Google's client) are imported inside the commands
so that ``--help`` stays fast. The options every command takes are declared once
(``common_options``) and accepted after the command's name, as they always were.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import os
import signal
import sys
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from . import __version__
from .errors import (
    EXIT_OK,
    EXIT_SOFTWARE,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    ListingSyncError,
    UsageError,
)
from .logs import Logs, setup_logging

if TYPE_CHECKING:
    from .config import Settings
    from .output import OutputMode
    from .pipeline.plan import SyncRequest
    from .pipeline.run import SyncReport

SYNC_EXIT_CODES = """\
Exit codes: 0 completed (also when nothing changed); 1 partial (some rows failed or
numbers were not found, the rest written); 2 usage error; 65 the sheet is unusable
(missing key header, duplicate headers, no header for a column the table has filled,
mass removal); 69 Google Sheets or PostgREST unreachable after retries, or a circuit
breaker is open; 70 unexpected error;
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
    "Needs only SYNC_STATE_DIR (the breakers are files there).\n\n"
    "Exit codes: 0 shown; 78 configuration error.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
app.add_typer(sync_app, name="sync")
app.add_typer(breaker_app, name="breaker")


def _show_version(value: bool) -> None:
    if value:
        print(f"listing-sync {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Keep a Supabase/PostgREST property_listings table equal to a Google Sheet."""


# --- options every command takes ---------------------------------------------------

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON with stable keys on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Print debug details.")]
LogFormatOpt = Annotated[
    str,
    typer.Option(
        "--log-format",
        metavar="[text|json]",
        help="Log lines on stderr as 'text' or 'json' (for log shippers).",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="TOML file with settings (same names as the environment variables); "
        "also LISTING_SYNC_CONFIG. The environment wins.",
        envvar="LISTING_SYNC_CONFIG",
    ),
]
InsecureOpt = Annotated[
    bool,
    typer.Option("--allow-insecure-http", help="Allow plain http:// to hosts other than loopback."),
]

_COMMON_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("json_", JsonOpt, False),
    ("quiet", QuietOpt, False),
    ("verbose", VerboseOpt, False),
    ("log_format", LogFormatOpt, "text"),
    ("config", ConfigOpt, None),
    ("allow_insecure_http", InsecureOpt, False),
)


@dataclass
class Common:
    """The common options of one command, and the logging set up from them."""

    json: bool
    quiet: bool
    verbose: bool
    log_format: str
    config: Path | None
    allow_insecure_http: bool
    logs: Logs = field(init=False)

    def __post_init__(self) -> None:
        self.logs = setup_logging(self.mode(), log_format=self.log_format)

    def mode(self) -> OutputMode:
        from .output import OutputMode

        return OutputMode.detect(json=self.json, quiet=self.quiet, verbose=self.verbose)


F = TypeVar("F", bound=Callable[..., Any])


def common_options(command: F) -> F:
    """Add the common options to ``command``, which receives them as ``common: Common``.

    Typer reads the wrapper's signature: the command's own parameters, then the
    common ones (so --help lists them last, and they are typed after the command).
    """
    hints = typing.get_type_hints(command, include_extras=True)
    own = [
        p.replace(annotation=hints.get(name, p.annotation))
        for name, p in inspect.signature(command).parameters.items()
        if name != "common"
    ]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, kind, default in _COMMON_OPTIONS
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        values = [kwargs.pop(name) for name, _, _ in _COMMON_OPTIONS]
        return command(common=Common(*values), **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return typing.cast(F, wrapper)


def _exit(code: int) -> NoReturn:
    raise typer.Exit(code)


def fail(message: str, code: int, *, common: Common) -> NoReturn:
    """Print a one-line error (and a JSON error object with --json) and exit."""
    # One line whatever the exception said, and never a secret it may have quoted.
    message = common.logs.redact(" ".join(message.split()))
    if common.json:
        from .output import print_json

        print_json({"status": "error", "error": message, "exit_code": code})
    common.logs.error_line(message)
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
        fail(str(exc), map_code(exc.exit_code), common=common)
    except KeyboardInterrupt:
        fail("interrupted", map_code(EXIT_TEMPFAIL), common=common)
    except Exception as exc:  # the last line of defence: no traceback for operators
        import logging

        logging.getLogger("listing_sync").debug("unexpected error", exc_info=True)
        fail(
            f"unexpected {type(exc).__name__}: {exc} (rerun with --verbose for details)",
            map_code(EXIT_SOFTWARE),
            common=common,
        )


def load(common: Common, *, need_sheets: bool = False, local_only: bool = False) -> Settings:
    """Load settings; from then on the service-role key is redacted everywhere.

    ``need_sheets``: also require the Google settings; ``local_only``: the command
    reads only the state directory (see ``load_settings``).
    """
    from .config import load_settings

    if common.log_format not in ("text", "json"):
        raise UsageError(f"--log-format must be 'text' or 'json', got {common.log_format!r}")
    settings = load_settings(
        config_file=common.config,
        allow_insecure_http=common.allow_insecure_http,
        need_sheets=need_sheets,
        local_only=local_only,
    )
    common.logs.add_secret(settings.service_role_key.get_secret_value())
    if settings.api_key is not None:
        common.logs.add_secret(settings.api_key.get_secret_value())
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
    """SIGTERM/SIGINT: finish the current request, then stop; a second one aborts.

    Once ``settled`` says the outcome is recorded, signals are ignored. The handler
    stays installed until the process exits: restoring the default before the output
    and the exit would let a late SIGTERM kill the process (-15) instead of it
    exiting with the outcome it has already recorded.
    """

    def __init__(self, flag: Callable[[], None], settled: Callable[[], bool]) -> None:
        self.flag = flag
        self.settled = settled
        self.count = 0

    def install(self) -> _Signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.settled():
            return
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
    summary: bool = False,
) -> NoReturn:
    """Run one sync for any ``sync`` subcommand and exit with its code."""
    mode = common.mode()
    with errors_to_exit(common):
        from . import service, wiring
        from .output import RichProgress, stderr_console, sync_problem_lines
        from .pipeline.progress import NoProgress

        settings = load(common, need_sheets=True)
        settings.require_sheets()
        stop = wiring.StopFlag()
        reporting = service.Reporting(
            describe=lambda report: "\n".join(sync_problem_lines(report)),
            scrub=common.logs.redact,
        )
        _Signals(stop.set, stop.settled.is_set).install()
        try:
            with contextlib.ExitStack() as stack:
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
        finally:
            stop.settle()  # also when no run was started (lock busy, dry run, error)
        _show_sync(report, mode, common.logs, summary=summary)
    _exit(report.exit_code)


def _show_sync(report: SyncReport, mode: OutputMode, logs: Logs, *, summary: bool) -> None:
    from .output import (
        MAX_WARNING_LINES,
        print_json,
        render_sync,
        stdout_console,
        sync_problem_lines,
        sync_to_dict,
        warning_lines,
    )

    if mode.json:
        print_json(sync_to_dict(report))
    elif mode.interactive or ((report.dry_run or summary) and not mode.quiet):
        render_sync(report, stdout_console())
    elif report.exit_code != EXIT_OK and not mode.quiet:
        logs.problem_lines(sync_problem_lines(report))
    elif report.notices and not mode.quiet and not mode.verbose:
        # A column left empty by a renamed header needs a human even on a clean run.
        logs.problem_lines(warning_lines(report.notices, MAX_WARNING_LINES))
    elif mode.verbose and report.warnings:
        # A clean cron run stays silent; --verbose also shows cells read as null.
        logs.problem_lines(warning_lines(report.warnings, MAX_WARNING_LINES))


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
AllowMissingOpt = Annotated[
    bool,
    typer.Option(
        "--allow-missing-columns",
        help="Go on when a mapped column's header is missing from the sheet; leave that "
        "column's stored values as they are (otherwise the run stops with exit 65).",
    ),
]
SummaryOpt = Annotated[
    bool,
    typer.Option(
        "--summary",
        help="Print the summary table on stdout even when it is not a terminal "
        "(a log file, a demo); cron runs stay silent without it.",
    ),
]
MetricsOpt = Annotated[
    Path | None,
    typer.Option(
        "--metrics-file",
        metavar="FILE",
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
@common_options
def sync_all(
    common: Common,
    force: ForceOpt = False,
    allow_mass_removal: Annotated[
        bool,
        typer.Option(
            "--allow-mass-removal",
            help="Allow marking more than SYNC_MAX_REMOVE_FRACTION of the listings removed.",
        ),
    ] = False,
    allow_missing_columns: AllowMissingOpt = False,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = None,
    metrics_file: MetricsOpt = None,
    summary: SummaryOpt = False,
) -> None:
    from .pipeline.plan import SyncRequest

    request = SyncRequest(
        "full",
        force=force,
        dry_run=dry_run,
        allow_mass_removal=allow_mass_removal,
        allow_missing_columns=allow_missing_columns,
    )
    run_sync_command(common, request, wait=wait, metrics_file=metrics_file, summary=summary)


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
@common_options
def sync_numbers(
    common: Common,
    numbers: Annotated[
        list[str] | None,
        typer.Argument(metavar="[NUMBER]...", help="Property numbers, as in the sheet."),
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option("--from-file", metavar="FILE", help="Read numbers, one per line; - is stdin."),
    ] = None,
    force: ForceOpt = False,
    allow_missing_columns: AllowMissingOpt = False,
    dry_run: DryRunOpt = False,
    wait: WaitOpt = None,
    metrics_file: MetricsOpt = None,
    summary: SummaryOpt = False,
) -> None:
    from .pipeline.plan import SyncRequest

    with errors_to_exit(common):
        wanted = read_numbers(numbers or [], from_file)
    request = SyncRequest(
        "selective",
        numbers=tuple(wanted),
        force=force,
        dry_run=dry_run,
        allow_missing_columns=allow_missing_columns,
    )
    run_sync_command(common, request, wait=wait, metrics_file=metrics_file, summary=summary)


# --- status ----------------------------------------------------------------------


@app.command(
    help="Show what a sync did: one run in detail with its row problems, or the recent runs.\n\n"
    "Example: listing-sync status; listing-sync status 3f1c...-uuid --json\n\n"
    "Exit codes: 0 shown; 1 no such sync id; 69 PostgREST unreachable; 78 configuration error."
)
@common_options
def status(
    common: Common,
    sync_id: Annotated[
        str | None, typer.Argument(metavar="[SYNC_ID]", help="A run's id (from sync output).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, metavar="N", help="How many runs.")
    ] = 10,
) -> None:
    mode = common.mode()
    with errors_to_exit(common):
        from . import service
        from .output import print_json, render_run, render_runs, run_to_dict, stdout_console

        settings = load(common)
        if sync_id:
            run = service.show_run(settings, sync_id)
            if mode.json:
                print_json(run_to_dict(run))
            elif not mode.quiet:
                render_run(run, stdout_console())
        else:
            runs = service.recent_runs(settings, limit)
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
    "After fixing the cause of failed runs (a new install being set up), "
    "`listing-sync health --ack` records in sync_state that they have been seen: failed runs "
    "started before it no longer count.\n\n"
    "Example: listing-sync health --format nagios\n\n"
    "Exit codes (Nagios convention): 0 healthy; 1 degraded; 2 unhealthy; 3 unknown "
    "(sync_state cannot be read); 78 configuration error (3 with --format nagios). "
    "With --ack: 0 recorded."
)
@common_options
def health(
    common: Common,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="[text|json|nagios]",
            help="text, json or nagios (one line with perfdata).",
        ),
    ] = "text",
    ack: Annotated[
        bool,
        typer.Option(
            "--ack", help="Acknowledge the failed runs so far: they stop counting toward alerts."
        ),
    ] = False,
) -> None:
    from . import health as health_mod

    if ack:
        with errors_to_exit(common):
            acked = health_mod.acknowledge(load(common))
            if common.json:
                from .output import print_json

                print_json({"acknowledged": acked})
            elif not common.quiet:
                print(f"acknowledged ({acked}): failed runs before now no longer count in health")
        _exit(EXIT_OK)

    if format_ not in ("text", "json", "nagios"):
        fail(f"--format must be text, json or nagios, got {format_!r}", EXIT_USAGE, common=common)
    common.json = common.json or format_ == "json"
    mode = common.mode()
    nagios = format_ == "nagios"
    if nagios:
        _exit(_health_nagios(common))
    with errors_to_exit(common):
        from datetime import UTC, datetime

        from . import service
        from .output import print_json, render_health, stdout_console

        settings = load(common)
        report = health_mod.check(settings, service.breaker_states(settings), now=datetime.now(UTC))
        if mode.json:
            print_json(report.to_dict())
        elif not mode.quiet:
            render_health(report, stdout_console())
        code = report.code
    _exit(code)


def _health_nagios(common: Common) -> int:
    """Print exactly one Nagios plugin line, whatever happens; return its exit code.

    The monitoring system shows stdout only: a refused key, a missing table or a
    crash must still give it a line (UNKNOWN), not an empty answer.
    """
    from datetime import UTC, datetime

    from . import health as health_mod
    from . import service

    try:
        settings = load(common)
        report = health_mod.check(settings, service.breaker_states(settings), now=datetime.now(UTC))
    except ListingSyncError as exc:
        report = health_mod.HealthReport(code=health_mod.UNKNOWN, facts=None, error=str(exc))
    except Exception as exc:  # the plugin line is the whole interface: never a traceback
        report = health_mod.HealthReport(
            code=health_mod.UNKNOWN, facts=None, error=f"unexpected {type(exc).__name__}: {exc}"
        )
    print(common.logs.redact(health_mod.nagios_line(report)))
    return report.code


# --- breakers --------------------------------------------------------------------


@breaker_app.callback()
@common_options
def breaker_show(common: Common, ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is not None:
        return
    mode = common.mode()
    with errors_to_exit(common):
        from . import service
        from .output import print_json, render_breakers, stdout_console

        settings = load(common, local_only=True)  # breakers are local files only
        rows = service.breaker_rows(settings)
        if mode.json:
            print_json({"breakers": rows, "state_dir": str(settings.state_dir)})
        elif not mode.quiet:
            render_breakers(rows, stdout_console())
    _exit(EXIT_OK)


@breaker_app.command(
    "reset",
    help="Close a circuit breaker by hand (all of them without NAME).\n\n"
    "Example: listing-sync breaker reset postgrest\n\n"
    "Exit codes: 0 closed; 2 no breaker by that name; 78 configuration error.",
)
@common_options
def breaker_reset(
    common: Common,
    name: Annotated[
        str | None, typer.Argument(metavar="[sheets|postgrest]", help="sheets or postgrest")
    ] = None,
) -> None:
    mode = common.mode()
    with errors_to_exit(common):
        from . import service
        from .output import print_json

        settings = load(common, local_only=True)  # breakers are local files only
        names = service.reset_breakers(settings, name)
        if mode.json:
            print_json({"reset": names})
        elif not mode.quiet:
            print("closed: " + ", ".join(names))
    _exit(EXIT_OK)


# --- keys ------------------------------------------------------------------------


@app.command(
    "mint-key",
    help="Print a PostgREST key (an HS256 JWT) for a database role, such as the "
    "least-privilege listing_sync role that sql/004 creates.\n\n"
    "The JWT secret (Supabase: Project Settings, API, JWT secret) comes from "
    "SUPABASE_JWT_SECRET or the first line of stdin, never from an argument, which "
    "any user could read in `ps`.\n\n"
    "Example: listing-sync mint-key --role listing_sync --expires-in 365d "
    "< jwt-secret > /etc/listing-sync/key && chmod 600 /etc/listing-sync/key\n\n"
    "Exit codes: 0 printed; 2 no secret given or a bad option.",
)
@common_options
def mint_key(
    common: Common,
    role: Annotated[
        str, typer.Option("--role", metavar="ROLE", help="The database role the key acts as.")
    ] = "listing_sync",
    expires_in: Annotated[
        str | None,
        typer.Option(
            "--expires-in",
            metavar="DURATION",
            help="Lifetime such as 90d, 12h or seconds; none by default.",
        ),
    ] = None,
) -> None:
    import os

    from .keys import mint_jwt, parse_lifetime

    with errors_to_exit(common):
        lifetime = parse_lifetime(expires_in) if expires_in is not None else None
        secret = os.environ.get("SUPABASE_JWT_SECRET", "").strip()
        if not secret and not sys.stdin.isatty():
            secret = sys.stdin.readline().strip()
        if not secret:
            raise UsageError("no JWT secret: set SUPABASE_JWT_SECRET or pipe the secret on stdin")
        common.logs.add_secret(secret)
        print(mint_jwt(secret, role, expires_in=lifetime))
    _exit(EXIT_OK)


# glibc's mallopt parameter for how many heaps threads may spread over.
_M_ARENA_MAX = -8


def _share_malloc_heaps(arenas: int = 2) -> None:
    """Let this process's threads share ``arenas`` glibc heaps (unless the operator set
    MALLOC_ARENA_MAX).

    glibc gives threads their own heaps, up to eight per core, and memory freed in one
    is not reused by another. A run parses Sheets responses and PostgREST pages in
    several threads and keeps every row it will write: at 500,000 listings the spread
    heaps cost about 30 MB of RSS (a cold sync of 500,000 listings: 793 MB at glibc's
    default of 16 heaps on 2 cores, 764 MB with 2). No effect where malloc is not glibc's.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    import ctypes

    with contextlib.suppress(AttributeError, OSError):  # not glibc
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, arenas)


def main() -> None:
    """Entry point of the ``listing-sync`` console script."""
    _share_malloc_heaps()
    try:
        app()
    finally:
        # The process ends here. A large run leaves millions of objects that the
        # interpreter's last garbage collection would walk (0.2 s at 100,000 listings)
        # only to free memory the exit returns anyway.
        gc.freeze()
