"""Database URLs that carry secrets: how to show them and how to hand them to a program.

libpq takes a password in two places of a URL, the userinfo (``postgresql://u:secret@h/db``)
and the query (``postgresql://u@h/db?password=secret``). Both must be masked when a URL is
printed, and both must leave the URL before it goes on a command line, where any local user
can read it in ``ps``; the password travels in ``PGPASSWORD`` instead.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "mask_url", "split_password"]

#: What a password is shown as.
MASK = "****"

#: Query parameters that carry a secret (libpq's ``password``; ``passfile`` is only a path).
_SECRET_PARAMS = frozenset({"password"})


def _userinfo_password(netloc: str) -> tuple[str, str | None]:
    """``netloc`` without the userinfo password, and that password (still percent-encoded)."""
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return netloc, None
    user, _, password = userinfo.partition(":")
    return f"{user}@{hostport}", password


def _query_without_secrets(query: str, replacement: str | None) -> tuple[str, str | None]:
    """``query`` with each secret parameter replaced (or dropped when ``replacement`` is
    None), and the last secret found (decoded)."""
    kept: list[tuple[str, str]] = []
    secret: str | None = None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in _SECRET_PARAMS:
            secret = value
            if replacement is not None:
                kept.append((key, replacement))
        else:
            kept.append((key, value))
    return urlencode(kept, safe="*"), secret


def mask_url(url: str) -> str:
    """``url`` with every password it carries replaced by ``****``."""
    parts = urlsplit(url)
    netloc, password = _userinfo_password(parts.netloc)
    if password is not None:
        user, _, hostport = netloc.partition("@")
        netloc = f"{user}:{MASK}@{hostport}"
    query = parts.query
    if query:
        masked_query, secret = _query_without_secrets(query, MASK)
        if secret is not None:
            query = masked_query
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def split_password(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without any password, and a copy of the environment with ``PGPASSWORD`` set
    to it (when the URL had one), for running libpq programs such as ``pg_dump``.

    A password in the query wins over one in the userinfo, as it does in libpq (later
    settings override earlier ones).
    """
    parts = urlsplit(url)
    env = dict(os.environ)
    netloc, userinfo_password = _userinfo_password(parts.netloc)
    query, query_password = _query_without_secrets(parts.query, None)
    password = query_password if query_password is not None else userinfo_password
    if password is None:
        return url, env
    env["PGPASSWORD"] = password if query_password is not None else unquote(password)
    return urlunsplit(parts._replace(netloc=netloc, query=query)), env
