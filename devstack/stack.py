"""The whole local stack in one work directory: PostgreSQL, PostgREST, Sheets server, key."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from types import TracebackType

from ._util import REPO_ROOT, StackError
from .keys import write_service_account_key
from .postgres import PostgresServer, start_postgres
from .postgrest import PostgrestServer, mint_jwt, start_postgrest
from .sheets_server import SheetsServer

ROLES_SQL = REPO_ROOT / "devstack" / "supabase_roles.sql"
SQL_DIR = REPO_ROOT / "sql"
# As on Supabase: the cluster's superuser, and the role that owns the database and
# applies sql/ (NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS).
SUPERUSER = "supabase_admin"
SCHEMA_OWNER = "postgres"
DEFAULT_SPREADSHEET_ID = "test-spreadsheet"
_NULL = "\x1dNULL\x1d"
_FIELD_SEP = "\x1f"
_RECORD_SEP = "\x1e"


class LocalStack:
    """PostgreSQL + schema + PostgREST + SheetsServer + service-account key, all local.

    The database has Supabase's role model: ``supabase_admin`` is the only superuser and
    applies ``roles_sql`` (devstack/supabase_roles.sql); ``sql/`` is applied as the
    non-superuser ``postgres``, as an office does on Supabase. ``legacy_default_privileges``
    adds the default privileges of projects created before 2026 (every new table in
    ``public`` granted to the API roles); ``pg_bindir`` runs other server binaries
    (``devstack.postgres.PG17_BINDIR``).

    >>> with LocalStack(tmp_path) as stack:
    ...     stack.sheets.set_sheet(stack.spreadsheet_id, "Sheet1", rows)
    ...     subprocess.run([sys.executable, "-m", "listing_sync", "sync", "all"], env=stack.env())
    """

    def __init__(
        self,
        workdir: Path,
        *,
        spreadsheet_id: str = DEFAULT_SPREADSHEET_ID,
        jwt_secret: str | None = None,
        sql_dir: Path = SQL_DIR,
        roles_sql: Path = ROLES_SQL,
        legacy_default_privileges: bool = False,
        pg_bindir: Path | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.spreadsheet_id = spreadsheet_id
        self.sql_dir = Path(sql_dir)
        self.roles_sql = Path(roles_sql)
        self.legacy_default_privileges = legacy_default_privileges
        self.pg_bindir = pg_bindir
        self.state_dir = self.workdir / "state"
        self.key_path = self.workdir / "service-account.json"
        self._jwt_secret = jwt_secret
        self.pg: PostgresServer | None = None
        self.postgrest: PostgrestServer | None = None
        self.sheets = SheetsServer()
        self.service_role_key = ""
        self.startup_seconds = 0.0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> LocalStack:
        """Start everything (about 2 s); on failure stop what was started and re-raise."""
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        for path in (self.roles_sql, self.sql_dir):
            if not path.exists():
                raise StackError(f"schema file or directory missing: {path}")
        try:
            # The key (RSA generation) and the Sheets server do not need the database:
            # prepare them while initdb runs.
            side_error: list[BaseException] = []

            def prepare_google_side() -> None:
                try:
                    self.sheets.start()
                    write_service_account_key(self.key_path, token_uri=self.sheets.token_uri)
                    self.sheets.register_key_file(self.key_path)
                except BaseException as exc:
                    side_error.append(exc)

            side = threading.Thread(target=prepare_google_side, name="devstack-google-side")
            side.start()
            try:
                self.pg = start_postgres(self.workdir, superuser=SUPERUSER, bindir=self.pg_bindir)
                self.apply_roles()
                self.apply_schema()
            finally:
                side.join()
            if side_error:
                raise side_error[0]
            self.postgrest = start_postgrest(self.pg, self.workdir, jwt_secret=self._jwt_secret)
            self.service_role_key = self.postgrest.mint("service_role")
            # Lets `python -m devstack` stop a PostgREST that a killed run left behind.
            (self.workdir / "postgrest.pid").write_text(f"{self.postgrest.proc.pid}\n")
            secret_file = self.workdir / "jwt-secret"
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.postgrest.jwt_secret + "\n")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop PostgREST, PostgreSQL and the Sheets server; safe to call twice."""
        if self.postgrest is not None:
            self.postgrest.stop()
        if self.pg is not None:
            self.pg.stop()
        self.sheets.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- accessors -----------------------------------------------------------------------
    def _require(self) -> tuple[PostgresServer, PostgrestServer]:
        if self.pg is None or self.postgrest is None:
            raise StackError("LocalStack is not started")
        return self.pg, self.postgrest

    @property
    def postgrest_url(self) -> str:
        """PostgREST base URL."""
        return self._require()[1].url

    @property
    def jwt_secret(self) -> str:
        """The PostgREST JWT secret (to mint keys for other roles)."""
        return self._require()[1].jwt_secret

    def mint_key(self, role: str, *, expires_in: int | None = None) -> str:
        """A JWT for ``role`` (anon, service_role, listing_sync, ...)."""
        return mint_jwt(self.jwt_secret, role, expires_in=expires_in)

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment for a ``listing-sync`` subprocess; keyword args override/add."""
        _, rest = self._require()
        env = {
            "POSTGREST_URL": rest.url,
            "SUPABASE_SERVICE_ROLE_KEY": self.service_role_key,
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.key_path),
            "SYNC_SPREADSHEET_ID": self.spreadsheet_id,
            "SYNC_SHEETS_API_ENDPOINT": self.sheets.url,
            "SYNC_STATE_DIR": str(self.state_dir),
            # Keep google-auth's Application Default Credentials search on this machine:
            # no developer's own gcloud login, and the "metadata server" it probes is the
            # local Sheets server (which is no GCE metadata server), never 169.254.169.254.
            "CLOUDSDK_CONFIG": str(self.workdir / "gcloud"),
            "GCE_METADATA_HOST": self.sheets.url.split("://", 1)[1],
            "GCE_METADATA_IP": self.sheets.url.split("://", 1)[1],
        }
        for name in ("PATH", "HOME", "LANG"):
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(overrides)
        return env

    # -- database helpers ------------------------------------------------------------------
    def apply_roles(self) -> None:
        """Apply ``roles_sql`` as the superuser (Supabase's roles; idempotent)."""
        pg = self.pg
        if pg is None:
            raise StackError("LocalStack is not started")
        legacy = "on" if self.legacy_default_privileges else "off"
        pg.psql(
            files=[self.roles_sql],
            user=SUPERUSER,
            extra_args=["-v", f"legacy_default_privileges={legacy}"],
        )

    def apply_schema(self) -> None:
        """Apply sql/*.sql in name order as ``postgres``, not a superuser (idempotent)."""
        pg = self.pg
        if pg is None:
            raise StackError("LocalStack is not started")
        pg.apply_sql_dir(self.sql_dir, user=SCHEMA_OWNER)

    def psql(self, sql: str, *, user: str = SCHEMA_OWNER) -> str:
        """Run SQL as ``postgres`` (owner of the tables, not a superuser), or as ``user``
        (``supabase_admin`` for the superuser); return psql's stdout."""
        return self._require()[0].psql(sql, user=user)

    def sql(self, query: str, *, user: str = SCHEMA_OWNER) -> list[tuple[str | None, ...]]:
        """Run one query as ``postgres`` (or ``user``); rows as tuples of text (NULL -> None)."""
        out = self._require()[0].psql(
            query,
            user=user,
            extra_args=[
                "-At",
                "-F",
                _FIELD_SEP,
                "-R",
                _RECORD_SEP,
                "-P",
                f"null={_NULL}",
            ],
        )
        out = out.removesuffix("\n")
        if not out:
            return []
        return [
            tuple(None if v == _NULL else v for v in record.split(_FIELD_SEP))
            for record in out.split(_RECORD_SEP)
        ]

    def truncate(self) -> None:
        """Empty property_listings and sync_state."""
        self.psql("truncate public.property_listings, public.sync_state;")

    def clear_state_dir(self) -> None:
        """Delete everything in the CLI's state directory (the directory stays)."""
        if self.state_dir.exists():
            for child in self.state_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def reset(self) -> None:
        """Truncate the tables, clear the Sheets server (data, faults, counts) and state dir."""
        self.truncate()
        self.sheets.reset()
        self.clear_state_dir()
