-- Who may do what through the API. Idempotent: every run rebuilds these grants from
-- scratch, so what is here is all the API roles have, whatever the project's default
-- privileges granted (older Supabase projects grant every new table in `public` to
-- anon, authenticated and service_role; new projects from 2026-05-30, and all from
-- 2026-10-30, grant nothing).
--
-- The anon key is public: it ships in the web site's JavaScript. So anon (and
-- authenticated) may read the public columns of active listings and nothing else:
-- no removed listing, no run record, no hash or bookkeeping column, no write. Writes
-- and sync_state are refused by privileges (PostgREST: 401 with no key or the anon
-- key, 403 with the authenticated one), not merely emptied by row-level security.
--
-- Public columns are read two ways, both built from PUBLIC_COLUMNS below:
--   GET /public_listings                                 every public column (select=*)
--   GET /property_listings?select=property_number,price  named public columns only;
--                                      select=* on the table is refused (42501)
-- public_listings is `security_invoker = true`: it runs with the caller's grants and
-- row-level security, so it can never show more than the table itself would (removed
-- listings stay hidden by the policy below). A definer view would run as its owner,
-- `postgres`, who bypasses row-level security: one careless edit of the view would
-- publish everything, and Supabase's linter flags such views for that reason.

-- ===================== the office's choice ====================================
-- PUBLIC_COLUMNS: the property_listings columns anyone with the anon key may read.
-- PUBLIC_ROLES: who reads them (drop 'authenticated' if logged-in users of the site
-- should see nothing). Edit here, then apply sql/ again. A column the office adds
-- (alter table ... add column built_year integer) stays private until listed here.
-- content_hash, source_hash, synced_at, removed_at and last_sync_id are refused.
do $$
declare
    public_columns constant text[] := array[
        'property_number', 'property_type', 'status', 'address', 'price',
        'land_area_m2', 'building_area_m2', 'layout', 'nearest_station',
        'walk_minutes', 'listed_on', 'parking'
    ];
    public_roles constant text[] := array['anon', 'authenticated'];
-- ===============================================================================
    bookkeeping constant text[] := array[
        'content_hash', 'source_hash', 'synced_at', 'removed_at', 'last_sync_id'
    ];
    columns_sql text;
    roles_sql text;
    bad text[];
    seq regclass;
begin
    bad := array(
        select c from unnest(public_columns) c
        where c = any (bookkeeping)
           or not exists (
               select from pg_attribute a
               where a.attrelid = 'public.property_listings'::regclass
                 and a.attname = c and a.attnum > 0 and not a.attisdropped
           )
    );
    if cardinality(bad) > 0 then
        raise exception using
            errcode = 'invalid_parameter_value',
            message = format(
                'sql/003_grants.sql: PUBLIC_COLUMNS lists %s: not a column of '
                'public.property_listings, or one that is never public (%s)',
                array_to_string(bad, ', '),
                array_to_string(bookkeeping, ', ')
            );
    end if;
    bad := array(select r from unnest(public_roles) r where r not in ('anon', 'authenticated'));
    if cardinality(bad) > 0 then
        raise exception 'sql/003_grants.sql: PUBLIC_ROLES may hold anon and authenticated only, not %',
            array_to_string(bad, ', ');
    end if;

    alter table public.property_listings enable row level security;
    alter table public.sync_state enable row level security;

    -- Start from nothing. Revoking at table level also revokes column grants, so a
    -- column taken off the list loses its grant too.
    revoke all on public.property_listings, public.sync_state
        from public, anon, authenticated;
    -- sql/ creates no function, and no sequence (ids are uuid); a sequence that an
    -- office's own serial column adds to the tables is not the public's either.
    for seq in
        select d.objid::regclass from pg_depend d
        where d.classid = 'pg_class'::regclass
          and d.refobjid in ('public.property_listings'::regclass, 'public.sync_state'::regclass)
          and d.deptype in ('a', 'i')
          and (select relkind from pg_class where oid = d.objid) = 'S'
    loop
        execute format('revoke all on sequence %s from public, anon, authenticated', seq);
    end loop;

    grant usage on schema public to anon, authenticated, service_role;
    grant select, insert, update, delete on public.property_listings to service_role;
    grant select, insert, update, delete on public.sync_state to service_role;

    select string_agg(format('%I', c), ', ' order by o) into columns_sql
        from unnest(public_columns) with ordinality as t(c, o);
    select string_agg(format('%I', r), ', ') into roles_sql from unnest(public_roles) r;
    if roles_sql is not null then
        execute format('grant select (%s) on public.property_listings to %s', columns_sql, roles_sql);
    end if;

    -- Rebuilt every time, so that a column taken off the list leaves the view too.
    drop view if exists public.public_listings;
    execute format(
        'create view public.public_listings with (security_invoker = true) as '
        'select %s from public.property_listings',
        columns_sql
    );
    comment on view public.public_listings is
        'The public columns (sql/003_grants.sql PUBLIC_COLUMNS) of the listings the caller '
        'may see: security_invoker, so the caller''s grants and row-level security apply '
        '(anon and authenticated: active listings only).';
    revoke all on public.public_listings from public, anon, authenticated, service_role;
    grant select on public.public_listings to service_role;
    if roles_sql is not null then
        execute format('grant select on public.public_listings to %s', roles_sql);
    end if;
end
$$;

-- Rows: the public sees active listings only. (Policies apply on top of grants: the
-- columns a role may read are decided above.)
drop policy if exists "public reads active listings" on public.property_listings;
create policy "public reads active listings" on public.property_listings
    for select to anon, authenticated
    using (removed_at is null);
