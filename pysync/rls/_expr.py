"""Read deparsed policy expressions (``pg_get_expr`` of ``pg_policy.polqual``/``polwithcheck``).

PostgreSQL prints a wrapped call as ``( SELECT auth.uid() AS uid)``; a bare one as
``auth.uid()``. A regular expression over the whole text cannot tell which of several calls
is wrapped (one wrapped call would excuse a bare one elsewhere), so this scans the text once,
skipping string literals and quoted identifiers, and judges every call by the parentheses
around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["bare_calls", "is_always_true"]

#: Functions that read the request (JWT claims, settings): cheap once, costly once per row.
PER_REQUEST_FUNCTIONS = (
    "auth.uid",
    "auth.jwt",
    "auth.role",
    "auth.email",
    "current_setting",
    "pg_catalog.current_setting",
)

_TOKEN = re.compile(
    r"""
    (?P<string>'(?:[^']|'')*')
    | (?P<ident>"(?:[^"]|"")*")
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)*)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<other>\S)
    """,
    re.VERBOSE,
)

#: Words that end a sub-select's select list: a call after them runs per row of the
#: sub-select (or per outer row when correlated), not once.
_LIST_ENDS = {"from", "where", "group", "having", "order", "limit", "window", "union"}


@dataclass
class _Frame:
    is_select: bool = False
    in_select_list: bool = False
    fresh: bool = True


def bare_calls(expression: str | None) -> list[str]:
    """The per-request function calls in ``expression`` that are not wrapped in
    ``(select …)``, in order of appearance, e.g. ``["auth.uid()"]``.

    A call counts as wrapped when it sits in the select list of an enclosing sub-select:
    ``( SELECT auth.uid() AS uid)`` or ``( SELECT (auth.jwt() ->> 'role'::text))``.
    """
    if not expression:
        return []
    found: list[str] = []
    stack: list[_Frame] = [_Frame()]
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup
        text = match.group()
        frame = stack[-1]
        if kind == "open":
            frame.fresh = False
            stack.append(_Frame())
            continue
        if kind == "close":
            if len(stack) > 1:
                stack.pop()
            continue
        if kind == "word":
            lowered = text.lower()
            if frame.fresh and lowered == "select":
                frame.is_select = frame.in_select_list = True
            elif frame.is_select and lowered in _LIST_ENDS:
                frame.in_select_list = False
            following = expression[match.end() :].lstrip()
            wrapped = any(f.is_select and f.in_select_list for f in stack)
            if lowered in PER_REQUEST_FUNCTIONS and following.startswith("(") and not wrapped:
                found.append(f"{text}()")
        frame.fresh = False
    return found


def is_always_true(expression: str | None) -> bool:
    """Whether ``expression`` is literally true (``true``, ``(true)``, ``1 = 1``).

    A missing expression is not: a policy without ``USING``/``WITH CHECK`` for the
    command grants nothing (PostgreSQL 15 adds no permissive qual for it).
    """
    if expression is None:
        return False
    normalized = re.sub(r"[\s()]", "", expression.lower())
    return normalized in ("true", "1=1", "'t'::boolean", "'true'::boolean")
