-- Payments, refunds and disputes: money moves only through the payment provider, so only the
-- platform (service_role: the payments webhook) writes these tables; the people involved
-- read them.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

/*
 * ---------------------------------------------------------------------------
 * Tables
 * ---------------------------------------------------------------------------
 */

-- Financial records outlive accounts: deleting a person (or the session they booked) nulls
-- the reference instead of deleting the payment, so every foreign key is `on delete set null`.
-- That is also why "exactly one of session_id and course_id" is enforced when a payment is
-- created (trigger) while the check only forbids both: a deleted session leaves neither.
create table public.payments (
    id uuid primary key default gen_random_uuid(),
    payer_id uuid references public.profiles (id) on delete set null,
    payee_id uuid references public.profiles (id) on delete set null,
    session_id uuid references public.tutoring_sessions (id) on delete set null,
    course_id uuid references public.courses (id) on delete set null,
    amount_minor bigint not null check (amount_minor > 0),
    currency text not null check (currency ~ '^[A-Z]{3}$'),
    status text not null default 'pending'
    check (status in ('pending', 'succeeded', 'failed', 'refunded')),
    provider text not null check (provider ~ '^[a-z][a-z0-9_]{1,31}$'),
    provider_intent_id text not null unique check (char_length(provider_intent_id) between 1 and 255),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id(),
    constraint payments_one_subject_check check (num_nonnulls(session_id, course_id) <= 1),
    constraint payments_not_self check (payer_id <> payee_id)
);
comment on table public.payments is
'A payment from a student to a tutor for a session or a course; written by service_role only.';
comment on column public.payments.amount_minor is 'Amount in the currency''s minor unit (cents).';
comment on column public.payments.currency is
'ISO 4217 code, three upper-case letters (text with a check: char(n) pads and is linted out).';

create index payments_payer_id_idx on public.payments (payer_id, created_at desc);
create index payments_payee_id_idx on public.payments (payee_id, created_at desc);
create index payments_session_id_idx on public.payments (session_id);
create index payments_course_id_idx on public.payments (course_id);

create table public.refunds (
    id uuid primary key default gen_random_uuid(),
    payment_id uuid not null references public.payments (id) on delete cascade,
    amount_minor bigint not null check (amount_minor > 0),
    reason text not null default '' check (char_length(reason) <= 2000),
    status text not null default 'pending'
    check (status in ('pending', 'succeeded', 'failed', 'cancelled')),
    provider_refund_id text not null unique check (char_length(provider_refund_id) between 1 and 255),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id()
);
comment on table public.refunds is 'Money returned on a payment; never more than the payment in total.';

create index refunds_payment_id_idx on public.refunds (payment_id);

create table public.disputes (
    id uuid primary key default gen_random_uuid(),
    payment_id uuid not null references public.payments (id) on delete cascade,
    reason text not null default '' check (char_length(reason) <= 2000),
    status text not null default 'open' check (status in ('open', 'won', 'lost')),
    provider_dispute_id text not null unique check (char_length(provider_dispute_id) between 1 and 255),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    version bigint not null default 1,
    sync_xid xid8 not null default pg_current_xact_id()
);
comment on table public.disputes is 'A chargeback the payer opened with their bank.';

create index disputes_payment_id_idx on public.disputes (payment_id);

alter table public.payments enable row level security;
alter table public.refunds enable row level security;
alter table public.disputes enable row level security;

-- Clients only read (through the policies); the webhook writes as service_role, which
-- keeps insert and update but not delete: a wrong payment is marked failed, never erased.
revoke all on public.payments, public.refunds, public.disputes from anon, authenticated, service_role;
grant select on public.payments, public.refunds, public.disputes to authenticated;
grant select, insert, update on public.payments, public.refunds, public.disputes to service_role;

/*
 * ---------------------------------------------------------------------------
 * Triggers
 * ---------------------------------------------------------------------------
 */

create trigger stamp_synced_row before insert or update on public.payments
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.refunds
for each row execute function private.stamp_synced_row();
create trigger stamp_synced_row before insert or update on public.disputes
for each row execute function private.stamp_synced_row();

