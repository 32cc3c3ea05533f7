"""Reading deparsed policy expressions (``pysync.rls._expr``): each per-request call is judged
by where it sits in the parse tree, on text as written and as PostgreSQL 15 and 17 print it."""

from __future__ import annotations

import re
from typing import Any, LiteralString, cast

import psycopg
import pytest
from psycopg import sql

from pysync.rls._expr import ExpressionError, bare_calls, is_always_true
from pysync.rls._lints_policies import _expression_lints, _Policy

Conn = psycopg.Connection[Any]

NOTES = (
    "create table public.notes (id uuid primary key default gen_random_uuid(), owner uuid,"
    ' editor uuid, body text, "auth.uid()" uuid);'
    " create table public.members (team uuid, member uuid, role text);"
)

# (expression, the bare calls in order): cases a text scan gets wrong or easily could.
CALLS = [
    pytest.param("(body = 'auth.uid()'::text)", [], id="string-literal"),
    pytest.param("(body = 'it''s auth.uid()'::text)", [], id="string-with-doubled-quote"),
    pytest.param(r"(body = E'it\'s auth.uid() ')", [], id="escape-string-backslash-quote"),
    pytest.param("(body = $$ auth.uid() $$)", [], id="dollar-quoted-string"),
    pytest.param("(owner = /* auth.uid() */ ( SELECT auth.uid() AS uid))", [], id="comment"),
    pytest.param('("owner auth.uid()" = auth.uid())', ["auth.uid()"], id="quoted-identifier"),
    pytest.param('("a "" auth.uid() "" b" = 1)', [], id="quoted-identifier-with-quote"),
    pytest.param(
        "((( SELECT auth.uid() AS uid) = owner) OR (auth.uid() = editor))",
        ["auth.uid()"],
        id="wrapped-next-to-bare",
    ),
    pytest.param(
        "(EXISTS ( SELECT 1 FROM members m WHERE ((m.member = auth.uid()) AND (m.team = owner))))",
        ["auth.uid()"],
        id="exists-where-is-bare",
    ),
    pytest.param(
        "(owner IN ( SELECT m.team FROM members m WHERE (m.member = ( SELECT auth.uid() AS uid))))",
        [],
        id="wrapped-inside-a-sub-select-where",
    ),
    pytest.param(
        "(owner = ( SELECT ( SELECT m.team FROM members m WHERE (m.member = auth.uid()))))",
        ["auth.uid()"],
        id="nested-sub-select-where-inside-a-select-list",
    ),
    pytest.param(
        "(owner = ( SELECT m.team FROM members m GROUP BY m.team"
        " HAVING (max(m.role) = (auth.jwt() ->> 'role'::text)) ORDER BY (auth.role())))",
        ["auth.jwt()", "auth.role()"],
        id="having-and-order-by-are-bare",
    ),
    pytest.param(
        "(owner = ((current_setting('request.jwt.claims'::text, true))::json ->> 'sub'::text)"
        "::uuid)",
        ["current_setting()"],
        id="claims-cast-bare",
    ),
    pytest.param(
        "(owner = ( SELECT ((current_setting('request.jwt.claims'::text, true))::json"
        " ->> 'sub'::text))::uuid)",
        [],
        id="claims-cast-wrapped",
    ),
    pytest.param("((auth.uid())::text = body)", ["auth.uid()"], id="cast-bare"),
    pytest.param("((( SELECT auth.uid() AS uid))::text = body)", [], id="cast-of-wrapped"),
    pytest.param(
        "CASE WHEN (auth.role() = 'anon'::text) THEN false"
        " ELSE (owner = ( SELECT auth.uid() AS uid)) END",
        ["auth.role()"],
        id="case-bare-condition",
    ),
    pytest.param(
        "( SELECT CASE WHEN ((auth.jwt() ->> 'role'::text) = 'admin'::text) THEN true"
        ' ELSE false END AS "case")',
        [],
        id="case-inside-a-select-list",
    ),
    pytest.param(
        "((auth.role() = 'x'::text) AND (current_setting(auth.email()) = body)"
        " AND (pg_catalog.current_setting('a'::text) = body))",
        ["auth.role()", "current_setting()", "auth.email()", "pg_catalog.current_setting()"],
        id="order-of-appearance",
    ),
    pytest.param(
        "(owner IN ( SELECT auth.uid() AS uid UNION SELECT m.team FROM members m"
        " WHERE (m.member = auth.uid())))",
        ["auth.uid()"],
        id="union-arms",
    ),
    pytest.param(
        "(owner = ANY (ARRAY( SELECT auth.uid() AS uid)))", [], id="array-sub-select-wrapped"
    ),
    pytest.param(
        "( SELECT ((m.member = auth.uid()) OR (m.role = 'admin'::text)) FROM members m"
        " WHERE (m.team = notes.owner))",
        ["auth.uid()"],
        id="select-list-of-a-sub-select-that-reads-a-table",
    ),
    pytest.param(
        "( SELECT ((m.member = ( SELECT auth.uid() AS uid)) OR (m.role = 'admin'::text))"
        " FROM members m WHERE (m.team = notes.owner))",
        [],
        id="wrapped-in-the-select-list-of-a-sub-select-that-reads-a-table",
    ),
    pytest.param(
        "(owner IN ( SELECT s.u FROM ( SELECT auth.uid() AS u) s))",
        ["auth.uid()"],
        id="from-sub-query-is-not-the-wrapping-pattern",
    ),
    pytest.param(
        '(owner = "auth"."uid"()) AND (editor = "AUTH"."UID"())',
        ["auth.uid()"],
        id="quoted-names-resolve-as-the-server-does",
    ),
    pytest.param("(owner = AUTH.UID())", ["auth.uid()"], id="unquoted-names-fold-to-lower-case"),
    pytest.param("", [], id="empty"),
]


