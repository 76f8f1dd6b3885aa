"""``python -m devstack {demo,up,mint-key,sheets}``: the local stack from the command line.

demo      start the stack in .devstack/demo, load the sample sheet, run
          ``listing-sync sync all``, ``status`` and ``health``, stop everything
up        start the stack in .devstack/up with the sample sheet (or ``--sheet FILE``:
          a JSON sheet like sample/listings.json, or a CSV downloaded from Google
          Sheets), print ``export`` lines (also written to .devstack/up/env.sh) and
          wait for Ctrl-C
mint-key  print an HS256 JWT for a role (PostgREST key)
sheets    serve a JSON sheet file over the Sheets v4 API only
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from ._util import PACKAGE_DIR, REPO_ROOT, StackError
from .postgres import find_pg_bin
from .postgrest import mint_jwt
from .stack import LocalStack

SAMPLE_DIR = PACKAGE_DIR / "sample"
SAMPLE_SHEET = SAMPLE_DIR / "listings.json"
SAMPLE_MAPPING = SAMPLE_DIR / "mapping.toml"
SAMPLE_SPREADSHEET_ID = "sample-listings"
EXIT_INTERRUPTED = 130
EXIT_STACK_FAILED = 69  # EX_UNAVAILABLE: the stack itself could not start


def _devstack_root() -> Path:
    base = REPO_ROOT if (REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
    return base / ".devstack"


def _stop_leftovers(workdir: Path) -> None:
    """Stop servers a killed earlier run left behind in ``workdir`` (by pid file only)."""
    pid_file = workdir / "postgrest.pid"
    if pid_file.exists():
        with contextlib.suppress(ValueError, OSError):
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(workdir).encode() in cmdline:
                os.kill(pid, signal.SIGTERM)
    datadir = workdir / "postgres" / "data"
    if (datadir / "postmaster.pid").exists():
        cmd = [find_pg_bin("pg_ctl"), "stop", "-D", str(datadir), "-m", "immediate"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, capture_output=True, check=False)


def _fresh_workdir(name: str) -> Path:
    workdir = _devstack_root() / name
    if workdir.exists():
        _stop_leftovers(workdir)
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    return workdir


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM/SIGHUP like Ctrl-C so that the stack is always stopped."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _csv_cell(text: str) -> object:
    """Read a CSV cell as Google Sheets does on import: plain numbers become numbers."""
    if text[:1] == "0" and text[1:2].isdigit():
        return text  # a code with leading zeros stays text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def load_sheet_file(path: Path) -> tuple[str, list[list[object]]]:
    """Read a sheet file: JSON ``{"tab": ..., "rows": [[...], ...]}`` or a CSV (tab = file name)."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return path.stem, [[_csv_cell(c) for c in row] for row in csv.reader(fh)]
    sheet = json.loads(path.read_text(encoding="utf-8"))
    return sheet["tab"], sheet["rows"]


def _start_sample_stack(
    workdir: Path, sheet: Path = SAMPLE_SHEET, mapping: Path | None = SAMPLE_MAPPING
) -> tuple[LocalStack, dict[str, str], str, int]:
    stack = LocalStack(workdir, spreadsheet_id=SAMPLE_SPREADSHEET_ID)
    stack.start()
    try:
        tab, rows = load_sheet_file(sheet)
        stack.sheets.set_sheet(SAMPLE_SPREADSHEET_ID, tab, rows)
        settings = {"SYNC_SHEET_NAME": tab}
        if mapping is not None:
            settings["SYNC_MAPPING"] = str(mapping.resolve())
        env = stack.env(**settings)
    except BaseException:
        stack.stop()
        raise
    return stack, env, tab, len(rows) - 1


