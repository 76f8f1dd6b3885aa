-- property_listings: one row per listing, kept equal to the Google Sheet by listing-sync.
-- Idempotent: safe to apply again on every deploy.

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
    last_sync_id     uuid
);

-- Columns added after the first release: add them on existing tables too.
alter table public.property_listings add column if not exists parking boolean;
alter table public.property_listings add column if not exists content_hash text;
alter table public.property_listings add column if not exists source_hash text;
alter table public.property_listings add column if not exists removed_at timestamptz;
alter table public.property_listings add column if not exists last_sync_id uuid;

create index if not exists idx_property_listings_active
    on public.property_listings (property_number) where removed_at is null;
