"""Run PostgreSQL's client programs (pg_dump, pg_restore, psql) against a URL.

The password travels in ``PGPASSWORD`` rather than on the command line, where any local user
could read it from the process list. A failing program becomes a :class:`BackupError` whose
message is the program's own first ``ERROR``/``error`` line.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pysync.dsn import split_password
from pysync.errors import BackupError
from pysync.localdb.cluster import PG_BIN

__all__ = ["connection_args", "run_tool"]


def connection_args(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its password (userinfo or ``?password=``), and the environment that
    carries the password."""
    return split_password(url)


def _first_error(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line or "error:" in line:
            return line
    return lines[-1] if lines else "no output"


def run_tool(
    program: str, *args: str, url: str | None = None, pg_bin: Path = PG_BIN
) -> subprocess.CompletedProcess[str]:
    """Run ``program`` (``--dbname`` set from ``url`` when given); raise on failure."""
    env = dict(os.environ)
    cmd = [str(pg_bin / program), *args]
    if url is not None:
        dbname, env = connection_args(url)
        cmd.append(f"--dbname={dbname}")
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    except FileNotFoundError as exc:
        raise BackupError(
            f"{cmd[0]} not found: install the PostgreSQL 15 client programs or set PYSYNC_PG_BIN"
        ) from exc
    if result.returncode != 0:
        raise BackupError(f"{program} failed: {_first_error(result.stderr or result.stdout)}")
    return result
