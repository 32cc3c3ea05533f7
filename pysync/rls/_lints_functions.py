"""Lints on functions and extensions: definer functions the API can call, open search paths,
extensions in ``public`` or behind their available version."""

from __future__ import annotations

from collections.abc import Iterator

from pysync.rls._audit_core import API_ROLES, Finding, LintContext, finding

__all__ = ["FUNCTION_LINTS"]

_EXECUTABLE_LINTS = {
    "anon": "anon_security_definer_function_executable",
    "authenticated": "authenticated_security_definer_function_executable",
}
_WHO = {"anon": "anyone with the anon key", "authenticated": "any signed-in user"}


def _functions(ctx: LintContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        "select p.oid::regprocedure::text, n.nspname = any(%(managed)s), p.prosecdef,"
        " exists (select 1 from unnest(coalesce(p.proconfig, '{}')) as s"
        "         where s like 'search_path=%%'),"
        " n.nspname = any(%(exposed)s),"
        " array(select r from unnest(%(roles)s::text[]) as r"
        "  where to_regrole(r) is not null and has_function_privilege(r, p.oid, 'execute'))"
        " from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname !~ '^pg_' and n.nspname <> 'information_schema'"
        " and not exists (select 1 from pg_catalog.pg_depend d"
        "  where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')"
        " order by 1",
        {"managed": ctx.managed, "exposed": list(ctx.exposed), "roles": list(API_ROLES)},
    ).fetchall()
    for function, managed, definer, fixed_path, exposed, executors in rows:
        if managed:
            continue
        if not fixed_path:
            yield finding(
                "function_search_path_mutable",
                function,
                "the function resolves names through the caller's search_path, so what it"
                " calls depends on who calls it",
                f"alter function {function} set search_path = ''; and schema-qualify every"
                " name in its body",
            )
            if definer:
                yield finding(
                    "security_definer_search_path_mutable",
                    function,
                    "runs with its owner's rights but resolves names through the caller's"
                    " search_path, so a caller can substitute their own objects",
                    f"alter function {function} set search_path = ''; and schema-qualify"
                    " every name in its body",
                )
        if definer and exposed:
            for role in executors:
                yield finding(
                    _EXECUTABLE_LINTS[role],
                    function,
                    f"{_WHO[role]} can call it over the API (/rest/v1/rpc), and it runs with"
                    " its owner's rights, past RLS",
                    f"revoke execute on function {function} from public, {role}; or keep the"
                    " definer body in the private schema behind a security invoker wrapper",
                )


def _extensions(ctx: LintContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        "select e.extname::text, e.extnamespace::regnamespace::text, e.extversion,"
        " a.default_version"
        " from pg_catalog.pg_extension e"
        " left join pg_catalog.pg_available_extensions a on a.name = e.extname"
        " order by 1"
    ).fetchall()
    versions = {
        (name, version)
        for name, version in ctx.conn.execute(
            "select name::text, version from pg_catalog.pg_available_extension_versions"
        )
    }
    for name, schema, installed, default in rows:
        if schema == "public" and name != "plpgsql":
            yield finding(
                "extension_in_public",
                name,
                "its functions, types and operators sit in public, where the API exposes"
                " them and where they clash with the project's own names",
                f"drop extension {name}; create extension {name} with schema extensions;"
                " (or alter extension … set schema extensions, if it is relocatable)",
            )
        if default and installed != default and (name, installed) in versions:
            yield finding(
                "extension_versions_outdated",
                name,
                f"version {installed} is installed, {default} is available: older versions"
                " may carry fixed vulnerabilities",
                f"alter extension {name} update;",
            )


FUNCTION_LINTS = (_functions, _extensions)