@pytest.mark.parametrize(("expression", "bare"), CALLS)
def test_each_call_is_judged_by_its_place_in_the_tree(expression: str, bare: list[str]) -> None:
    assert bare_calls(expression) == bare


@pytest.mark.parametrize(
    ("expression", "always"),
    [
        ("((true))", True),
        ("'t'::boolean", True),
        ("'true'::boolean", True),
        ("'yes'::bool", True),
        ("(2 = 2)", True),
        ("('a'::text = 'a'::text)", True),
        ("'f'::boolean", False),
        ("'o'::boolean", False),
        ("'true'::text", False),
        ("(1 = 2)", False),
        ("(1 <> 1)", False),
        ("(NULL::integer = NULL::integer)", False),
        ("(owner = owner)", False),
        ("('1 = 1'::text IS NOT NULL)", False),
        ("(true AND (owner = ( SELECT auth.uid() AS uid)))", False),
    ],
)
def test_only_a_literal_truth_is_always_true(expression: str, always: bool) -> None:
    assert is_always_true(expression) is always


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("(owner = ", "cannot parse the policy expression: syntax error at end of input"),
        (
            "body = 'é' and owner = auth.uid( x y)",
            'cannot parse the policy expression: syntax error at or near "y" (character 36)',
        ),
        ("'unterminated", "cannot parse the policy expression: unterminated quoted string"),
        ("owner FROM notes", "it is not one expression"),
        ("true; drop table notes", "it is not one expression"),
        ("owner, editor", "it is not one expression"),
        ("owner AS o", "it is not one expression"),
        ("owner = auth.uid()\x00 OR true", "it contains a NUL character"),
    ],
)
def test_text_that_is_not_one_expression_is_a_clear_error(expression: str, message: str) -> None:
    for read in (bare_calls, is_always_true):
        with pytest.raises(ExpressionError, match=re.escape(message)):
            read(expression)


def test_depth_is_no_limit_short_of_the_parser_s_own() -> None:
    deep = "owner = " + "( SELECT " * 1000 + "auth.uid()" + ")" * 1000
    assert bare_calls(deep) == []
    assert bare_calls(
        deep.replace("( SELECT auth.uid()", "( SELECT 1 FROM t WHERE auth.uid()")
    ) == ["auth.uid()"]
    arms = " UNION ".join(
        ["SELECT auth.uid() AS uid"] * 3000 + ["SELECT 1 FROM t WHERE auth.uid()"]
    )
    assert bare_calls(f"owner IN ({arms})") == ["auth.uid()"]
    with pytest.raises(ExpressionError, match="memory exhausted"):
        bare_calls("owner = " + "( SELECT " * 10000 + "1" + ")" * 10000)


def test_an_unreadable_policy_is_a_note_not_a_crashed_audit() -> None:
    policy = _Policy(
        table="public.notes",
        name="Owners edit notes",
        permissive=True,
        command="update",
        roles=("authenticated",),
        using="(owner = ( SELECT auth.uid() AS uid))",
        check="(owner = auth.uid(",
        functions=(),
    )
    findings = list(_expression_lints(policy))
    assert [(f.level, f.lint, f.object) for f in findings] == [
        ("info", "auth_rls_initplan", '"Owners edit notes" on public.notes')
    ]
    assert findings[0].detail == (
        "cannot parse the policy expression: syntax error at end of input;"
        " per-row calls and always-true expressions were not checked"
    )


