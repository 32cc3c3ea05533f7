"""Read deparsed policy expressions (``pg_get_expr`` of ``pg_policy.polqual``/``polwithcheck``).

PostgreSQL prints a wrapped call as ``( SELECT auth.uid() AS uid)``; a bare one as
``auth.uid()``. Text matching cannot tell which of several calls is wrapped (one wrapped call
would excuse a bare one elsewhere, a string literal could look like a call), so the expression
is parsed with PostgreSQL's own grammar (pglast) and every call is judged by where it sits in
the tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

import pglast
from pglast import ast, enums, parser

from pysync.errors import PysyncError

__all__ = ["ExpressionError", "bare_calls", "is_always_true"]

#: Functions that read the request (JWT claims, settings): cheap once, costly once per row.
PER_REQUEST_FUNCTIONS = (
    "auth.uid",
    "auth.jwt",
    "auth.role",
    "auth.email",
    "current_setting",
    "pg_catalog.current_setting",
)

#: What ``SELECT `` adds in front of the expression, to point errors into the expression.
_PREFIX = "SELECT "

#: Spellings PostgreSQL's ``boolin`` reads as true (any case, prefixes of ``true``/``yes``).
_TRUE_WORDS = ("true", "yes")


class ExpressionError(PysyncError):
    """A policy expression that PostgreSQL's grammar (as pglast knows it) cannot read as one
    expression: the audit reports it instead of guessing."""


@dataclass(frozen=True)
class _Call:
    location: int
    text: str


@dataclass(frozen=True)
class _Select:
    """A select still to walk, and whether it is a sub-link's (or an arm of one's)."""

    stmt: ast.SelectStmt
    sublink: bool


def _parse(expression: str) -> object:
    """The tree of ``expression``, parsed as the one item of a select list.

    Anything that is not exactly one expression (a ``FROM`` clause, a second statement, a
    second column) is refused: the text would otherwise be judged as something it is not.
    """
    if "\x00" in expression:
        # libpg_query reads a C string: the text would end there, unseen.
        raise ExpressionError("cannot read the policy expression: it contains a NUL character")
    try:
        statements = pglast.parse_sql(_PREFIX + expression)
    except parser.ParseError as exc:
        message, location = (*exc.args, None)[:2]
        where = (
            f" (character {location - len(_PREFIX) + 1})"
            if isinstance(location, int) and location >= len(_PREFIX)
            else ""
        )
        raise ExpressionError(f"cannot parse the policy expression: {message}{where}") from exc
    select = statements[0].stmt if len(statements) == 1 else None
    if not _is_one_expression(select):
        raise ExpressionError(
            "cannot read the policy expression: it is not one expression"
            " (it has a FROM clause, a second statement or a second column)"
        )
    return select.targetList[0].val


def _is_one_expression(select: object) -> TypeGuard[ast.SelectStmt]:
    """Whether ``select`` is ``SELECT <expr>`` and nothing more."""
    if not isinstance(select, ast.SelectStmt) or len(select.targetList or ()) != 1:
        return False
    clauses = [
        name
        for name in select
        if name != "targetList" and isinstance(getattr(select, name), (ast.Node, tuple))
    ]
    return not clauses and select.targetList[0].name is None


def _name(call: ast.FuncCall) -> str:
    return ".".join(part.sval for part in call.funcname)


def _bare(tree: object) -> list[_Call]:
    """The per-request calls under ``tree`` that are not wrapped, in no particular order.

    A work list, not recursion: a deeply nested expression must not hit Python's recursion
    limit. Each item carries whether the nearest select clause around it is a select list
    that runs once (see :func:`_select_clauses`)."""
    found: list[_Call] = []
    pending: list[tuple[object, bool]] = [(tree, False)]
    while pending:
        value, wrapped = pending.pop()
        if isinstance(value, tuple):
            pending.extend((item, wrapped) for item in value)
        elif isinstance(value, _Select):
            pending.extend(_select_clauses(value))
        elif isinstance(value, ast.SubLink):
            # The left side of `x in (select …)` runs per row; the sub-select has its own say.
            pending.append((value.testexpr, wrapped))
            pending.append((_Select(value.subselect, sublink=True), False))
        elif isinstance(value, ast.SelectStmt):
            # A select that is not a sub-link's (a FROM sub-query, a CTE) is not the pattern
            # Supabase's advice names: its select list excuses nothing (wrap the call itself).
            pending.append((_Select(value, sublink=False), False))
        elif isinstance(value, ast.Node):
            if isinstance(value, ast.FuncCall) and not wrapped:
                name = _name(value)
                if name in PER_REQUEST_FUNCTIONS:
                    found.append(_Call(value.location or 0, f"{name}()"))
            pending.extend((getattr(value, attribute), wrapped) for attribute in value)
    return found


def _select_clauses(select: _Select) -> list[tuple[object, bool]]:
    """The clauses of a select, each with whether it runs once.

    A sub-link's select that reads no table runs its select list once per evaluation (an
    init plan when uncorrelated). With a ``FROM``, the select list runs once per row read, as
    do ``WHERE``, ``GROUP BY``, ``ORDER BY`` and the rest: ``( SELECT (c.tutor_id =
    auth.uid()) FROM courses c WHERE …)`` calls it for every course of every row checked.
    Each arm of a ``UNION``/``INTERSECT``/``EXCEPT`` is judged on its own ``FROM``."""
    stmt = select.stmt
    once = select.sublink and stmt.fromClause is None
    clauses: list[tuple[object, bool]] = []
    for attribute in stmt:
        value = getattr(stmt, attribute)
        if attribute in ("larg", "rarg") and value is not None:
            clauses.append((_Select(value, sublink=select.sublink), False))
        else:
            clauses.append((value, once and attribute == "targetList"))
    return clauses


def bare_calls(expression: str | None) -> list[str]:
    """The per-request function calls in ``expression`` that are not wrapped in
    ``(select …)``, in order of appearance, e.g. ``["auth.uid()"]``.

    A call counts as wrapped when the nearest select clause around it is the select list of
    a sub-select that reads no table: ``( SELECT auth.uid() AS uid)`` or ``( SELECT
    (auth.jwt() ->> 'role'))``, also inside another sub-select's ``WHERE``. A call anywhere
    else in a sub-select that has a ``FROM`` (select list included), or outside any
    sub-select, is bare. Raises :class:`ExpressionError` when the text is not one expression.
    """
    if not expression:
        return []
    found = _bare(_parse(expression))
    return [call.text for call in sorted(found, key=lambda call: call.location)]


def _constant(node: object) -> bool:
    """A non-null literal, cast or not (``1``, ``'a'::text``)."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return isinstance(node, ast.A_Const) and not node.isnull


