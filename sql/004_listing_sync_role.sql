-- Least privilege: a role that can do what listing-sync does and nothing more.
-- SELECT, INSERT, UPDATE on the two tables (every column: it reads the key, the
-- hashes and removed_at); no DELETE, no other table, not the public_listings view.
-- Mint a key for it with the project's JWT secret:
--   SUPABASE_JWT_SECRET=... listing-sync mint-key --role listing_sync > listing_sync.key
-- and on Supabase also set SUPABASE_ANON_KEY (the gateway checks `apikey`).
-- Idempotent, and runs as the Supabase `postgres` user (no superuser needed).
--
-- PostgREST switches to listing_sync from its login role `authenticator`, which
-- must be a member. Granting that needs, from PostgreSQL 16 on (Supabase's default
-- is 17), ADMIN OPTION on listing_sync: `postgres` gets it by creating the role here,
-- but not on a listing_sync that someone else made (another role, an older
-- PostgreSQL). Nothing to grant when authenticator already is a member; otherwise a
-- refusal stops here with what to run instead.

do $$
begin
    if not exists (select from pg_roles where rolname = 'listing_sync') then
        create role listing_sync nologin noinherit;
    end if;
    if exists (
        select from pg_auth_members m
        where m.roleid = 'listing_sync'::regrole and m.member = 'authenticator'::regrole
    ) then
        return;
    end if;
    begin
        grant listing_sync to authenticator;
    exception when insufficient_privilege then
        raise exception using
            errcode = 'insufficient_privilege',
            message = format(
                'sql/004: role listing_sync exists, but %I may not grant it to '
                'authenticator (from PostgreSQL 16 on that takes ADMIN OPTION on '
                'listing_sync, which only the role''s creator gets). As a superuser or a '
                'role with ADMIN OPTION on listing_sync, run: grant listing_sync to '
                'authenticator; Then apply sql/ again.',
                current_user
            );
    end;
end
$$;

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
