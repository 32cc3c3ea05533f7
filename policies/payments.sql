-- Payments, refunds and disputes: the payer and the payee read them, admins read all.
-- Nobody writes them through these policies: clients lack the privileges as well (revoked in
-- the migration), and service_role, the payments webhook, bypasses RLS.

set local lock_timeout = '5s';
set local statement_timeout = '60s';

select private.drop_policies('public.payments');
select private.drop_policies('public.refunds');
select private.drop_policies('public.disputes');

create policy "Payers and payees can read their payments"
on public.payments for select to authenticated
using (
    payer_id = (select auth.uid())
    or payee_id = (select auth.uid())
    or (select private.is_admin())
);

create policy "Payers and payees can read refunds of their payments"
on public.refunds for select to authenticated
using (payment_id in (select private.my_payment_ids()) or (select private.is_admin()));

create policy "Payers and payees can read disputes of their payments"
on public.disputes for select to authenticated
using (payment_id in (select private.my_payment_ids()) or (select private.is_admin()));
