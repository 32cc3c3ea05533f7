"""What every lint of ``pysync rls audit`` shares: the finding, the lint table, the context.

The lint names and default levels are Supabase's database linter's (splinter, ``lints/*.sql``)
wherever splinter has the lint, so a finding here and one in the dashboard's Security and
Performance advisors compare line by line; the lints splinter lacks are this project's own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg

__all__ = [
    "API_ROLES",
    "LEVELS",
    "LINTS",
    "MANAGED_SCHEMAS",
    "SPLINTER_LINTS",
    "Conn",
    "Finding",
    "LintContext",
    "finding",
]

Conn = psycopg.Connection[Any]

LEVELS = ("error", "warn", "info")
API_ROLES = ("anon", "authenticated")

#: splinter's lints: name -> (level, what it guards against). Levels are splinter's.
SPLINTER_LINTS: dict[str, tuple[str, str]] = {
    "unindexed_foreign_keys": ("info", "a foreign key has no index that starts with its columns"),
    "auth_users_exposed": ("error", "an API view or materialized view exposes auth.users"),
    "auth_rls_initplan": ("warn", "a policy calls auth.*() or current_setting() per row"),
    "no_primary_key": ("info", "a table has no primary key"),
    "unused_index": ("info", "an index has never been scanned"),
    "multiple_permissive_policies": ("warn", "several permissive policies per role and command"),
    "policy_exists_rls_disabled": ("error", "a table has policies but row level security is off"),
    "rls_enabled_no_policy": ("info", "RLS is on but no policy lets any role in"),
    "duplicate_index": ("warn", "two indexes of a table are the same"),
    "security_definer_view": ("error", "an exposed view runs with its owner's rights"),
    "function_search_path_mutable": ("warn", "a function's search_path is not pinned"),
    "rls_disabled_in_public": ("error", "a table the API exposes has row level security off"),
    "extension_in_public": ("warn", "an extension is installed in the public schema"),
    "rls_references_user_metadata": ("error", "a policy trusts user-editable metadata"),
    "materialized_view_in_api": ("warn", "the API can read a materialized view (no RLS)"),
    "foreign_table_in_api": ("warn", "the API can read a foreign table (no RLS)"),
    "unsupported_reg_types": ("warn", "a column has a reg* type pg_upgrade cannot carry"),
    "insecure_queue_exposed_in_api": ("error", "a pgmq queue without RLS is exposed"),
    "table_bloat": ("info", "a table holds far more dead space than live rows"),
    "fkey_to_auth_unique": ("error", "a foreign key points at a non-primary unique key in auth"),
    "extension_versions_outdated": ("warn", "an extension is older than the version available"),
    "sensitive_columns_exposed": ("error", "an exposed table without RLS has sensitive columns"),
    "rls_policy_always_true": ("warn", "a write policy lets every row through"),
    "public_bucket_allows_listing": ("warn", "anyone can list the files of a public bucket"),
    "pg_graphql_anon_table_exposed": ("warn", "GraphQL shows anon a table it can select"),
    "pg_graphql_authenticated_table_exposed": (
        "warn",
        "GraphQL shows signed-in users a table they can select",
    ),
    "anon_security_definer_function_executable": ("warn", "anon may call a definer function"),
    "authenticated_security_definer_function_executable": (
        "warn",
        "signed-in users may call a definer function",
    ),
}

#: Every lint, its default level and what it guards against (docs/rls.md explains each).
LINTS: dict[str, tuple[str, str]] = {
    **SPLINTER_LINTS,
    "security_definer_search_path_mutable": ("error", "a definer function's search_path is open"),
    "table_missing_from_matrix": ("error", "a public table has no access matrix case lines"),
    "policy_missing_from_matrix": ("error", "a table's policy command has no matrix case line"),
    "function_missing_from_matrix": ("error", "a public function has no matrix rpc line"),
    "policy_helper_replanned": ("warn", "a policy calls a SQL helper planned again per statement"),
}

#: Schemas Supabase (or the local emulation, ``pysync_local``) owns: their objects are not the
#: project's to fix (splinter skips the same ones).
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
        "pgmq",
        "pgroonga",
        "repack",
        "tiger",
        "topology",
        "_timescaledb_cache",
        "_timescaledb_catalog",
        "_timescaledb_config",
        "_timescaledb_internal",
        "supabase_functions",
        "supabase_migrations",
        "_analytics",
        "_supavisor",
        "information_schema",
        "pg_catalog",
        "pysync_local",
    }
)


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
class LintContext:
    """What a lint reads besides the catalog."""

    conn: Conn
    #: PostgREST's ``db-schemas``.
    exposed: tuple[str, ...]
    #: ``anon`` and ``authenticated`` exist (a bare PostgreSQL has neither).
    has_api_roles: bool
    #: The GraphQL endpoint serves this database (pg_graphql installed, or said so).
    graphql: bool
    #: ``table_bloat`` reports a table only above this much wasted space.
    bloat_min_bytes: int

    @property
    def managed(self) -> list[str]:
        return sorted(MANAGED_SCHEMAS)


def finding(lint: str, obj: str, detail: str, fix: str) -> Finding:
    return Finding(level=LINTS[lint][0], lint=lint, object=obj, detail=detail, fix=fix)
