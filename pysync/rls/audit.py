"""A live audit of a database's catalog for the mistakes that leak data or slow RLS down.

In the spirit of Supabase's database linter (splinter), with the lints this project cares
about and a few it adds: every finding says what is wrong (``detail``) and what to do
(``fix``). The audit reads the catalog inside a transaction that is rolled back; the one
behavioural lint (public buckets) inserts a probe object there, so nothing is left behind.

Intended exceptions live in ``policies/audit.toml`` with a reason. An accepted finding is
still reported, at ``info`` level, so a reader sees every exception and why it is fine.
Error-level lints cannot be accepted: they are leaks, not trade-offs.
"""

from __future__ import annotations

import tomllib
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from pysync.errors import PysyncError
from pysync.rls._expr import bare_calls, is_always_true
from pysync.rls.matrix import Matrix, load_matrix
from pysync.rls.request import impersonate
from pysync.rls.runner import find_coverage_gaps

__all__ = [
    "LEVELS",
    "LINTS",
    "MANAGED_SCHEMAS",
    "AuditConfig",
    "AuditConfigError",
    "AuditReport",
    "Finding",
    "audit_project",
    "load_audit_config",
    "run_audit",
]

LEVELS = ("error", "warn", "info")

#: Every lint, its level and what it guards against (docs/rls.md explains each).
LINTS: dict[str, tuple[str, str]] = {
    "rls_disabled_in_public": ("error", "a table the API exposes has row level security off"),
    "rls_enabled_no_policy": ("warn", "RLS is on but no policy lets any API role in"),
    "auth_rls_initplan": ("warn", "a policy calls auth.*() or current_setting() per row"),
    "multiple_permissive_policies": ("warn", "several permissive policies per role and command"),
    "security_definer_search_path_mutable": ("error", "a definer function's search_path is open"),
    "anon_security_definer_function_executable": ("warn", "anon may call a definer function"),
    "security_definer_view": ("error", "an exposed view bypasses the RLS of its tables"),
    "unindexed_foreign_keys": ("warn", "a foreign key has no index that starts with its columns"),
    "rls_references_user_metadata": ("error", "a policy trusts user-editable metadata"),
    "rls_policy_always_true": ("warn", "a write policy lets every row through"),
    "public_bucket_allows_listing": ("warn", "anyone can list the files of a public bucket"),
    "table_missing_from_matrix": ("error", "a public table has no access matrix case lines"),
    "policy_missing_from_matrix": ("error", "a table's policy command has no matrix case line"),
    "function_missing_from_matrix": ("error", "a public function has no matrix rpc line"),
}

#: Schemas Supabase (or the local emulation, ``pysync_local``) owns: their functions and
#: foreign keys are not the project's to fix.
MANAGED_SCHEMAS = frozenset(
    {
        "auth",
        "storage",
        "realtime",
        "_realtime",
        "extensions",
        "graphql",
        "graphql_public",
        "pgbouncer",
        "pgsodium",
        "pgsodium_masks",
        "vault",
        "net",
        "cron",
        "pgtle",
        "supabase_functions",
        "supabase_migrations",
        "_analytics",
        "_supavisor",
        "information_schema",
        "pysync_local",
    }
)

DEFAULT_EXPOSED_SCHEMAS = ("public", "graphql_public")
_COMMANDS = {"r": "select", "a": "insert", "w": "update", "d": "delete"}
_API_ROLES = ("anon", "authenticated")


class AuditConfigError(PysyncError):
    """``policies/audit.toml`` is malformed."""


@dataclass(frozen=True)
class Finding:
    level: str
    lint: str
    object: str
    detail: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class AuditConfig:
    """Which schemas the API exposes, and the findings accepted on purpose (with why)."""

    exposed_schemas: tuple[str, ...] = DEFAULT_EXPOSED_SCHEMAS
    #: ``(lint, object)`` → reason.
    accepted: dict[tuple[str, str], str] = field(default_factory=dict)
    path: Path | None = None


