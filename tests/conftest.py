"""Shared fixtures: the real local stack (PostgreSQL 15 + PostgREST 12 + Sheets v4 server).

Every test that uses the stack (through any fixture that needs ``stack``) is marked
``stack`` here, in one place: ``pytest -m "not stack"`` is the fast loop, and it
needs no PostgreSQL, PostgREST or Sheets server on the machine.

``stack`` starts once per session (about 1.5 s) in a temporary directory; if it cannot
start, every test using it errors with the reason (nothing is skipped). ``clean_stack``
gives a test empty tables, an empty Sheets server (no data, faults or recorded requests)
and an empty state directory. ``run_cli`` runs ``python -m listing_sync`` against it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping

import pytest

from devstack import LocalStack
from devstack.proxy import FaultProxy

RunCli = Callable[..., "subprocess.CompletedProcess[str]"]
Sync = Callable[..., "subprocess.CompletedProcess[str]"]
Spawn = Callable[..., "subprocess.Popen[str]"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the local stack ``stack``."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The running local stack, shared by the whole session."""
    with LocalStack(tmp_path_factory.mktemp("devstack")) as local:
        yield local


@pytest.fixture
def clean_stack(stack: LocalStack) -> LocalStack:
    """The stack with empty tables, an empty Sheets server and an empty state dir."""
    stack.reset()
    return stack


@pytest.fixture
def run_cli(stack: LocalStack) -> RunCli:
    """Run ``listing-sync ARGS`` as a subprocess with the stack's environment.

    ``env`` entries override ``stack.env()``; a value of None removes the variable.
    """

    def run(
        *args: object,
        env: Mapping[str, str | None] | None = None,
        input: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        full = stack.env()
        for key, value in (env or {}).items():
            if value is None:
                full.pop(key, None)
            else:
                full[key] = value
        return subprocess.run(
            [sys.executable, "-m", "listing_sync", *(str(a) for a in args)],
            env=full,
            input=input,
            text=True,
            encoding="utf-8",
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    return run


# --- a fault-injecting proxy in front of PostgREST ---------------------------------
# A test module may set FAST (settings for every run through the proxy).


@pytest.fixture
def proxy(clean_stack: LocalStack) -> Iterator[FaultProxy]:
    """A fault proxy in front of the stack's PostgREST, counting from zero."""
    with FaultProxy(clean_stack.postgrest_url) as p:
        yield p


def _proxied_env(
    request: pytest.FixtureRequest,
    stack: LocalStack,
    proxy: FaultProxy,
    env: Mapping[str, str] | None,
) -> dict[str, str]:
    fast = getattr(request.module, "FAST", {})
    return stack.env(**{"POSTGREST_URL": proxy.url, **fast, **(env or {})})


@pytest.fixture
def sync(request: pytest.FixtureRequest, clean_stack: LocalStack, proxy: FaultProxy) -> Sync:
    """Run ``listing-sync ARGS`` through the proxy and wait for it."""

    def run(
        *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "listing_sync", *args],
            env=_proxied_env(request, clean_stack, proxy, env),
            text=True,
            encoding="utf-8",
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def spawn(
    request: pytest.FixtureRequest, clean_stack: LocalStack, proxy: FaultProxy
) -> Iterator[Spawn]:
    """Start ``listing-sync ARGS`` through the proxy without waiting for it."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "listing_sync", *args],
            env=_proxied_env(request, clean_stack, proxy, env),
            text=True,
            encoding="utf-8",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
