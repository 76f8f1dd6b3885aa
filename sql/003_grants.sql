-- Grants that work on Supabase (where anon, authenticated and service_role exist)
-- and on a plain PostgREST set up the same way (see devstack/roles.sql).
-- The web site reads active listings with the anon key; only the sync writes.

alter table public.property_listings enable row level security;
alter table public.sync_state enable row level security;

grant usage on schema public to anon, authenticated, service_role;

grant select, insert, update, delete on public.property_listings to service_role;
grant select, insert, update, delete on public.sync_state to service_role;

grant select on public.property_listings to anon, authenticated;

drop policy if exists "public reads active listings" on public.property_listings;
create policy "public reads active listings" on public.property_listings
    for select to anon, authenticated
    using (removed_at is null);