# -- expressions as the server prints them (PostgreSQL 15 and, in make test, 17) ---------------

# (the policy's expression as a developer writes it, the bare calls in the server's text)
WRITTEN: list[tuple[LiteralString, list[str]]] = [
    ("owner = (select auth.uid())", []),
    ("owner = auth.uid()", ["auth.uid()"]),
    ("body <> 'auth.uid()' and \"auth.uid()\" = (select auth.uid())", []),
    ("(select auth.uid()) = owner or auth.uid() = editor", ["auth.uid()"]),
    (
        "owner = (current_setting('request.jwt.claims', true)::json ->> 'sub')::uuid",
        ["current_setting()"],
    ),
    (
        "owner = (select (current_setting('request.jwt.claims', true)::json ->> 'sub')::uuid)",
        [],
    ),
    (
        "exists (select 1 from public.members m where m.team = notes.owner"
        " and m.member = auth.uid())",
        ["auth.uid()"],
    ),
    (
        "owner in (select m.team from public.members m where m.member = (select auth.uid())"
        " and m.role = (select auth.jwt() ->> 'role'))",
        [],
    ),
    (
        "case when auth.role() = 'anon' then false else owner = (select auth.uid()) end",
        ["auth.role()"],
    ),
    ("(select case when auth.jwt() ->> 'role' = 'admin' then true else false end)", []),
    ("auth.uid()::text = body", ["auth.uid()"]),
    ("(select auth.uid())::text = body", []),
    ("owner = any(array(select auth.uid()))", []),
    (
        "(select m.member = auth.uid() or m.role = 'admin' from public.members m"
        " where m.team = notes.owner limit 1)",
        ["auth.uid()"],
    ),
    (
        "(select m.member = (select auth.uid()) or m.role = 'admin' from public.members m"
        " where m.team = notes.owner limit 1)",
        [],
    ),
    (
        "owner in (select auth.uid() union select m.team from public.members m"
        " where m.member = auth.uid())",
        ["auth.uid()"],
    ),
]


def _deparsed(conn: Conn, table: str, name: str) -> str:
    row = conn.execute(
        "select pg_get_expr(p.polqual, p.polrelid) from pg_policy p"
        " where p.polrelid = %s::regclass and p.polname = %s",
        (table, name),
    ).fetchone()
    assert row is not None and row[0] is not None
    return str(row[0])


@pytest.mark.sql_suite
def test_expressions_as_the_server_prints_them(conn: Conn) -> None:
    conn.execute(NOTES)
    for number, (written, bare) in enumerate(WRITTEN):
        conn.execute(
            sql.SQL("create policy {} on public.notes for select using ({})").format(
                sql.Identifier(f"p{number}"), sql.SQL(written)
            )
        )
        printed = _deparsed(conn, "public.notes", f"p{number}")
        assert bare_calls(printed) == bare, printed


@pytest.mark.sql_suite
def test_every_shipped_policy_is_read_and_unwrapping_a_call_is_caught(app_conn: Conn) -> None:
    """Real policy text from the migrated database: every expression parses, no call is bare,
    and the same policy with each ``(select auth.uid())`` unwrapped reports each of them."""
    rows = app_conn.execute(
        "select n.nspname, c.relname, p.polname, expr from pg_policy p"
        " join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace,"
        " lateral (values (pg_get_expr(p.polqual, p.polrelid)),"
        "                 (pg_get_expr(p.polwithcheck, p.polrelid))) as e(expr)"
        " where expr is not null order by 1, 2, 3"
    ).fetchall()
    assert len(rows) > 50
    wrapped = "( SELECT auth.uid() AS uid)"
    unwrapped_policies = 0
    for schema, table, name, expression in rows:
        assert bare_calls(expression) == [], (table, name, expression)
        assert is_always_true(expression) is (expression == "true"), (table, name, expression)
        count = expression.count(wrapped)
        if not count:
            continue
        with app_conn.transaction(force_rollback=True):
            app_conn.execute(
                sql.SQL("create policy pysync_unwrapped on {} using ({})").format(
                    sql.Identifier(schema, table),
                    # The server's own text for the policy, with the wrapping taken off.
                    sql.SQL(cast(LiteralString, expression.replace(wrapped, "auth.uid()"))),
                )
            )
            printed = _deparsed(app_conn, f"{schema}.{table}", "pysync_unwrapped")
        assert bare_calls(printed) == ["auth.uid()"] * count, printed
        unwrapped_policies += 1
    assert unwrapped_policies > 20
