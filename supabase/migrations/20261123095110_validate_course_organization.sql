-- Validates the constraints the organizations migration added to courses as NOT VALID, in
-- a transaction of its own: validation scans courses under a lock that lets writes go on.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

alter table public.courses validate constraint courses_organization_id_fkey;
alter table public.courses validate constraint courses_visibility_check;
alter table public.courses validate constraint courses_internal_needs_organization;
