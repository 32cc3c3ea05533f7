-- Validates the check the GDPR migration added to messages as NOT VALID, in a transaction of
-- its own: validation scans messages under a lock that lets writes go on.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

alter table public.messages validate constraint messages_anonymous_is_deleted;