-- A payment is for exactly one session or course, paid to its tutor (and for a session, by
-- its student); who, what and how much never change afterwards, only the status.
create function private.guard_payment()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    subject_tutor uuid;
    subject_student uuid;
begin
    if tg_op = 'UPDATE' then
        if new.amount_minor is distinct from old.amount_minor
            or new.currency is distinct from old.currency
            or new.provider is distinct from old.provider
            or new.provider_intent_id is distinct from old.provider_intent_id
            or (new.payer_id is distinct from old.payer_id and new.payer_id is not null)
            or (new.payee_id is distinct from old.payee_id and new.payee_id is not null)
            or (new.session_id is distinct from old.session_id and new.session_id is not null)
            or (new.course_id is distinct from old.course_id and new.course_id is not null) then
            perform private.deny('only a payment''s status can change');
        end if;
        return new;
    end if;
    if num_nonnulls(new.session_id, new.course_id) <> 1 then
        raise exception using
            errcode = '23514', message = 'a payment is for exactly one session or course';
    end if;
    if not private.is_active_tutor(new.payee_id) then
        raise exception using errcode = '23514', message = 'payments are made to a tutor';
    end if;
    if new.session_id is not null then
        select s.tutor_id, s.student_id into subject_tutor, subject_student
        from public.tutoring_sessions as s where s.id = new.session_id;
    else
        select c.tutor_id into subject_tutor from public.courses as c where c.id = new.course_id;
    end if;
    if subject_tutor is distinct from new.payee_id
        or (subject_student is not null and subject_student is distinct from new.payer_id) then
        raise exception using
            errcode = '23514',
            message = 'a payment goes from the session''s student to its tutor (or the course''s tutor)';
    end if;
    return new;
end
$$;
revoke all on function private.guard_payment() from public;

create trigger guard_payment before insert or update on public.payments
for each row execute function private.guard_payment();

-- Refunds never exceed the payment. The payment row is locked first, so two refunds written
-- at once are checked one after the other; failed and cancelled refunds return nothing.
create function private.guard_refund()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
    paid bigint;
    payment_status text;
    refunded bigint;
begin
    if tg_op = 'UPDATE' and new.payment_id is distinct from old.payment_id then
        perform private.deny('a refund cannot move to another payment');
    end if;
    select p.amount_minor, p.status into paid, payment_status
    from public.payments as p where p.id = new.payment_id
    for update;
    if payment_status not in ('succeeded', 'refunded') then
        raise exception using
            errcode = '23514', message = 'only a succeeded payment can be refunded';
    end if;
    if new.status in ('pending', 'succeeded') then
        select coalesce(sum(r.amount_minor), 0) into refunded
        from public.refunds as r
        where r.payment_id = new.payment_id and r.id <> new.id
          and r.status in ('pending', 'succeeded');
        if refunded + new.amount_minor > paid then
            raise exception using
                errcode = '23514',
                message = 'refunds cannot exceed the payment',
                detail = format('paid %s, already refunded %s, asked %s', paid, refunded, new.amount_minor);
        end if;
    end if;
    return new;
end
$$;
revoke all on function private.guard_refund() from public;

create trigger guard_refund before insert or update on public.refunds
for each row execute function private.guard_refund();

create function private.guard_dispute()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if new.payment_id is distinct from old.payment_id then
        perform private.deny('a dispute cannot move to another payment');
    end if;
    return new;
end
$$;
revoke all on function private.guard_dispute() from public;

create trigger guard_dispute before update on public.disputes
for each row execute function private.guard_dispute();

/*
 * ---------------------------------------------------------------------------
 * Private helper functions
 * ---------------------------------------------------------------------------
 */

-- Payments the caller paid or received; refunds and disputes are visible through them.
create function private.my_payment_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
    select p.id
    from public.payments as p
    where p.payer_id = (select auth.uid()) or p.payee_id = (select auth.uid())
$$;
revoke all on function private.my_payment_ids() from public;
grant execute on function private.my_payment_ids() to authenticated, service_role;