@dataclass(frozen=True)
class AuditReport:
    findings: list[Finding]

    def count(self, level: str) -> int:
        return sum(1 for f in self.findings if f.level == level)

    @property
    def ok(self) -> bool:
        """No error and no warning (info findings are notes, not failures)."""
        return not any(f.level in ("error", "warn") for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"findings": [f.as_dict() for f in self.findings]}


def load_audit_config(path: Path) -> AuditConfig:
    """Read ``audit.toml``; a missing file means the defaults and no exceptions."""
    if not path.is_file():
        return AuditConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise AuditConfigError(f"{path}: {exc}") from exc
    schemas = data.get("exposed_schemas", list(DEFAULT_EXPOSED_SCHEMAS))
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise AuditConfigError(f"{path}: exposed_schemas must be a list of schema names")
    accepted: dict[tuple[str, str], str] = {}
    for number, entry in enumerate(data.get("accept", []), start=1):
        lint, obj, reason = entry.get("lint"), entry.get("object"), entry.get("reason")
        where = f"{path}: accept entry {number}"
        if lint not in LINTS:
            raise AuditConfigError(f"{where}: unknown lint {lint!r}")
        if LINTS[lint][0] == "error":
            raise AuditConfigError(f"{where}: {lint} is an error and cannot be accepted")
        if not obj or not reason:
            raise AuditConfigError(f"{where}: needs an object and a reason")
        accepted[(lint, obj)] = reason
    return AuditConfig(exposed_schemas=tuple(schemas), accepted=accepted, path=path)


# -- the lints --------------------------------------------------------------------------------

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class _Context:
    conn: Conn
    exposed: tuple[str, ...]
    has_api_roles: bool


def _finding(lint: str, obj: str, detail: str, fix: str) -> Finding:
    return Finding(level=LINTS[lint][0], lint=lint, object=obj, detail=detail, fix=fix)


def _tables_rls(ctx: _Context) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        "select c.oid::regclass::text, c.relrowsecurity,"
        " exists (select 1 from pg_policy p where p.polrelid = c.oid)"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = any(%s) and c.relkind in ('r', 'p')"
        " and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass"
        "  and d.objid = c.oid and d.deptype = 'e')"
        " order by 1",
        (list(ctx.exposed),),
    ).fetchall()
    for table, rls, has_policy in rows:
        if not rls:
            yield _finding(
                "rls_disabled_in_public",
                table,
                "row level security is disabled: anyone with the anon key can read and write"
                " every row through the API",
                f"alter table {table} enable row level security; then write its policies"
                " in policies/<domain>.sql",
            )
        elif not has_policy:
            yield _finding(
                "rls_enabled_no_policy",
                table,
                "RLS is on but the table has no policy, so the API roles see and change"
                " nothing; fine for a table only service_role uses, if that is intended",
                "write its policies in policies/<domain>.sql, or accept the finding in"
                " policies/audit.toml saying who uses the table",
            )


@dataclass(frozen=True)
class _Policy:
    table: str
    schema: str
    name: str
    permissive: bool
    command: str
    roles: tuple[str, ...]
    using: str | None
    check: str | None
    functions: tuple[str, ...]

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
            return _API_ROLES
        return tuple(r for r in _API_ROLES if r in self.roles)


