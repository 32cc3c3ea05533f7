"""Lints on policies: per-row calls, user-editable metadata, always-true writes, stacked
permissive policies, and public buckets whose files anyone can list."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

from pysync.rls._audit_core import API_ROLES, Finding, LintContext, finding
from pysync.rls._expr import ExpressionError, bare_calls, is_always_true
from pysync.rls.request import impersonate

__all__ = ["POLICY_LINTS"]

_COMMANDS = {"r": "select", "a": "insert", "w": "update", "d": "delete"}


@dataclass(frozen=True)
class _Policy:
    table: str
    name: str
    permissive: bool
    command: str
    roles: tuple[str, ...]
    using: str | None
    check: str | None
    functions: tuple[str, ...]
    #: The SQL functions (outside managed schemas) it calls that PostgreSQL cannot inline:
    #: ``security definer`` or with a ``set`` clause.
    replanned: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f'"{self.name}" on {self.table}'

    @property
    def commands(self) -> tuple[str, ...]:
        return tuple(_COMMANDS.values()) if self.command == "all" else (self.command,)

    @property
    def api_roles(self) -> tuple[str, ...]:
        """The API roles the policy applies to (``public`` means every role)."""
        if "public" in self.roles:
            return API_ROLES
        return tuple(r for r in API_ROLES if r in self.roles)

    def applies_to(self, eligible: tuple[str, ...]) -> tuple[str, ...]:
        """Of ``eligible`` roles, those the policy names (all of them for ``public``)."""
        if "public" in self.roles:
            return eligible
        return tuple(r for r in eligible if r in self.roles)


def _policies(ctx: LintContext) -> list[_Policy]:
    rows = ctx.conn.execute(
        "select c.oid::regclass::text, p.polname, p.polpermissive, p.polcmd::text,"
        " array(select case when r = 0 then 'public' else r::regrole::text end"
        "       from unnest(p.polroles) as r order by 1),"
        " pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),"
        " array(select f.prosrc from pg_depend d join pg_proc f on f.oid = d.refobjid"
        "       where d.classid = 'pg_policy'::regclass and d.objid = p.oid"
        "         and d.refclassid = 'pg_proc'::regclass),"
        " array(select f.oid::regprocedure::text from pg_depend d"
        "       join pg_proc f on f.oid = d.refobjid"
        "       join pg_language l on l.oid = f.prolang"
        "       join pg_namespace n on n.oid = f.pronamespace"
        "       where d.classid = 'pg_policy'::regclass and d.objid = p.oid"
        "         and d.refclassid = 'pg_proc'::regclass and l.lanname = 'sql'"
        "         and (f.prosecdef or f.proconfig is not null) and n.nspname <> all(%s)"
        "       order by 1)"
        " from pg_policy p join pg_class c on c.oid = p.polrelid order by 1, 2",
        (ctx.managed,),
    ).fetchall()
    return [
        _Policy(
            table=table,
            name=name,
            permissive=permissive,
            command=_COMMANDS.get(command, "all"),
            roles=tuple(roles),
            using=using,
            check=check,
            functions=tuple(functions),
            replanned=tuple(replanned),
        )
        for table, name, permissive, command, roles, using, check, functions, replanned in rows
    ]


def _always_true_parts(policy: _Policy) -> list[str]:
    """The expressions of a permissive write policy that let every row through. A missing
    expression counts as splinter counts it (open), though PostgreSQL grants nothing for it;
    an update without ``with check`` checks new rows with its ``using``."""
    parts = []
    if policy.command in ("update", "delete", "all") and (
        policy.using is None or is_always_true(policy.using)
    ):
        parts.append("using")
    if policy.command in ("insert", "update", "all") and (
        is_always_true(policy.check)
        or (policy.check is None and (policy.command == "insert" or is_always_true(policy.using)))
    ):
        parts.append("with check")
    return parts


def _policy_lints(ctx: LintContext) -> Iterator[Finding]:
    policies = _policies(ctx)
    for policy in policies:
        yield from _expression_lints(policy)
        texts = [policy.using or "", policy.check or "", *policy.functions]
        if any("user_metadata" in t.lower() or "user_meta_data" in t.lower() for t in texts):
            yield finding(
                "rls_references_user_metadata",
                policy.label,
                "the policy (or a function it calls) reads user_metadata /"
                " raw_user_meta_data, which every user can edit for themselves",
                "decide on app_metadata (set only by the service role) or on a table the"
                " user cannot write, such as public.profiles.role",
            )
    yield from _stacked_policies(ctx, policies)
    yield from _replanned_helpers(ctx, policies)


def _expression_lints(policy: _Policy) -> Iterator[Finding]:
    """The lints that read a policy's expressions: per-row calls and always-true writes.

    An expression the parser cannot read (a server newer than pglast's grammar) is reported
    at info level, naming what went unchecked, instead of failing the whole audit.
    """
    writes = [c for c in policy.commands if c != "select"]
    try:
        calls = sorted(set(bare_calls(policy.using) + bare_calls(policy.check)))
        writable = policy.permissive and policy.api_roles and writes
        opens = _always_true_parts(policy) if writable else []
    except ExpressionError as exc:
        yield Finding(
            level="info",
            lint="auth_rls_initplan",
            object=policy.label,
            detail=f"{exc}; per-row calls and always-true expressions were not checked",
            fix="check the policy by hand: wrap each auth.*() and current_setting() call as"
            " (select …), and compare the row with the caller in every write expression",
        )
        return
    if calls:
        shown = ", ".join(calls)
        yield finding(
            "auth_rls_initplan",
            policy.label,
            f"calls {shown} once per row instead of once per statement",
            "wrap each call in a sub-select: "
            + ", ".join(f"(select {c})" for c in calls)
            + " (Supabase measured 179 ms -> 9 ms)",
        )
    if opens:
        missing = (policy.using is None and "using" in opens) or (
            policy.check is None and "with check" in opens
        )
        note = (
            " (a missing expression: splinter counts it as open, PostgreSQL as"
            " closed; write the intended condition either way)"
            if missing
            else ""
        )
        yield finding(
            "rls_policy_always_true",
            policy.label,
            f"its {' and '.join(opens)} is always true, so {', '.join(policy.api_roles)}"
            f" may {'/'.join(writes)} any row{note}",
            "compare the row with the caller, e.g. owner_id = (select auth.uid()),"
            " or drop the policy if clients must not write",
        )


def _stacked_policies(ctx: LintContext, policies: list[_Policy]) -> Iterator[Finding]:
    """Roles that RLS applies to (not ``pg_*``, not Supabase's admin roles, not bypassrls),
    as splinter counts them: a policy ``to public`` stacks up for every one of them."""
    eligible = tuple(
        r[0]
        for r in ctx.conn.execute(
            "select rolname::text from pg_catalog.pg_roles where rolname !~ '^pg_'"
            " and rolname !~ '^supabase.*admin$' and not rolbypassrls order by 1"
        )
    )
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for policy in policies:
        if policy.permissive:
            for role in policy.applies_to(eligible):
                for command in policy.commands:
                    groups[(policy.table, role, command)].append(policy.name)
    for (table, role, command), names in sorted(groups.items()):
        if len(names) > 1:
            yield finding(
                "multiple_permissive_policies",
                f"{table} ({role}, {command})",
                f"{len(names)} permissive policies are evaluated for every row: "
                + ", ".join(f'"{n}"' for n in names),
                "merge them into one policy per role and command (OR the conditions)",
            )


def _public_buckets(ctx: LintContext) -> Iterator[Finding]:
    """Probe each public bucket: can anon, or a signed-in stranger, see a file that lives in
    another user's folder? Reading the policy text cannot tell (an ``or is_admin()`` branch
    looks like an open door); asking PostgreSQL can."""
    conn = ctx.conn
    present = conn.execute(
        "select to_regclass('storage.buckets') is not null and to_regclass('storage.objects')"
        " is not null"
    ).fetchone()
    if not present or not present[0] or not ctx.has_api_roles:
        return
    buckets = [r[0] for r in conn.execute("select id from storage.buckets where public order by 1")]
    readers = conn.execute(
        "select array(select case when r = 0 then 'public' else r::regrole::text end"
        "  from unnest(p.polroles) as r), p.polname"
        " from pg_policy p where p.polrelid = 'storage.objects'::regclass and p.polpermissive"
        " and p.polcmd in ('r', '*') order by 2"
    ).fetchall()
    for bucket in buckets:
        owner, stranger = uuid.uuid4(), uuid.uuid4()
        name = f"{owner}/pysync-audit-probe"
        listed_by: list[str] = []
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(
                    "insert into storage.objects (bucket_id, name, owner) values (%s, %s, %s)",
                    (bucket, name, owner),
                )
                for role, user in (("anon", None), ("authenticated", stranger)):
                    with conn.transaction(force_rollback=True):
                        impersonate(conn, role, user, path="/storage/v1/object/list")
                        seen = conn.execute(
                            "select count(*) from storage.objects"
                            " where bucket_id = %s and name = %s",
                            (bucket, name),
                        ).fetchone()
                    if seen and seen[0]:
                        listed_by.append(role)
        except psycopg.Error as exc:
            # Not a verdict either way: say so at info level rather than fail the audit.
            message = (exc.diag.message_primary or str(exc)).strip()
            yield Finding(
                level="info",
                lint="public_bucket_allows_listing",
                object=f'bucket "{bucket}"',
                detail=f"could not probe the bucket: {message} [{exc.sqlstate}]",
                fix="run the audit as a role that may insert into storage.objects (postgres)",
            )
            continue
        if listed_by:
            names = [n for roles, n in readers if {"public", *listed_by} & set(roles)]
            yield finding(
                "public_bucket_allows_listing",
                f'bucket "{bucket}"',
                f"{' and '.join(listed_by)} can list every user's files (through "
                + ", ".join(f'"{n}"' for n in names)
                + "); a public bucket serves its files by URL without any SELECT policy",
                "limit the select policy on storage.objects to the owner's folder, e.g."
                " (storage.foldername(name))[1] = (select auth.uid())::text",
            )


def _replanned_helpers(ctx: LintContext, policies: list[_Policy]) -> Iterator[Finding]:
    """SQL helpers that policies call but PostgreSQL cannot inline (``security definer`` or a
    ``set`` clause): before PostgreSQL 18 such a function parses and plans its statement again
    in every statement that runs the policy, because its plan lives in the caller's executor
    state. PL/pgSQL keeps its plans for the session."""
    if ctx.conn.info.server_version >= 180000:
        return
    callers: dict[str, set[str]] = defaultdict(set)
    for policy in policies:
        for function in policy.replanned:
            callers[function].add(policy.label)
    for function, labels in sorted(callers.items()):
        shown = ", ".join(sorted(labels))
        yield finding(
            "policy_helper_replanned",
            function,
            f"a SQL function PostgreSQL cannot inline (security definer or set), so every"
            f" statement that runs {shown} plans its body again (about 0.15 ms a call)",
            f"create or replace {function} in language plpgsql with the same signature,"
            " security and search_path: begin return (<its select>); end (return query"
            " <its select>; for a set)",
        )


POLICY_LINTS = (_policy_lints, _public_buckets)
