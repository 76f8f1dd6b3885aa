"""Supabase as it really is (issue 14): the public key reads public listing columns only.

Each stack has Supabase's role model (devstack/supabase_roles.sql): ``supabase_admin``
is the only superuser and ``sql/`` is applied as the non-superuser ``postgres``. The
stacks differ in PostgreSQL (15, and 17, Supabase's default for new projects) and in
the default privileges: with the ones projects made before 2026 still have, every new
table in ``public`` is granted to anon, authenticated and service_role; without them,
nobody has what ``sql/`` does not grant. On each, every key (none, anon, authenticated,
listing_sync, service_role) meets every table and operation through the real PostgREST.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_util import FAST_ENV, output, row, set_sheet
from helpers import rest_client

from devstack import LocalStack, start_postgres
from devstack._util import StackError
from devstack.postgres import PG17_BINDIR, PostgresServer
from devstack.stack import ROLES_SQL, SQL_DIR

pytestmark = pytest.mark.stack

PUBLIC_COLUMNS = [
    "property_number",
    "property_type",
    "status",
    "address",
    "price",
    "land_area_m2",
    "building_area_m2",
    "layout",
    "nearest_station",
    "walk_minutes",
    "listed_on",
    "parking",
]
PRIVATE_COLUMNS = [
    "notes",
    "extra",
    "content_hash",
    "source_hash",
    "synced_at",
    "removed_at",
    "last_sync_id",
]
KEYS = [None, "anon", "authenticated", "listing_sync", "service_role"]
VARIANTS = {
    "pg15-new-project": (None, False),
    "pg15-legacy-defaults": (None, True),
    "pg17-new-project": (PG17_BINDIR, False),
    "pg17-legacy-defaults": (PG17_BINDIR, True),
}
SEED = (
    "truncate public.property_listings, public.sync_state;"
    "insert into public.property_listings (property_number, property_type, status, address,"
    " price, land_area_m2, building_area_m2, layout, nearest_station, walk_minutes,"
    " listed_on, parking, notes, extra, content_hash, source_hash, synced_at, removed_at,"
    " last_sync_id) values"
    " ('ON-1', 'マンション', '販売中', '東京都品川区戸越1丁目', 35800000, null, 55.5, '2LDK',"
    "  '戸越駅', 5, '2025-01-09', true, '売主は値下げ可', '{\"担当者\": \"佐藤\"}', 'c1', 's1',"
    "  '2025-01-10 00:00:00+00', null, gen_random_uuid()),"
    " ('GONE-1', '戸建', '成約', '東京都目黒区1丁目', 1, 10, 20, '3LDK', '目黒駅', 9,"
    "  '2024-12-01', false, 'n', '{}', 'c2', 's2', '2025-01-10 00:00:00+00',"
    "  '2025-01-11 00:00:00+00', gen_random_uuid());"
    "insert into public.sync_state (sync_type, status) values ('full', 'completed');"
)
ON_1_PUBLIC = {
    "property_number": "ON-1",
    "property_type": "マンション",
    "status": "販売中",
    "address": "東京都品川区戸越1丁目",
    "price": 35800000,
    "land_area_m2": None,
    "building_area_m2": 55.5,
    "layout": "2LDK",
    "nearest_station": "戸越駅",
    "walk_minutes": 5,
    "listed_on": "2025-01-09",
    "parking": True,
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def supa(
    request: pytest.FixtureRequest, stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """A running Supabase-shaped stack per variant (pg15-new-project is the session stack)."""
    bindir, legacy = VARIANTS[request.param]
    if bindir is None and not legacy:
        yield stack
        return
    with LocalStack(
        tmp_path_factory.mktemp(request.param), pg_bindir=bindir, legacy_default_privileges=legacy
    ) as local:
        yield local


@pytest.fixture
def seeded(supa: LocalStack) -> LocalStack:
    """The variant's stack with one active listing, one removed and one run recorded."""
    supa.reset()
    supa.psql(SEED)
    return supa