def _policies(ctx: _Context) -> list[_Policy]:
    rows = ctx.conn.execute(
        "select c.oid::regclass::text, n.nspname, p.polname, p.polpermissive, p.polcmd::text,"
        " array(select case when r = 0 then 'public' else r::regrole::text end"
        "       from unnest(p.polroles) as r order by 1),"
        " pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),"
        " array(select f.prosrc from pg_depend d join pg_proc f on f.oid = d.refobjid"
        "       where d.classid = 'pg_policy'::regclass and d.objid = p.oid"
        "         and d.refclassid = 'pg_proc'::regclass)"
        " from pg_policy p join pg_class c on c.oid = p.polrelid"
        " join pg_namespace n on n.oid = c.relnamespace order by 1, 3"
    ).fetchall()
    return [
        _Policy(
            table=table,
            schema=schema,
            name=name,
            permissive=permissive,
            command=_COMMANDS.get(command, "all"),
            roles=tuple(roles),
            using=using,
            check=check,
            functions=tuple(functions),
        )
        for table, schema, name, permissive, command, roles, using, check, functions in rows
    ]


def _policy_lints(ctx: _Context) -> Iterator[Finding]:
    policies = _policies(ctx)
    for policy in policies:
        calls = sorted(set(bare_calls(policy.using) + bare_calls(policy.check)))
        if calls:
            shown = ", ".join(calls)
            yield _finding(
                "auth_rls_initplan",
                policy.label,
                f"calls {shown} once per row instead of once per statement",
                "wrap each call in a sub-select: "
                + ", ".join(f"(select {c})" for c in calls)
                + " (Supabase measured 179 ms -> 9 ms)",
            )
        texts = [policy.using or "", policy.check or "", *policy.functions]
        if any("user_metadata" in t.lower() or "user_meta_data" in t.lower() for t in texts):
            yield _finding(
                "rls_references_user_metadata",
                policy.label,
                "the policy (or a function it calls) reads user_metadata /"
                " raw_user_meta_data, which every user can edit for themselves",
                "decide on app_metadata (set only by the service role) or on a table the"
                " user cannot write, such as public.profiles.role",
            )
        writes = [c for c in policy.commands if c != "select"]
        if policy.permissive and policy.api_roles and writes:
            opens = []
            if policy.command in ("update", "delete", "all") and is_always_true(policy.using):
                opens.append("using")
            if policy.command in ("insert", "update", "all") and is_always_true(policy.check):
                opens.append("with check")
            if opens:
                yield _finding(
                    "rls_policy_always_true",
                    policy.label,
                    f"its {' and '.join(opens)} is always true, so {', '.join(policy.api_roles)}"
                    f" may {'/'.join(writes)} any row",
                    "compare the row with the caller, e.g. owner_id = (select auth.uid()),"
                    " or drop the policy if clients must not write",
                )
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for policy in policies:
        if policy.permissive:
            for role in policy.api_roles:
                for command in policy.commands:
                    groups[(policy.table, role, command)].append(policy.name)
    for (table, role, command), names in sorted(groups.items()):
        if len(names) > 1:
            yield _finding(
                "multiple_permissive_policies",
                f"{table} ({role}, {command})",
                f"{len(names)} permissive policies are evaluated for every row: "
                + ", ".join(f'"{n}"' for n in names),
                "merge them into one policy per role and command (OR the conditions)",
            )


def _functions(ctx: _Context) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        "select p.oid::regprocedure::text, n.nspname,"
        " exists (select 1 from unnest(coalesce(p.proconfig, '{}')) as s"
        "         where s like 'search_path=%'),"
        " p.prorettype in ('trigger'::regtype, 'event_trigger'::regtype),"
        " case when to_regrole('anon') is null then false"
        "  else has_function_privilege('anon', p.oid, 'execute') end"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where p.prosecdef and n.nspname !~ '^pg_' and n.nspname <> 'information_schema'"
        " and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass"
        "  and d.objid = p.oid and d.deptype = 'e')"
        " order by 1"
    ).fetchall()
    for function, schema, fixed_path, is_trigger, anon in rows:
        if schema not in MANAGED_SCHEMAS and not fixed_path:
            yield _finding(
                "security_definer_search_path_mutable",
                function,
                "runs with its owner's rights but resolves names through the caller's"
                " search_path, so a caller can substitute their own objects",
                f"alter function {function} set search_path = ''; and schema-qualify every"
                " name in its body",
            )
        if schema in ctx.exposed and anon and not is_trigger:
            yield _finding(
                "anon_security_definer_function_executable",
                function,
                "anyone with the anon key can call it over the API (/rest/v1/rpc), and it"
                " runs with its owner's rights, past RLS",
                f"revoke execute on function {function} from public, anon; grant it to the"
                " roles that need it, or move it to the private schema",
            )


