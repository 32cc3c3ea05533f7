"""pg_cron in the embedded cluster, as a Supabase project has it.

A hosted project preloads pg_cron with ``cron.database_name = 'postgres'``; the migration
``*_schedules.sql`` creates the extension there and schedules the project's jobs. Locally the
library is optional (Debian's ``postgresql-15-cron``, ``scripts/bootstrap.sh --cron``): when
the server has it, the cluster preloads it for its main database and the main database gets
the extension the way Supabase's dashboard enables it, because ``postgres`` may not create an
untrusted extension here (Supabase's supautils lets it there). Without the library everything
else works and the migration schedules nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg

from pysync.localdb.binaries import PgInstall

__all__ = ["CRON_LIBRARY", "cron_scheduler_running", "cron_settings", "enable_cron"]

#: Concurrent jobs; each runs in a background worker of the default pool of 8.
_MAX_RUNNING_JOBS = 4


#: The library to preload for pg_cron (``shared_preload_libraries``), when the server has it.
CRON_LIBRARY = "pg_cron"


def cron_settings(install: PgInstall, database: str) -> dict[str, str]:
    """pg_cron's server settings for ``database``; empty without the library. The caller
    preloads :data:`CRON_LIBRARY` with the cluster's other preloaded libraries.

    Jobs run in background workers, not over libpq: the cluster listens on loopback with
    passwords only, and a worker needs neither.
    """
    if not install.has_library(CRON_LIBRARY):
        return {}
    return {
        "cron.database_name": "'" + database.replace("'", "''") + "'",
        "cron.use_background_workers": "on",
        "cron.max_running_jobs": str(_MAX_RUNNING_JOBS),
    }


def enable_cron(conn: psycopg.Connection[Any]) -> bool:
    """Create pg_cron in the connected database when this is pg_cron's database, with the
    privileges Supabase gives ``postgres`` (its docs' install step). Needs the bootstrap
    superuser; returns whether the extension is there."""
    row = conn.execute(
        "select 'pg_cron' = any(string_to_array("
        " replace(current_setting('shared_preload_libraries'), ' ', ''), ','))"
        " and current_setting('cron.database_name', true) = current_database()"
    ).fetchone()
    if not row or not row[0]:
        return False
    conn.execute("create extension if not exists pg_cron with schema pg_catalog")
    conn.execute("grant usage on schema cron to postgres")
    conn.execute("grant all privileges on all tables in schema cron to postgres")
    return True


def cron_scheduler_running(conn: psycopg.Connection[Any]) -> bool:
    """Whether pg_cron's scheduler (its launcher background worker) is running; only a
    superuser (or pg_read_all_stats) sees other roles' backend types."""
    row = conn.execute(
        "select exists (select from pg_stat_activity where backend_type = 'pg_cron launcher')"
    ).fetchone()
    return bool(row and row[0])