def _true_literal(node: object) -> bool:
    """``true``, or a string cast to boolean that PostgreSQL reads as true (``'t'::boolean``)."""
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Boolean):
        return bool(node.val.boolval)
    if not (isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.A_Const)):
        return False
    type_name = [part.sval for part in node.typeName.names][-1]
    value = node.arg.val
    if type_name not in ("bool", "boolean") or not isinstance(value, ast.String):
        return False
    word = (value.sval or "").strip().lower()
    if word in ("1", "on"):
        return True
    return bool(word) and any(spelling.startswith(word) for spelling in _TRUE_WORDS)


def is_always_true(expression: str | None) -> bool:
    """Whether ``expression`` is literally true (``true``, ``(true)``, ``1 = 1``,
    ``'t'::boolean``): a true literal, or a constant compared with itself.

    A missing expression is not: a policy without ``USING``/``WITH CHECK`` for the
    command grants nothing (PostgreSQL 15 adds no permissive qual for it). Raises
    :class:`ExpressionError` when the text is not one expression.
    """
    if not expression:
        return False
    node = _parse(expression)
    if _true_literal(node):
        return True
    return (
        isinstance(node, ast.A_Expr)
        and node.kind == enums.A_Expr_Kind.AEXPR_OP
        and [part.sval for part in node.name] == ["="]
        and _constant(node.lexpr)
        and node.lexpr == node.rexpr
    )