def snapshot(stack: LocalStack) -> list[tuple[str | None, ...]]:
    """Both tables in full, as the table owner reads them."""
    return stack.sql(
        "select 'L', t::text from (select * from public.property_listings order by 1) t "
        "union all select 'S', t::text from (select * from public.sync_state order by 1) t"
    )


def run_cli(stack: LocalStack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``listing-sync ARGS`` against ``stack``."""
    return subprocess.run(
        [sys.executable, "-m", "listing_sync", *args],
        env=stack.env(**FAST_ENV, **env),
        text=True,
        encoding="utf-8",
        capture_output=True,
        timeout=120,
        check=False,
    )


# --- sql/ applied as Supabase's postgres ----------------------------------------------------


def test_sql_applies_twice_as_the_non_superuser_postgres(supa: LocalStack) -> None:
    """postgres has Supabase's attributes, owns the objects, and sql/ applies again twice."""
    assert [("f", "t", "t", "t", "t", "t")] == supa.sql(
        "select rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
        "from pg_roles where rolname = 'postgres'"
    )
    assert [("supabase_admin",)] == supa.sql("select rolname from pg_roles where rolsuper")
    supa.apply_schema()
    supa.apply_schema()
    assert [
        ("property_listings", "postgres", "r"),
        ("public_listings", "postgres", "v"),
        ("sync_state", "postgres", "r"),
    ] == supa.sql(
        "select relname, pg_get_userbyid(relowner), relkind from pg_class "
        "where relnamespace = 'public'::regnamespace and relkind in ('r', 'v') order by 1"
    )
    # Table-level privileges of the API roles: none for anon and authenticated, whatever
    # the default privileges granted (column grants are checked through PostgREST below).
    assert [
        ("listing_sync", "property_listings", "INSERT,SELECT,UPDATE"),
        ("anon", "public_listings", "SELECT"),
        ("authenticated", "public_listings", "SELECT"),
        ("service_role", "public_listings", "SELECT"),
        ("listing_sync", "sync_state", "INSERT,SELECT,UPDATE"),
    ] == [
        r
        for r in supa.sql(
            "select grantee, table_name, string_agg(privilege_type, ',' order by privilege_type) "
            "from information_schema.role_table_grants where table_schema = 'public' "
            "and grantee in ('anon', 'authenticated', 'service_role', 'listing_sync') "
            "group by 1, 2 order by 2, 1"
        )
        if r[0] != "service_role" or r[1] == "public_listings"
    ]
    assert [("authenticator",)] == supa.sql(
        "select member::regrole::text from pg_auth_members "
        "where roleid = 'listing_sync'::regrole and member <> 'postgres'::regrole"
    )


# --- every key against every table and operation ----------------------------------------


REQUESTS: list[tuple[str, str, str, Any]] = [
    ("listings: select=*", "GET", "/property_listings?select=*", None),
    ("listings: public columns", "GET", "/property_listings?select=property_number,price", None),
    ("listings: insert", "POST", "/property_listings", {"property_number": "NEW-1"}),
    ("listings: update", "PATCH", "/property_listings?property_number=eq.ON-1", {"price": 1}),
    ("listings: delete", "DELETE", "/property_listings?property_number=eq.ON-1", None),
    ("view: read", "GET", "/public_listings", None),
    ("view: insert", "POST", "/public_listings", {"property_number": "NEW-2"}),
    ("view: update", "PATCH", "/public_listings?property_number=eq.ON-1", {"price": 1}),
    ("view: delete", "DELETE", "/public_listings?property_number=eq.ON-1", None),
    ("runs: read", "GET", "/sync_state", None),
    ("runs: insert", "POST", "/sync_state", {"sync_type": "full", "status": "queued"}),
    ("runs: update", "PATCH", "/sync_state?status=eq.completed", {"error_message": "x"}),
    ("runs: delete", "DELETE", "/sync_state?status=eq.completed", None),
]


def expected_statuses(key: str | None) -> dict[str, int]:
    """What PostgREST must answer ``key`` for each of REQUESTS."""
    # Refused by privileges (42501): 401 for requests without a JWT role of their own
    # (no key, the anon key), 403 for any other key.
    no = 401 if key in (None, "anon") else 403
    if key in (None, "anon", "authenticated"):
        public = {"listings: public columns": 200, "view: read": 200}
        return {label: public.get(label, no) for label, *_ in REQUESTS}
    if key == "listing_sync":
        allowed = {
            "listings: select=*": 200,
            "listings: public columns": 200,
            "listings: insert": 201,
            "listings: update": 204,
            "runs: read": 200,
            "runs: insert": 201,
            "runs: update": 204,
        }
        return {label: allowed.get(label, no) for label, *_ in REQUESTS}
    assert "service_role" == key
    writes_to_the_view = {"view: insert", "view: update", "view: delete"}
    ok = {"GET": 200, "POST": 201, "PATCH": 204, "DELETE": 204}
    return {
        label: no if label in writes_to_the_view else ok[method]
        for label, method, _path, _body in REQUESTS
    }


@pytest.mark.parametrize("key", KEYS, ids=[str(k) for k in KEYS])
def test_each_key_against_each_table_and_operation(seeded: LocalStack, key: str | None) -> None:
    """Each key gets exactly its statuses; a refused request changes no row."""
    before = snapshot(seeded)
    actual = {}
    with rest_client(seeded, key) as api:
        for label, method, path, body in REQUESTS:
            actual[label] = api.request(method, path, json=body).status_code
    assert expected_statuses(key) == actual
    if key in (None, "anon", "authenticated"):
        assert before == snapshot(seeded)


@pytest.mark.parametrize("key", [None, "anon", "authenticated"], ids=["none", "anon", "authn"])
def test_public_reads_public_columns_of_active_listings_only(
    seeded: LocalStack, key: str | None
) -> None:
    """The public columns of ON-1, never GONE-1, never a private column, not even as a filter."""
    no = 401 if key in (None, "anon") else 403
    with rest_client(seeded, key) as api:
        assert [ON_1_PUBLIC] == api.get("/public_listings").json()
        assert [ON_1_PUBLIC] == api.get(
            "/property_listings", params={"select": ",".join(PUBLIC_COLUMNS)}
        ).json()
        assert [] == api.get("/public_listings", params={"property_number": "eq.GONE-1"}).json()
        private = {
            name: api.get("/property_listings", params={"select": name}) for name in PRIVATE_COLUMNS
        }
        assert {name: (no, "42501") for name in PRIVATE_COLUMNS} == {
            name: (r.status_code, r.json()["code"]) for name, r in private.items()
        }
        number = {"select": "property_number"}
        sneaky = [  # a private column as a filter or a sort key, or asked of the view
            api.get("/property_listings", params={**number, "notes": "ilike.*"}),
            api.get("/property_listings", params={**number, "order": "synced_at"}),
            api.get("/public_listings", params={"select": "property_number,removed_at"}),
        ]
        assert [no, no, 400] == [r.status_code for r in sneaky]


def test_listing_sync_key_runs_the_whole_sync(seeded: LocalStack) -> None:
    """sync all with a listing_sync key completes; the public then sees what the sheet says."""
    set_sheet(seeded, [row("ON-1", notes="内見は要予約"), row("N-2")])
    key = seeded.mint_key("listing_sync")
    r = run_cli(seeded, "sync", "all", "--json", SUPABASE_SERVICE_ROLE_KEY=key)
    assert 0 == r.returncode, output(r)
    assert [("GONE-1", "t"), ("N-2", "f"), ("ON-1", "f")] == seeded.sql(
        "select property_number, (removed_at is not null)::text::char "
        "from public.property_listings order by 1"
    )
    assert [("completed",), ("completed",)] == seeded.sql(
        "select status from public.sync_state order by started_at"
    )
    with rest_client(seeded, "anon") as api:
        shown = api.get("/public_listings", params={"order": "property_number"}).json()
    assert [("N-2", "東京都品川区戸越1丁目 N-2"), ("ON-1", "東京都品川区戸越1丁目 ON-1")] == [
        (s["property_number"], s["address"]) for s in shown
    ]


# --- the office's choice of public columns ------------------------------------------------


def sql_copy(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of sql/ whose 003_grants.sql has ``old`` replaced by ``new``."""
    target = tmp_path / "sql"
    shutil.copytree(SQL_DIR, target)
    grants = target / "003_grants.sql"
    text = grants.read_text(encoding="utf-8")
    assert 1 == text.count(old)
    grants.write_text(text.replace(old, new), encoding="utf-8")
    return target


LAST_PUBLIC = "'walk_minutes', 'listed_on', 'parking'"


def test_office_column_is_private_until_listed(seeded: LocalStack, tmp_path: Path) -> None:
    """built_year added by the office is refused to anon; listed in 003, anon reads it."""
    pg, rest = seeded.pg, seeded.postgrest
    assert pg is not None and rest is not None
    seeded.psql(
        "alter table public.property_listings add column built_year integer;"
        "update public.property_listings set built_year = 1998;"
    )
    try:
        seeded.apply_schema()
        rest.reload_schema()
        with rest_client(seeded, "anon") as api:
            refused = api.get("/property_listings", params={"select": "built_year"})
            assert (401, "42501") == (refused.status_code, refused.json()["code"])
            assert "built_year" not in api.get("/public_listings").json()[0]
        listed = sql_copy(tmp_path, LAST_PUBLIC, LAST_PUBLIC + ", 'built_year'")
        pg.apply_sql_dir(listed)
        pg.apply_sql_dir(listed)
        rest.reload_schema()
        with rest_client(seeded, "anon") as api:
            assert [{"built_year": 1998}] == api.get(
                "/property_listings", params={"select": "built_year"}
            ).json()
            assert 1998 == api.get("/public_listings").json()[0]["built_year"]
    finally:
        seeded.psql("alter table public.property_listings drop column built_year cascade;")
        seeded.apply_schema()
        rest.reload_schema()
    with rest_client(seeded, "anon") as api:
        assert [ON_1_PUBLIC] == api.get("/public_listings").json()


@pytest.mark.parametrize(
    ("extra", "named"),
    [("'notes', 'content_hash'", "content_hash"), ("'built_yaer'", "built_yaer")],
    ids=["bookkeeping", "typo"],
)
def test_public_columns_refuses_bookkeeping_and_unknown_columns(
    clean_stack: LocalStack, tmp_path: Path, extra: str, named: str
) -> None:
    """A hash or a misspelt column in PUBLIC_COLUMNS stops 003 and changes no grant."""
    pg = clean_stack.pg
    assert pg is not None
    grants = "select attname, attacl::text from pg_attribute where attrelid = 'public.property_listings'::regclass and attacl is not null order by attnum"  # noqa: E501
    before = clean_stack.sql(grants)
    with pytest.raises(StackError) as refused:
        pg.apply_sql_dir(sql_copy(tmp_path, LAST_PUBLIC, f"{LAST_PUBLIC}, {extra}"))
    assert (
        f"ERROR:  sql/003_grants.sql: PUBLIC_COLUMNS lists {named}: not a column of "
        "public.property_listings, or one that is never public (content_hash, source_hash, "
        "synced_at, removed_at, last_sync_id)"
    ) in str(refused.value)
    assert before == clean_stack.sql(grants)


# --- the ownership stop -------------------------------------------------------------------


def test_tables_of_another_owner_stop_sql_before_anything_changes(stack: LocalStack) -> None:
    """Tables an old dashboard made as supabase_admin: 001 names the owner and the fix."""
    pg = stack.pg
    assert pg is not None
    admin, db = "supabase_admin", "old_dashboard"
    pg.psql(f"create database {db} owner postgres", user=admin)
    try:
        # What the old dashboard did: the same tables, made by supabase_admin.
        pg.psql(files=sorted(SQL_DIR.glob("00[12]_*.sql")), user=admin, db=db)
        state = (
            "select relname, relkind, pg_get_userbyid(relowner), relrowsecurity, relacl::text, "
            "(select count(*) from pg_policies p where p.tablename = relname) from pg_class "
            "where relnamespace = 'public'::regnamespace order by relname"
        )

        def look() -> str:
            return pg.psql(state, user=admin, db=db, extra_args=["-At"])

        before = look()
        with pytest.raises(StackError) as stopped:
            pg.apply_sql_dir(SQL_DIR, db=db)
        assert (
            "ERROR:  sql/ stopped before changing anything: public.property_listings belongs "
            "to supabase_admin, public.sync_state belongs to supabase_admin, not to postgres, "
            "the role applying sql/. As that owner or a superuser, run: alter table "
            "public.property_listings owner to postgres; alter table public.sync_state owner "
            "to postgres; Then apply sql/ again as postgres."
        ) in str(stopped.value)
        assert before == look()
        pg.psql(
            "alter table public.property_listings owner to postgres;"
            "alter table public.sync_state owner to postgres;",
            user=admin,
            db=db,
        )
        pg.apply_sql_dir(SQL_DIR, db=db)
        pg.apply_sql_dir(SQL_DIR, db=db)
        assert "property_listings|r|postgres|t" in look()
    finally:
        pg.psql(f"drop database {db} with (force)", user=admin)


# --- sql/004 when listing_sync already exists ---------------------------------------------


REFUSED_GRANT = (
    "ERROR:  sql/004: role listing_sync exists, but postgres may not grant it to "
    "authenticator (from PostgreSQL 16 on that takes ADMIN OPTION on listing_sync, which "
    "only the role's creator gets). As a superuser or a role with ADMIN OPTION on "
    "listing_sync, run: grant listing_sync to authenticator; Then apply sql/ again."
)


@pytest.mark.parametrize(
    ("bindir", "refusal"),
    [(None, None), (PG17_BINDIR, REFUSED_GRANT)],
    ids=["pg15-createrole-grants", "pg17-needs-admin-option"],
)
def test_listing_sync_made_by_another_role(
    tmp_path: Path, bindir: Path | None, refusal: str | None
) -> None:
    """A listing_sync that supabase_admin made: 15 grants it; 17 stops with what to run."""
    admin = "supabase_admin"
    with start_postgres(tmp_path, superuser=admin, bindir=bindir) as pg:
        pg.psql(files=[ROLES_SQL], user=admin)
        pg.psql("create role listing_sync nologin noinherit", user=admin)
        if refusal is not None:
            with pytest.raises(StackError) as refused:
                pg.apply_sql_dir(SQL_DIR)
            assert refusal in str(refused.value)
            assert [] == members(pg)
            pg.psql("grant listing_sync to authenticator", user=admin)
        pg.apply_sql_dir(SQL_DIR)
        pg.apply_sql_dir(SQL_DIR)  # authenticator is a member now: nothing to grant
        assert ["authenticator"] == members(pg)
        assert (
            "INSERT,SELECT,UPDATE"
            == pg.psql(
                "select string_agg(privilege_type, ',' order by privilege_type) from "
                "information_schema.role_table_grants where grantee = 'listing_sync' "
                "and table_name = 'sync_state'",
                extra_args=["-At"],
            ).strip()
        )


def members(pg: PostgresServer) -> list[str]:
    """The members of listing_sync."""
    out = pg.psql(
        "select member::regrole from pg_auth_members where roleid = 'listing_sync'::regrole",
        extra_args=["-At"],
    )
    return out.split()
