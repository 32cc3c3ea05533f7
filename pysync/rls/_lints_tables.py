"""Lints on tables, views, indexes and foreign keys: what the API can read without RLS, and
the table shapes that make RLS (and everything else) slow."""

from __future__ import annotations

from collections.abc import Iterator

from psycopg import sql

from pysync.rls._audit_core import Finding, LintContext, finding

__all__ = ["TABLE_LINTS"]

_NOT_EXTENSION_OWNED = (
    " not exists (select 1 from pg_catalog.pg_depend d where d.classid = 'pg_class'::regclass"
    "  and d.objid = c.oid and d.deptype = 'e')"
)
_PROJECT_SCHEMA = " n.nspname <> all(%(managed)s) and n.nspname !~ '^pg_'"
_API_CAN_SELECT = (
    " (pg_catalog.has_table_privilege('anon', c.oid, 'select')"
    "  or pg_catalog.has_table_privilege('authenticated', c.oid, 'select'))"
)
_INVOKER = (
    " lower(coalesce(c.reloptions::text, '{}'))::text[] && array['security_invoker=1',"
    " 'security_invoker=true', 'security_invoker=yes', 'security_invoker=on']"
)

#: Column names that usually hold secrets or personal data (splinter's categories: credentials,
#: personal and financial identifiers, health records, device ids, keys, biometrics).
SENSITIVE_COLUMNS = frozenset(
    (
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secret_key",
        "private_key",
        "api_key",
        "apikey",
        "auth_key",
        "token",
        "jwt",
        "access_token",
        "refresh_token",
        "oauth_token",
        "session_token",
        "bearer_token",
        "auth_code",
        "session_id",
        "session_key",
        "session_secret",
        "recovery_code",
        "backup_code",
        "verification_code",
        "otp",
        "two_factor",
        "2fa_secret",
        "2fa_code",
        "ssn",
        "social_security",
        "social_security_number",
        "driver_license",
        "drivers_license",
        "license_number",
        "passport_number",
        "passport_id",
        "national_id",
        "tax_id",
        "credit_card",
        "card_number",
        "cvv",
        "cvc",
        "cvn",
        "bank_account",
        "account_number",
        "routing_number",
        "iban",
        "swift_code",
        "bic",
        "health_record",
        "medical_record",
        "patient_id",
        "insurance_number",
        "health_insurance",
        "medical_insurance",
        "treatment",
        "mac_address",
        "macaddr",
        "imei",
        "device_uuid",
        "pgp_key",
        "gpg_key",
        "ssh_key",
        "certificate",
        "license_key",
        "activation_key",
        "facial_recognition",
    )
)

#: Types whose values are OIDs that pg_upgrade cannot carry to a new cluster.
_REG_TYPES = [
    "regcollation",
    "regconfig",
    "regdictionary",
    "regnamespace",
    "regoper",
    "regoperator",
    "regproc",
    "regprocedure",
]


def _q(*parts: str) -> sql.Composed:
    """A query from literal text and the fragments above (all constants of this module)."""
    return sql.Composed([sql.SQL(p) for p in parts])


def _params(ctx: LintContext) -> dict[str, object]:
    return {"managed": ctx.managed, "exposed": list(ctx.exposed)}


def _rls_state(ctx: LintContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        _q(
            "select c.oid::regclass::text, n.nspname = any(%(exposed)s), c.relkind::text,"
            " c.relrowsecurity,"
            " exists (select 1 from pg_catalog.pg_policy p where p.polrelid = c.oid)"
            " from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'p') and (n.nspname = any(%(exposed)s) or",
            _PROJECT_SCHEMA,
            ") and",
            _NOT_EXTENSION_OWNED,
            " order by 1",
        ),
        _params(ctx),
    ).fetchall()
    for table, exposed, kind, rls, has_policy in rows:
        if not rls and exposed:
            yield finding(
                "rls_disabled_in_public",
                table,
                "row level security is disabled: anyone with the anon key can read and write"
                " every row through the API",
                f"alter table {table} enable row level security; then write its policies"
                " in policies/<domain>.sql",
            )
        if not rls and has_policy and kind == "r":
            yield finding(
                "policy_exists_rls_disabled",
                table,
                "the table has policies, but row level security is off, so none of them"
                " applies: every role with a grant reads and writes every row",
                f"alter table {table} enable row level security;",
            )
        if rls and not has_policy and kind == "r":
            yield finding(
                "rls_enabled_no_policy",
                table,
                "RLS is on but the table has no policy, so the API roles see and change"
                " nothing; fine for a table only service_role uses, if that is intended",
                "write its policies in policies/<domain>.sql, or accept the finding in"
                " policies/audit.toml saying who uses the table",
            )