def _views(ctx: _Context) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        "with recursive deps (view_oid, rel) as ("
        "  select v.oid, d.refobjid from pg_class v"
        "  join pg_rewrite w on w.ev_class = v.oid"
        "  join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = w.oid"
        "   and d.refclassid = 'pg_class'::regclass and d.refobjid <> v.oid"
        "  where v.relkind = 'v'"
        "  union"
        "  select deps.view_oid, d.refobjid from deps"
        "  join pg_class c on c.oid = deps.rel and c.relkind = 'v'"
        "  join pg_rewrite w on w.ev_class = c.oid"
        "  join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = w.oid"
        "   and d.refclassid = 'pg_class'::regclass and d.refobjid <> c.oid"
        ")"
        " select v.oid::regclass::text, coalesce(v.reloptions, '{}'),"
        "  array_agg(distinct r.oid::regclass::text)"
        " from pg_class v join pg_namespace n on n.oid = v.relnamespace"
        " join deps on deps.view_oid = v.oid"
        " join pg_class r on r.oid = deps.rel and r.relrowsecurity"
        " where v.relkind = 'v' and n.nspname = any(%s) and (to_regrole('anon') is null"
        "  or has_table_privilege('anon', v.oid, 'select')"
        "  or has_table_privilege('authenticated', v.oid, 'select'))"
        " group by 1, 2 order by 1",
        (list(ctx.exposed),),
    ).fetchall()
    for view, options, tables in rows:
        settings = dict(o.split("=", 1) for o in options if "=" in o)
        if settings.get("security_invoker", "false").lower() in ("true", "on", "1", "yes"):
            continue
        yield _finding(
            "security_definer_view",
            view,
            "the view runs with its owner's rights, so the API reads "
            + ", ".join(sorted(tables))
            + " past their row level security",
            f"alter view {view} set (security_invoker = true);",
        )


def _foreign_keys(ctx: _Context) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        "select c.conrelid::regclass::text, quote_ident(c.conname),"
        " array(select quote_ident(a.attname) from unnest(c.conkey) with ordinality as k(n, i)"
        "       join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.n order by k.i)"
        " from pg_constraint c join pg_class t on t.oid = c.conrelid"
        " join pg_namespace n on n.oid = t.relnamespace"
        " where c.contype = 'f' and c.conparentid = 0"
        " and n.nspname <> all(%(managed)s) and n.nspname !~ '^pg_'"
        " and not exists ("
        "  select 1 from pg_index i where i.indrelid = c.conrelid and i.indpred is null"
        "   and i.indisvalid and i.indnkeyatts >= cardinality(c.conkey)"
        "   and (select array_agg(x order by x)"
        "        from unnest((i.indkey::int2[])[0:cardinality(c.conkey) - 1]) as x)"
        "     = (select array_agg(x order by x) from unnest(c.conkey) as x))"
        " order by 1, 2",
        {"managed": sorted(MANAGED_SCHEMAS)},
    ).fetchall()
    for table, constraint, columns in rows:
        shown = ", ".join(columns)
        yield _finding(
            "unindexed_foreign_keys",
            f"{constraint} on {table}",
            f"no index starts with ({shown}) and covers every row (partial indexes do"
            " not), so joins, policy lookups and cascades from the referenced table scan"
            " the whole table",
            f"create index on {table} ({shown});",
        )


