-- sync_state: one row per listing-sync run (the seed's table, with time zones and
-- the counters a cron tool needs). Idempotent.

create table if not exists public.sync_state (
    id             uuid primary key default gen_random_uuid(),
    sync_type      varchar(50) not null,          -- full | selective
    status         varchar(20) not null,          -- queued | in_progress | completed | partial | failed | abandoned
    started_at     timestamptz not null default now(),
    completed_at   timestamptz,
    total_items    integer,
    success_count  integer not null default 0,
    failed_count   integer not null default 0,
    skipped_count  integer not null default 0,
    error_details  jsonb,                         -- per-row problems: [{row, property_number, column, message}]
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    removed_count  integer not null default 0,
    not_found_count integer not null default 0,
    error_message  text,                          -- why a run failed or was abandoned
    exit_code      integer,
    host           text,
    pid            integer
);

alter table public.sync_state add column if not exists removed_count integer not null default 0;
alter table public.sync_state add column if not exists not_found_count integer not null default 0;
alter table public.sync_state add column if not exists error_message text;
alter table public.sync_state add column if not exists exit_code integer;
alter table public.sync_state add column if not exists host text;
alter table public.sync_state add column if not exists pid integer;
-- The property numbers `sync numbers` was given that are not in the sheet (capped).
alter table public.sync_state add column if not exists not_found jsonb;

create index if not exists idx_sync_state_type on public.sync_state (sync_type);
create index if not exists idx_sync_state_status on public.sync_state (status);
create index if not exists idx_sync_state_started_at on public.sync_state (started_at desc);