def _no_primary_key(ctx: LintContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        _q(
            "select c.oid::regclass::text from pg_catalog.pg_class c"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind = 'r' and",
            _PROJECT_SCHEMA,
            " and",
            _NOT_EXTENSION_OWNED,
            " and not exists (select 1 from pg_catalog.pg_index i"
            "  where i.indrelid = c.oid and i.indisprimary) order by 1",
        ),
        _params(ctx),
    ).fetchall()
    for (table,) in rows:
        yield finding(
            "no_primary_key",
            table,
            "without a primary key rows cannot be told apart: logical replication, the"
            " Realtime change feed and the API's updates by key all need one",
            f"alter table {table} add primary key (…);",
        )


def _indexes(ctx: LintContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        _q(
            "select c.oid::regclass::text, quote_ident(n.nspname),"
            " array_agg(quote_ident(x.relname) order by x.relname)"
            " from pg_catalog.pg_index i join pg_catalog.pg_class x on x.oid = i.indexrelid"
            " join pg_catalog.pg_class c on c.oid = i.indrelid"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'm') and",
            _PROJECT_SCHEMA,
            " and",
            _NOT_EXTENSION_OWNED,
            " group by c.oid, n.nspname, replace(pg_catalog.pg_get_indexdef(i.indexrelid),"
            "  ' ' || quote_ident(x.relname) || ' ', ' ')"
            " having count(*) > 1 order by 1, 2",
        ),
        _params(ctx),
    ).fetchall()
    for table, schema, names in rows:
        yield finding(
            "duplicate_index",
            f"{', '.join(names)} on {table}",
            "the indexes are identical: every write maintains each of them, reads use one",
            f"drop index {schema}.{names[-1]};",
        )
    rows = ctx.conn.execute(
        _q(
            "select s.indexrelid::regclass::text, c.oid::regclass::text"
            " from pg_catalog.pg_stat_user_indexes s join pg_catalog.pg_index i"
            "  on i.indexrelid = s.indexrelid"
            " join pg_catalog.pg_class c on c.oid = s.relid"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where s.idx_scan = 0 and not i.indisunique and not i.indisprimary"
            " and",
            _PROJECT_SCHEMA,
            " and",
            _NOT_EXTENSION_OWNED,
            " order by 2, 1",
        ),
        _params(ctx),
    ).fetchall()
    for index, table in rows:
        yield finding(
            "unused_index",
            f"{index} on {table}",
            "no query has used the index since the statistics were last reset, yet every"
            " write maintains it (a fresh database has used none: judge on production)",
            f"drop index {index}; once production statistics agree",
        )


