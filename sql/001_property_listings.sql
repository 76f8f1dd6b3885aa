-- property_listings: one row per listing, kept equal to the Google Sheet by listing-sync.
-- Idempotent: safe to apply again on every deploy, as the role that owns the tables
-- (on Supabase: `postgres`, which is not a superuser).

-- Stop before changing anything when an object sql/ manages belongs to another role:
-- only the owner may alter it, add policies or change its grants, and a half-applied
-- sql/ would be worse than none. (An old Supabase dashboard made tables as
-- `supabase_admin`.) The message names the owner and the statements that fix it; on
-- Supabase, see README "Supabase set-up" for where to run them.
do $$
declare
    obj record;
    owners text[] := '{}';
    fixes text[] := '{}';
begin
    for obj in
        select c.relname, c.relkind, pg_get_userbyid(c.relowner) as owner
        from pg_class c
        where c.relnamespace = 'public'::regnamespace
          and c.relname in ('property_listings', 'sync_state', 'public_listings')
          and c.relowner is distinct from (select oid from pg_roles where rolname = current_user)
        order by c.relname
    loop
        owners := owners || format('public.%I belongs to %I', obj.relname, obj.owner);
        fixes := fixes || format(
            'alter %s public.%I owner to %I;',
            case obj.relkind when 'v' then 'view' else 'table' end,
            obj.relname,
            current_user
        );
    end loop;
    if cardinality(owners) > 0 then
        raise exception using
            errcode = 'insufficient_privilege',
            message = format(
                'sql/ stopped before changing anything: %s, not to %I, the role applying sql/. '
                'As that owner or a superuser, run: %s Then apply sql/ again as %I.',
                array_to_string(owners, ', '),
                current_user,
                array_to_string(fixes, ' '),
                current_user
            );
    end if;
end
$$;

create table if not exists public.property_listings (
    property_number  text primary key,
    property_type    text,
    status           text,
    address          text,
    price            bigint,              -- yen
    land_area_m2     numeric,
    building_area_m2 numeric,
    layout           text,
    nearest_station  text,
    walk_minutes     integer,
    listed_on        date,
    parking          boolean,
    notes            text,
    extra            jsonb not null default '{}'::jsonb,  -- sheet columns with no table column
    content_hash     text,                -- hash of the canonical synced values
    source_hash      text,                -- digest of the sheet row's raw cells (skips re-validation)
    synced_at        timestamptz,         -- last time listing-sync wrote this row
    removed_at       timestamptz,         -- set when the listing left the sheet; never deleted
    last_sync_id     uuid,
    source_tab       text                 -- the sheet tab the listing was last read from
);

-- Columns added after the first release: add them on existing tables too.
alter table public.property_listings add column if not exists parking boolean;
alter table public.property_listings add column if not exists content_hash text;
alter table public.property_listings add column if not exists source_hash text;
alter table public.property_listings add column if not exists removed_at timestamptz;
alter table public.property_listings add column if not exists last_sync_id uuid;
alter table public.property_listings add column if not exists source_tab text;

create index if not exists idx_property_listings_active
    on public.property_listings (property_number) where removed_at is null;
