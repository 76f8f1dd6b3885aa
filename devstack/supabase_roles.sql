-- The role model of a Supabase project, for the local stack and the tests. Not for
-- Supabase itself (every project already has all of this).
--
-- As supabase/postgres sets a project up: the cluster's only superuser is
-- `supabase_admin` (devstack runs initdb --username=supabase_admin); `postgres` is
-- NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS LOGIN, owns the database and
-- is a member of the API roles (with ADMIN OPTION, as Supabase grants from PostgreSQL
-- 16 on); `authenticator` (PostgREST's login) is NOINHERIT and may switch to the API
-- roles. sql/ is then applied as `postgres`, exactly as the office does on Supabase.
--
-- Run by supabase_admin, once per cluster (idempotent). The psql variable
-- legacy_default_privileges (on/off, default off) adds the default privileges that
-- projects created before 2026 still have: every table, function and sequence that
-- `postgres` creates in `public` is granted to anon, authenticated and service_role.
-- Off is what every project gets from 2026-10-30 on: what sql/ does not grant, nobody has.

\if :{?legacy_default_privileges}
\else
\set legacy_default_privileges off
\endif

do $$
begin
    if not exists (select from pg_roles where rolname = 'postgres') then
        create role postgres;
    end if;
    if not exists (select from pg_roles where rolname = 'anon') then
        create role anon nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin;
    end if;
    if not exists (select from pg_roles where rolname = 'service_role') then
        create role service_role nologin bypassrls;
    end if;
    if not exists (select from pg_roles where rolname = 'authenticator') then
        create role authenticator login noinherit;
    end if;
end
$$;

alter role postgres nosuperuser createdb createrole replication bypassrls login;
alter database postgres owner to postgres;

grant usage on schema public to postgres, anon, authenticated, service_role;
grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres with admin option;

alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

\if :legacy_default_privileges
alter default privileges for role postgres in schema public
    grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
    grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
    grant all on sequences to anon, authenticated, service_role;
\else
alter default privileges for role postgres in schema public
    revoke all on tables from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
    revoke all on functions from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
    revoke all on sequences from anon, authenticated, service_role;
\endif
