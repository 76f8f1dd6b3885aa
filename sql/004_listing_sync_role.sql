-- Least privilege: a role that can do what listing-sync does and nothing more.
-- SELECT, INSERT, UPDATE on the two tables; no DELETE, no other table.
-- Mint a key for it with `python -m devstack mint-key --role listing_sync`
-- (see README, "Least privilege").

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

drop policy if exists "listing_sync manages listings" on public.property_listings;
create policy "listing_sync manages listings" on public.property_listings
    for all to listing_sync using (true) with check (true);

drop policy if exists "listing_sync manages runs" on public.sync_state;
create policy "listing_sync manages runs" on public.sync_state
    for all to listing_sync using (true) with check (true);

notify pgrst, 'reload schema';