def _banner(stack: LocalStack, tab: str, listings: int, title: str) -> None:
    pg, rest = stack.pg, stack.postgrest
    assert pg is not None and rest is not None
    print(f"{title} (started in {stack.startup_seconds:.1f} s, work dir {stack.workdir})")
    print(f"  PostgreSQL      127.0.0.1:{pg.port}   (psql {pg.dsn()})")
    print(f"  PostgREST 12    {rest.url}")
    print(
        f"  Sheets API v4   {stack.sheets.url}   spreadsheet {stack.spreadsheet_id!r}, "
        f"tab {tab!r} ({listings} listings)"
    )
    print(flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the README's first command: a full sync of the sample sheet."""
    stack: LocalStack | None = None
    with _sigterm_as_interrupt():
        try:
            stack, env, tab, listings = _start_sample_stack(_fresh_workdir("demo"))
            _banner(stack, tab, listings, "listing-sync demo: local stack is up")
            codes: dict[str, int] = {}
            # --summary: the sync's table also when the demo is piped into a file.
            for argv in (["sync", "all", "--summary"], ["status"], ["health"]):
                label = " ".join(argv[:2]) if argv[0] == "sync" else " ".join(argv)
                print(f"$ listing-sync {' '.join(argv)}", flush=True)
                proc = subprocess.run(
                    [sys.executable, "-m", "listing_sync", *argv], env=env, check=False
                )
                codes[label] = proc.returncode
                print(f"(exit {proc.returncode})\n", flush=True)
            active = stack.sql(
                "select count(*) filter (where removed_at is null), count(*) "
                "from public.property_listings"
            )[0]
            print(f"property_listings: {active[0]} active rows, {active[1]} in total")
            failed = {k: v for k, v in codes.items() if v != 0}
            if failed:
                print(f"demo FAILED: {failed}", file=sys.stderr)
                return codes["sync all"] or next(iter(failed.values()))
            print("demo OK")
            return 0
        except KeyboardInterrupt:
            print("\ninterrupted; stopping the stack", file=sys.stderr)
            return EXIT_INTERRUPTED
        except StackError as exc:
            print(f"devstack: {exc}", file=sys.stderr)
            return EXIT_STACK_FAILED
        finally:
            if stack is not None:
                stack.stop()


def cmd_up(args: argparse.Namespace) -> int:
    """Start the stack with the sample sheet and keep it running until Ctrl-C."""
    stack: LocalStack | None = None
    with _sigterm_as_interrupt():
        try:
            stack, env, tab, listings = _start_sample_stack(
                _fresh_workdir("up"), args.sheet, args.mapping
            )
            exports = {k: v for k, v in env.items() if k not in ("PATH", "HOME", "LANG")}
            exports["DEVSTACK_JWT_SECRET"] = stack.jwt_secret
            assert stack.pg is not None
            exports["DEVSTACK_DATABASE_URL"] = stack.pg.dsn()
            lines = [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
            env_sh = stack.workdir / "env.sh"
            fd = os.open(env_sh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
            _banner(stack, tab, listings, "devstack is up")
            print(f"# In another shell: source {env_sh}   (or paste these lines)")
            print("\n".join(lines))
            print("# Ctrl-C to stop.", flush=True)
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping the stack", file=sys.stderr)
            return 0
        except StackError as exc:
            print(f"devstack: {exc}", file=sys.stderr)
            return EXIT_STACK_FAILED
        finally:
            if stack is not None:
                stack.stop()
                # mint-key must not pick up the secret of a stack that is gone.
                for name in ("jwt-secret", "env.sh"):
                    (stack.workdir / name).unlink(missing_ok=True)


def cmd_mint_key(args: argparse.Namespace) -> int:
    """Print a JWT for --role signed with --secret ($DEVSTACK_JWT_SECRET, or the `up` stack's)."""
    secret = args.secret or os.environ.get("DEVSTACK_JWT_SECRET")
    if not secret:
        secret_file = _devstack_root() / "up" / "jwt-secret"
        if secret_file.exists():
            secret = secret_file.read_text(encoding="utf-8").strip()
    if not secret:
        print(
            "mint-key: no secret: pass --secret, set DEVSTACK_JWT_SECRET, or start "
            "`python -m devstack up` first",
            file=sys.stderr,
        )
        return 2
    print(mint_jwt(secret, args.role, expires_in=args.expires_in))
    return 0


def cmd_sheets(args: argparse.Namespace) -> int:
    """Serve only the Sheets API stand-in."""
    from .sheets_server import main as sheets_main

    argv = [str(args.file), "--spreadsheet-id", args.spreadsheet_id, "--port", str(args.port)]
    if args.key_file:
        argv += ["--key-file", str(args.key_file)]
    return sheets_main(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one subcommand."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="sync the sample sheet into a fresh local stack")
    up = sub.add_parser("up", help="start the local stack and wait for Ctrl-C")
    up.add_argument(
        "--sheet",
        type=Path,
        default=SAMPLE_SHEET,
        help="a JSON sheet like sample/listings.json, or a CSV downloaded from Google Sheets",
    )
    up.add_argument(
        "--mapping",
        type=Path,
        default=None,
        help="SYNC_MAPPING file (default: the sample's, with the sample sheet only)",
    )
    mint = sub.add_parser("mint-key", help="print a PostgREST JWT for a role")
    mint.add_argument("--secret", help="JWT secret (default: $DEVSTACK_JWT_SECRET or `up`'s)")
    mint.add_argument("--role", required=True, help="e.g. service_role, anon, listing_sync")
    mint.add_argument("--expires-in", type=int, default=None, help="seconds until exp")
    sheets = sub.add_parser("sheets", help="serve a JSON sheet over the Sheets v4 API")
    sheets.add_argument("file", type=Path, nargs="?", default=SAMPLE_SHEET)
    sheets.add_argument("--spreadsheet-id", default=SAMPLE_SPREADSHEET_ID)
    sheets.add_argument("--port", type=int, default=0)
    sheets.add_argument("--key-file", type=Path)
    args = parser.parse_args(argv)
    if args.command == "up" and args.mapping is None and args.sheet == SAMPLE_SHEET:
        args.mapping = SAMPLE_MAPPING
    commands = {"demo": cmd_demo, "up": cmd_up, "mint-key": cmd_mint_key, "sheets": cmd_sheets}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
