-- Least privilege: a role that can do what listing-sync does and nothing more.
-- SELECT, INSERT, UPDATE on the two tables; no DELETE, no other table.
-- Mint a key for it with the project's JWT secret:
--   SUPABASE_JWT_SECRET=... listing-sync mint-key --role listing_sync > listing_sync.key
-- and on Supabase also set SUPABASE_ANON_KEY (the gateway checks `apikey`).
-- Idempotent, and runs as the Supabase `postgres` user (no superuser needed).

do $$
begin
    if not exists (select from pg_roles where rolname = 'listing_sync') then
        create role listing_sync nologin noinherit;
    end if;
end
$$;

grant listing_sync to authenticator;
grant usage on schema public to listing_sync;
revoke all on public.property_listings, public.sync_state from listing_sync;
grant select, insert, update on public.property_listings to listing_sync;
grant select, insert, update on public.sync_state to listing_sync;

-- One policy per granted command (none for DELETE): even a stray DELETE grant
-- later would find no row it may delete.
drop policy if exists "listing_sync manages listings" on public.property_listings;
drop policy if exists "listing_sync manages runs" on public.sync_state;

drop policy if exists "listing_sync reads listings" on public.property_listings;
create policy "listing_sync reads listings" on public.property_listings
    for select to listing_sync using (true);
drop policy if exists "listing_sync adds listings" on public.property_listings;
create policy "listing_sync adds listings" on public.property_listings
    for insert to listing_sync with check (true);
drop policy if exists "listing_sync updates listings" on public.property_listings;
create policy "listing_sync updates listings" on public.property_listings
    for update to listing_sync using (true) with check (true);

drop policy if exists "listing_sync reads runs" on public.sync_state;
create policy "listing_sync reads runs" on public.sync_state
    for select to listing_sync using (true);
drop policy if exists "listing_sync adds runs" on public.sync_state;
create policy "listing_sync adds runs" on public.sync_state
    for insert to listing_sync with check (true);
drop policy if exists "listing_sync updates runs" on public.sync_state;
create policy "listing_sync updates runs" on public.sync_state
    for update to listing_sync using (true) with check (true);

notify pgrst, 'reload schema';
