"""The embedded Supabase-compatible database: a local cluster plus the emulation.

``start`` brings the cluster up and makes sure the ``postgres`` database looks like a fresh
Supabase project. A template database carries the emulation so that ``reset`` and the tests'
per-module databases are a ``CREATE DATABASE … TEMPLATE`` away (tens of milliseconds) rather
than a replay of the emulation SQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pysync.config import Settings
from pysync.errors import LocalDatabaseError
from pysync.localdb import emulation
from pysync.localdb.binaries import DEFAULT_MAJOR
from pysync.localdb.cluster import (
    LOCAL_PASSWORD,
    PREFERRED_PORT,
    SUPERUSER,
    ClusterStatus,
    LocalCluster,
)
from pysync.localdb.cron import cron_scheduler_running, enable_cron

__all__ = ["MAIN_DATABASE", "TEMPLATE_DATABASE", "LocalDatabase"]

MAIN_DATABASE = "postgres"
TEMPLATE_DATABASE = "pysync_template"


def _holds_project_data(conn: psycopg.Connection[Any]) -> bool:
    """Whether migrations ran or tables exist in ``public`` (what a rebuild would lose)."""
    row = conn.execute(
        "select to_regclass('supabase_migrations.schema_migrations') is not null"
        " or exists (select from pg_catalog.pg_class"
        " where relnamespace = 'public'::regnamespace and relkind in ('r', 'p', 'v', 'm'))"
    ).fetchone()
    return bool(row and row[0])


class LocalDatabase:
    """The embedded database of one project (or one test session)."""

    def __init__(
        self,
        base_dir: Path,
        *,
        jwt_secret: str,
        fast: bool = False,
        preferred_port: int | None = PREFERRED_PORT,
        cron: bool = True,
        pg_major: int = DEFAULT_MAJOR,
    ) -> None:
        self.cluster = LocalCluster(
            base_dir, fast=fast, preferred_port=preferred_port, cron=cron, pg_major=pg_major
        )
        self.jwt_secret = jwt_secret

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalDatabase:
        """The project's database of ``settings.pg_major``. Each major has its own cluster
        (``pg/`` for 15, ``pg17/`` for 17): a data directory cannot change major in place, and
        switching the setting back finds the other one as it was."""
        folder = "pg" if settings.pg_major == DEFAULT_MAJOR else f"pg{settings.pg_major}"
        return cls(
            settings.data_dir / folder, jwt_secret=settings.jwt_secret, pg_major=settings.pg_major
        )

    # -- connections -----------------------------------------------------------------------

    def url(self, dbname: str = MAIN_DATABASE, user: str = "postgres") -> str:
        """URL of a database on the running cluster, as ``user`` (default: ``postgres``)."""
        return self.cluster.url(user=user, dbname=dbname)

    def admin_connect(self, dbname: str = "template1") -> psycopg.Connection[Any]:
        """An autocommit connection as the bootstrap superuser (local only)."""
        try:
            conn: psycopg.Connection[Any] = psycopg.connect(
                self.cluster.url(user=SUPERUSER, dbname=dbname), autocommit=True
            )
        except psycopg.OperationalError as exc:
            raise LocalDatabaseError(f"cannot connect to the local database: {exc}") from exc
        return conn

    # -- lifecycle -------------------------------------------------------------------------

    def status(self) -> ClusterStatus:
        return self.cluster.status()

    def start(self) -> ClusterStatus:
        """Start the cluster and make sure roles, template and main database are ready."""
        status = self._start_cluster()
        self._ensure_main_database()
        return status

    def _start_cluster(self) -> ClusterStatus:
        """The cluster running, with current roles and an up-to-date template."""
        status = self.cluster.start()
        with self.admin_connect() as conn:
            emulation.apply_roles(conn, LOCAL_PASSWORD)
            self._ensure_template(conn)
        return status

    def _ensure_main_database(self) -> None:
        """The main database on the current emulation.

        A bare database gets it installed. One built by an older emulation is rebuilt from
        the template when it holds nothing of the project yet; otherwise starting fails with
        a message that says to run ``pysync db reset`` (a start never drops project data).
        """
        with self.admin_connect(MAIN_DATABASE) as conn:
            have = emulation.installed_version(conn)
            outdated = have is not None and have != emulation.EMULATION_VERSION
            if outdated and not _holds_project_data(conn):
                conn.close()
                self._recreate_main_database()
                return
            emulation.apply_database_emulation(conn)
            emulation.install_optional_extensions(conn)
            conn.execute("select pysync_local.create_realtime_partitions()")
            enable_cron(conn)
        if have is None:
            with self.admin_connect() as conn:
                emulation.configure_database(conn, MAIN_DATABASE, self.jwt_secret)

    def stop(self) -> bool:
        return self.cluster.stop()

    def _database_exists(self, conn: psycopg.Connection[Any], name: str) -> bool:
        row = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        return row is not None

    def _ensure_template(self, conn: psycopg.Connection[Any]) -> None:
        """(Re)build the template database when missing or built from older emulation SQL."""
        if self._database_exists(conn, TEMPLATE_DATABASE):
            with self.admin_connect(TEMPLATE_DATABASE) as tconn:
                if emulation.installed_version(tconn) == emulation.EMULATION_VERSION:
                    emulation.install_optional_extensions(tconn)
                    return
            conn.execute(
                sql.SQL("alter database {} is_template false").format(
                    sql.Identifier(TEMPLATE_DATABASE)
                )
            )
            conn.execute(
                sql.SQL("drop database {} with (force)").format(sql.Identifier(TEMPLATE_DATABASE))
            )
        conn.execute(
            sql.SQL("create database {} template template0").format(
                sql.Identifier(TEMPLATE_DATABASE)
            )
        )
        with self.admin_connect(TEMPLATE_DATABASE) as tconn:
            emulation.apply_database_emulation(tconn)
        conn.execute(
            sql.SQL("alter database {} is_template true").format(sql.Identifier(TEMPLATE_DATABASE))
        )

    def create_database(self, name: str, *, replace: bool = False) -> str:
        """A fresh Supabase-like database cloned from the template; returns its URL."""
        if not self.status().running:
            raise LocalDatabaseError("the local database is not running: run `pysync db start`")
        with self.admin_connect() as conn:
            ident = sql.Identifier(name)
            if replace:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(ident))
            conn.execute(
                sql.SQL("create database {} template {}").format(
                    ident, sql.Identifier(TEMPLATE_DATABASE)
                )
            )
            emulation.configure_database(conn, name, self.jwt_secret)
        with self.admin_connect(name) as conn:
            conn.execute("select pysync_local.create_realtime_partitions()")
            enable_cron(conn)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin_connect() as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )

    def reset(self) -> str:
        """Recreate the main database as a fresh project (emulation only); returns its URL.

        The old main database is not inspected: it may carry an outdated emulation, which is
        exactly what a reset is for.
        """
        self._start_cluster()
        self._recreate_main_database()
        return self.url(MAIN_DATABASE)

    def _recreate_main_database(self) -> None:
        """Drop and clone the main database from the template (the cluster is running)."""
        with self.admin_connect() as conn:
            scheduler = cron_scheduler_running(conn)
        self.create_database(MAIN_DATABASE, replace=True)
        if scheduler:
            # Dropping pg_cron's database ends its scheduler, which exits cleanly and so is
            # not restarted by the server: only a restart brings it back.
            self.cluster.stop()
            self._start_cluster()
