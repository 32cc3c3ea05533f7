"""Run PostgreSQL's client programs (pg_dump, pg_restore, psql) against a URL.

The password travels in ``PGPASSWORD`` rather than on the command line, where any local user
could read it from the process list. A failing program becomes a :class:`BackupError` whose
message is the program's own first ``ERROR``/``error`` line. The programs are those of the
oldest installed major at least as new as the server (:func:`client_install`).
"""

from __future__ import annotations

import os
import subprocess

import psycopg

from pysync.config import DEFAULT_PG_MAJOR
from pysync.dsn import split_password
from pysync.errors import BackupError
from pysync.localdb.binaries import PgInstall, client_candidates

__all__ = ["client_install", "run_tool", "server_major"]


def server_major(url: str) -> int:
    """The major version of the server at ``url``."""
    with psycopg.connect(url) as conn:
        return int(conn.info.server_version) // 10000


def client_install(server_major: int) -> PgInstall:
    """Client programs for a server (or an archive) of ``server_major``: the oldest installed
    major that is at least as new, because ``pg_dump`` refuses newer servers and
    ``pg_restore`` archives from a newer ``pg_dump``."""
    found = client_candidates()
    usable = sorted((c for c in found if c.major >= server_major), key=lambda c: c.major)
    if not usable:
        seen = ", ".join(sorted({str(c.major) for c in found})) or "none"
        raise BackupError(
            f"PostgreSQL {server_major} needs pg_dump, pg_restore and psql {server_major} or "
            f"newer, and none are installed (found: {seen}): install them and set "
            "PYSYNC_PG_CLIENT_BIN to their folder"
        )
    return usable[0]


def _first_error(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line or "error:" in line:
            return line
    return lines[-1] if lines else "no output"


def run_tool(
    program: str, *args: str, install: PgInstall | None = None, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``program`` of ``install`` (``--dbname`` set from ``url`` when given); raise on
    failure. Without ``install``: client programs new enough for the server at ``url``
    (PostgreSQL 15's without one)."""
    if install is None:
        install = client_install(server_major(url) if url else DEFAULT_PG_MAJOR)
    env = dict(os.environ)
    cmd = [str(install.program(program)), *args]
    if url is not None:
        dbname, env = split_password(url)
        cmd.append(f"--dbname={dbname}")
    try:
        result = subprocess.run(
            cmd, capture_output=True, text=True, check=False, env=install.env(env)
        )
    except FileNotFoundError as exc:
        raise BackupError(
            f"{cmd[0]} not found: the PostgreSQL {install.major} client programs are "
            "incomplete there; set PYSYNC_PG_CLIENT_BIN to a folder with pg_dump, pg_restore "
            "and psql"
        ) from exc
    if result.returncode != 0:
        raise BackupError(f"{program} failed: {_first_error(result.stderr or result.stdout)}")
    return result