def _public_buckets(ctx: _Context) -> Iterator[Finding]:
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
            yield _finding(
                "public_bucket_allows_listing",
                f'bucket "{bucket}"',
                f"{' and '.join(listed_by)} can list every user's files (through "
                + ", ".join(f'"{n}"' for n in names)
                + "); a public bucket serves its files by URL without any SELECT policy",
                "limit the select policy on storage.objects to the owner's folder, e.g."
                " (storage.foldername(name))[1] = (select auth.uid())::text",
            )


def _matrix(ctx: _Context, matrix: Matrix) -> Iterator[Finding]:
    for gap in find_coverage_gaps(ctx.conn, matrix):
        where = matrix.path.name if matrix.path else "the access matrix"
        if gap.kind == "no_case_lines":
            yield _finding(
                "table_missing_from_matrix",
                gap.table,
                "no case line says who may read and write it, so nothing proves its policies",
                f"add case lines for every command (allowed and denied) in {where} or a"
                " part file in policies/matrix/",
            )
        elif gap.kind == "function_without_rpc_line":
            yield _finding(
                "function_missing_from_matrix",
                gap.table,
                "PostgREST exposes it at /rest/v1/rpc, but no rpc line says which API roles"
                " may execute it, so nothing proves its grants",
                f"add an [[rpc]] line (function and allowed roles) in {where} or a part file"
                " in policies/matrix/, and revoke execute from the roles it does not list",
            )
        elif gap.kind == "policy_without_case_line":
            yield _finding(
                "policy_missing_from_matrix",
                f"{gap.table} ({gap.op})",
                f"a {gap.op} policy exists but no case line exercises it",
                f"add a {gap.op} case line for the table in {where}",
            )


# -- running ----------------------------------------------------------------------------------

_LintFunction = Callable[[_Context], Iterator[Finding]]
_CATALOG_LINTS: tuple[_LintFunction, ...] = (
    _tables_rls,
    _policy_lints,
    _functions,
    _views,
    _foreign_keys,
    _public_buckets,
)


def _accept(finding: Finding, config: AuditConfig) -> Finding:
    reason = config.accepted.get((finding.lint, finding.object))
    if reason is None:
        return finding
    where = config.path.name if config.path else "the audit config"
    detail = f"accepted in {where}: {reason} ({finding.detail})"
    return replace(finding, level="info", detail=detail)


def run_audit(
    conn: Conn, config: AuditConfig | None = None, matrix: Matrix | None = None
) -> AuditReport:
    """Run every lint against ``conn``'s database; findings sorted by level, lint, object.

    Reads the catalog with ``search_path = ''`` so deparsed policies show schema-qualified
    names (``auth.uid()``, never a bare ``uid()``), inside a transaction rolled back at the end.
    """
    config = config or AuditConfig()
    findings: list[Finding] = []
    with conn.transaction(force_rollback=True):
        conn.execute("set local search_path = ''")
        roles = conn.execute(
            "select count(*) = 2 from pg_roles where rolname in ('anon', 'authenticated')"
        ).fetchone()
        ctx = _Context(conn, config.exposed_schemas, bool(roles and roles[0]))
        for lint in _CATALOG_LINTS:
            findings.extend(lint(ctx))
        if matrix is not None:
            findings.extend(_matrix(ctx, matrix))
    findings = [_accept(f, config) for f in findings]
    findings.sort(key=lambda f: (LEVELS.index(f.level), f.lint, f.object))
    return AuditReport(findings)


def audit_project(
    conn: Conn, policies_dir: Path, exposed_schemas: tuple[str, ...] | None = None
) -> AuditReport:
    """Audit with the project's own files: ``audit.toml`` (exceptions) and ``matrix.toml``."""
    config = load_audit_config(policies_dir / "audit.toml")
    if exposed_schemas:
        config = replace(config, exposed_schemas=exposed_schemas)
    matrix_file = policies_dir / "matrix.toml"
    matrix = load_matrix(matrix_file) if matrix_file.is_file() else None
    return run_audit(conn, config, matrix)