def _table_bloat(ctx: LintContext) -> Iterator[Finding]:
    """Pages the table holds against the pages its live rows need (row width from the
    planner's statistics, so only analyzed tables are judged)."""
    rows = ctx.conn.execute(
        _q(
            "with sizes as ("
            " select c.oid::regclass::text as tbl, c.relpages::numeric as pages,"
            "  current_setting('block_size')::numeric as bs,"
            "  ceil(greatest(c.reltuples, 0)::numeric * (28 + w.width)"
            "   / (current_setting('block_size')::numeric - 24)) as needed"
            " from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " join lateral (select sum((1 - s.null_frac) * s.avg_width)::numeric as width"
            "  from pg_catalog.pg_stats s"
            "  where s.schemaname = n.nspname and s.tablename = c.relname)"
            "  w on w.width is not null"
            " where c.relkind in ('r', 'm') and c.relpages > 0 and",
            _PROJECT_SCHEMA,
            ")"
            " select tbl, round(100 * (pages - needed) / pages, 1), (pages - needed) * bs"
            " from sizes"
            " where (pages - needed) / pages > 0.7 and (pages - needed) * bs > %(min_bytes)s"
            " order by 1",
        ),
        {**_params(ctx), "min_bytes": ctx.bloat_min_bytes},
    ).fetchall()
    for table, percent, waste in rows:
        yield finding(
            "table_bloat",
            table,
            f"about {percent}% of its pages ({int(waste) // 1048576} MiB) hold dead or empty"
            " space, which every sequential scan still reads",
            f"vacuum full {table}; (it locks the table: plan for the downtime) and tune"
            " autovacuum for it",
        )


def _api_relations(ctx: LintContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        _q(
            "select c.oid::regclass::text, c.relkind::text from pg_catalog.pg_class c"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('m', 'f') and n.nspname = any(%(exposed)s)"
            " and n.nspname <> all(%(managed)s) and",
            _API_CAN_SELECT,
            " and",
            _NOT_EXTENSION_OWNED,
            " order by 1",
        ),
        _params(ctx),
    ).fetchall()
    for relation, kind in rows:
        what = "materialized view" if kind == "m" else "foreign table"
        yield finding(
            "materialized_view_in_api" if kind == "m" else "foreign_table_in_api",
            relation,
            f"the API roles can select the {what}, and a {what} has no row level security:"
            " every row is readable through the API",
            f"revoke all on {relation} from anon, authenticated; or move it out of the"
            " exposed schemas",
        )


def _auth_users_exposed(ctx: LintContext) -> Iterator[Finding]:
    if not ctx.has_api_roles:
        return
    rows = ctx.conn.execute(
        _q(
            "select distinct c.oid::regclass::text from pg_catalog.pg_depend d"
            " join pg_catalog.pg_rewrite r"
            "  on r.oid = d.objid and d.classid = 'pg_rewrite'::regclass"
            " join pg_catalog.pg_class c on c.oid = r.ev_class"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where d.refobjid = to_regclass('auth.users') and d.deptype = 'n'"
            " and n.nspname = any(%(exposed)s) and",
            _API_CAN_SELECT,
            " and (c.relkind = 'm' or (c.relkind = 'v' and (not (",
            _INVOKER,
            ")"
            "  or not (select u.relrowsecurity from pg_catalog.pg_class u"
            "   where u.oid = to_regclass('auth.users')))))"
            " order by 1",
        ),
        _params(ctx),
    ).fetchall()
    for (view,) in rows:
        yield finding(
            "auth_users_exposed",
            view,
            "the API roles can read it, and it reads auth.users past any row level security:"
            " every user's email, phone and metadata are one request away",
            f"revoke all on {view} from anon, authenticated; or move it to a schema the"
            " API does not expose (or make it security_invoker over a table with RLS)",
        )


def _sensitive_columns(ctx: LintContext) -> Iterator[Finding]:
    if not ctx.has_api_roles:
        return
    rows = ctx.conn.execute(
        _q(
            "select c.oid::regclass::text, array_agg(a.attname::text order by a.attname)"
            " from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0"
            "  and not a.attisdropped"
            " where c.relkind = 'r' and not c.relrowsecurity and n.nspname = any(%(exposed)s)"
            " and n.nspname <> all(%(managed)s) and",
            _API_CAN_SELECT,
            " and replace(lower(a.attname), '-', '_') = any(%(sensitive)s) group by 1 order by 1",
        ),
        {**_params(ctx), "sensitive": sorted(SENSITIVE_COLUMNS)},
    ).fetchall()
    for table, columns in rows:
        yield finding(
            "sensitive_columns_exposed",
            table,
            "the API can read every row of the table (no row level security), and it has"
            f" columns that look sensitive: {', '.join(columns)}",
            f"alter table {table} enable row level security; and write its policies",
        )


def _reg_types(ctx: LintContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        "select c.oid::regclass::text, quote_ident(a.attname), t.typname::text"
        " from pg_catalog.pg_attribute a join pg_catalog.pg_class c on c.oid = a.attrelid"
        " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
        " join pg_catalog.pg_type t on t.oid = a.atttypid"
        " where a.attnum > 0 and not a.attisdropped and t.typname = any(%(types)s)"
        " and t.typnamespace = 'pg_catalog'::regnamespace"
        " and n.nspname not in ('pg_catalog', 'information_schema', 'pgsodium')"
        " and n.nspname !~ '^pg_' order by 1, 2",
        {"types": _REG_TYPES},
    ).fetchall()
    for relation, column, type_name in rows:
        yield finding(
            "unsupported_reg_types",
            f"{relation}.{column}",
            f"a {type_name} column stores OIDs, which pg_upgrade cannot carry to a new"
            " major version: the project cannot be upgraded while it exists",
            f"alter table {relation} alter column {column} type text using {column}::text;",
        )


def _queues(ctx: LintContext) -> Iterator[Finding]:
    if "pgmq_public" not in ctx.exposed or not ctx.has_api_roles:
        return
    rows = ctx.conn.execute(
        _q(
            "select c.oid::regclass::text from pg_catalog.pg_class c"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'pgmq' and c.relkind in ('r', 'p') and c.relname like 'q\\_%'"
            " and not c.relrowsecurity and",
            _API_CAN_SELECT,
            " order by 1",
        ),
    ).fetchall()
    for (queue,) in rows:
        yield finding(
            "insecure_queue_exposed_in_api",
            queue,
            "pgmq_public is exposed, and this queue table has no row level security: anyone"
            " with a grant reads and sends its messages through the API",
            f"alter table {queue} enable row level security; and write its policies",
        )


def _fkey_to_auth_unique(ctx: LintContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        "select quote_ident(k.conname), k.conrelid::regclass::text, k.confrelid::regclass::text"
        " from pg_catalog.pg_constraint k join pg_catalog.pg_class r on r.oid = k.confrelid"
        " join pg_catalog.pg_index i on i.indexrelid = k.conindid"
        " where k.contype = 'f' and r.relnamespace = to_regnamespace('auth')"
        " and i.indisunique and not i.indisprimary order by 2, 1"
    ).fetchall()
    for constraint, table, target in rows:
        yield finding(
            "fkey_to_auth_unique",
            f"{constraint} on {table}",
            f"the foreign key points at a unique key of {target} other than its primary key;"
            " Supabase may change or drop that key in an auth upgrade, and the upgrade fails",
            f"alter table {table} drop constraint {constraint}; and reference {target}'s"
            " primary key instead",
        )


def _graphql(ctx: LintContext) -> Iterator[Finding]:
    if not ctx.graphql or not ctx.has_api_roles:
        return
    for role, lint in (
        ("anon", "pg_graphql_anon_table_exposed"),
        ("authenticated", "pg_graphql_authenticated_table_exposed"),
    ):
        rows = ctx.conn.execute(
            _q(
                "select c.oid::regclass::text, c.relkind::text from pg_catalog.pg_class c"
                " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
                " where c.relkind in ('r', 'v', 'm', 'f') and",
                _PROJECT_SCHEMA,
                " and exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = c.oid"
                "  and a.attnum > 0 and not a.attisdropped"
                "  and pg_catalog.has_column_privilege(%(role)s, c.oid, a.attnum, 'select'))"
                " order by 1",
            ),
            {**_params(ctx), "role": role},
        ).fetchall()
        for relation, kind in rows:
            what = {"r": "table", "v": "view", "m": "materialized view"}.get(kind, "foreign table")
            yield finding(
                lint,
                relation,
                f"{role} can select the {what}, so /graphql/v1 describes it (its columns and"
                " relationships) to every caller with that role, whatever RLS then returns",
                f"revoke all on {relation} from {role}; if {role} should not see it, or"
                " accept the finding saying why it is public",
            )


def _views(ctx: LintContext) -> Iterator[Finding]:
    if not ctx.has_api_roles:
        return
    rows = ctx.conn.execute(
        _q(
            "with recursive deps (view_oid, rel) as ("
            "  select v.oid, d.refobjid from pg_catalog.pg_class v"
            "  join pg_catalog.pg_rewrite w on w.ev_class = v.oid"
            "  join pg_catalog.pg_depend d"
            "   on d.classid = 'pg_rewrite'::regclass and d.objid = w.oid"
            "   and d.refclassid = 'pg_class'::regclass and d.refobjid <> v.oid"
            "  where v.relkind = 'v'"
            "  union"
            "  select deps.view_oid, d.refobjid from deps"
            "  join pg_catalog.pg_class c on c.oid = deps.rel and c.relkind = 'v'"
            "  join pg_catalog.pg_rewrite w on w.ev_class = c.oid"
            "  join pg_catalog.pg_depend d"
            "   on d.classid = 'pg_rewrite'::regclass and d.objid = w.oid"
            "   and d.refclassid = 'pg_class'::regclass and d.refobjid <> c.oid"
            ")"
            " select c.oid::regclass::text, array(select distinct r.oid::regclass::text"
            "  from deps join pg_catalog.pg_class r on r.oid = deps.rel and r.relrowsecurity"
            "  where deps.view_oid = c.oid order by 1)"
            " from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind = 'v' and n.nspname = any(%(exposed)s)"
            " and n.nspname <> all(%(managed)s) and",
            _API_CAN_SELECT,
            " and",
            _NOT_EXTENSION_OWNED,
            " and not (",
            _INVOKER,
            ") order by 1",
        ),
        _params(ctx),
    ).fetchall()
    for view, tables in rows:
        past = (
            "reads " + ", ".join(tables) + " past their row level security"
            if tables
            else "reads its tables with its owner's rights, past any row level security a"
            " table gets later"
        )
        yield finding(
            "security_definer_view",
            view,
            f"the view runs with its owner's rights, so the API {past}",
            f"alter view {view} set (security_invoker = true);",
        )


def _foreign_keys(ctx: LintContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        _q(
            "select k.conrelid::regclass::text, quote_ident(k.conname),"
            " array(select quote_ident(a.attname) from unnest(k.conkey) with ordinality as x(n, i)"
            "       join pg_catalog.pg_attribute a on a.attrelid = k.conrelid and a.attnum = x.n"
            "       order by x.i)"
            " from pg_catalog.pg_constraint k join pg_catalog.pg_class c on c.oid = k.conrelid"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where k.contype = 'f' and k.conparentid = 0 and",
            _PROJECT_SCHEMA,
            " and not exists ("
            "  select 1 from pg_catalog.pg_index i where i.indrelid = k.conrelid"
            "   and i.indpred is null and i.indisvalid and i.indnkeyatts >= cardinality(k.conkey)"
            "   and (select array_agg(x order by x)"
            "        from unnest((i.indkey::int2[])[0:cardinality(k.conkey) - 1]) as x)"
            "     = (select array_agg(x order by x) from unnest(k.conkey) as x))"
            " order by 1, 2",
        ),
        _params(ctx),
    ).fetchall()
    for table, constraint, columns in rows:
        shown = ", ".join(columns)
        yield finding(
            "unindexed_foreign_keys",
            f"{constraint} on {table}",
            f"no index starts with ({shown}) and covers every row (partial indexes do"
            " not), so joins, policy lookups and cascades from the referenced table scan"
            " the whole table",
            f"create index on {table} ({shown});",
        )


TABLE_LINTS = (
    _rls_state,
    _no_primary_key,
    _indexes,
    _table_bloat,
    _api_relations,
    _auth_users_exposed,
    _sensitive_columns,
    _reg_types,
    _queues,
    _fkey_to_auth_unique,
    _graphql,
    _views,
    _foreign_keys,
)
