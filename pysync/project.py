"""One project: its folders, its settings and the database it targets.

The CLI's ``db`` and ``up`` commands are thin over this class. The target is the embedded
database unless a URL is given (``--db-url`` / ``SUPABASE_DB_URL``), in which case the same
push, status and seed run against that database, e.g. a real Supabase project.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from pysync.config import Settings
from pysync.dsn import mask_url
from pysync.errors import LocalDatabaseError
from pysync.localdb import LocalDatabase
from pysync.migrate import MigrationStatus, PushResult, apply_seed, discover_policies, inspect, push
from pysync.progress import ProgressCallback, Reporter

__all__ = ["Project", "TableCount", "mask_url"]


@dataclass(frozen=True)
class TableCount:
    schema: str
    table: str
    rows: int
    rls: bool


class Project:
    """Operations on a project's database target."""

    def __init__(self, settings: Settings, db_url: str | None = None) -> None:
        self.settings = settings
        self.db_url = db_url or settings.db_url
        self.local = LocalDatabase.from_settings(settings)

    @property
    def is_local(self) -> bool:
        return self.db_url is None

    def url(self) -> str:
        """The target's connection URL; the embedded database must be running."""
        if self.db_url:
            return self.db_url
        if not self.local.status().running:
            raise LocalDatabaseError(
                "the local database is not running: run `pysync db start` (or `pysync up`)"
            )
        return self.local.url()

    def connect(self) -> psycopg.Connection[Any]:
        """An autocommit connection to the target (transactions are explicit blocks)."""
        conn: psycopg.Connection[Any] = psycopg.connect(self.url(), autocommit=True)
        return conn

    # -- migrations ------------------------------------------------------------------------

    def migration_status(self) -> MigrationStatus:
        with self.connect() as conn:
            return inspect(conn, self.settings.migrations_dir)

    def push(
        self,
        *,
        dry_run: bool = False,
        include_all: bool = False,
        progress: ProgressCallback | None = None,
    ) -> PushResult:
        with self.connect() as conn:
            return push(
                conn,
                self.settings.migrations_dir,
                self.settings.policies_dir,
                dry_run=dry_run,
                include_all=include_all,
                root=self.settings.project_dir,
                progress=progress,
            )

    def seed(self) -> bool:
        with self.connect() as conn:
            return apply_seed(conn, self.settings.seed_file, root=self.settings.project_dir)

    # -- whole workflows -------------------------------------------------------------------

    def up(
        self, progress: ProgressCallback | None = None, *, seed: bool | None = None
    ) -> PushResult:
        """Start the embedded database when targeted, push, seed.

        Seeding defaults to on for the embedded database and off for a remote one, so a
        stray ``SUPABASE_DB_URL`` never fills a real project with development data.

        ``progress`` hears the tasks ``database`` (embedded only), those of :func:`push`,
        and ``seed`` (one file, or none when not seeding).
        """
        if self.is_local:
            was_running = self.local.status().running
            status = self.local.start()
            Reporter(progress, "database", total=1).finish(
                message=f"local database {'already running' if was_running else 'started'}"
                f" on port {status.port}"
            )
        result = self.push(progress=progress)
        if seed is None:
            seed = self.is_local
        seeding = Reporter(progress, "seed", total=1 if seed else 0, unit="files")
        if not seed:
            seeding.finish(message="not seeding a remote database (pass --seed to do so)")
        else:
            seed_file = self.settings.seed_file.relative_to(self.settings.project_dir)
            seeding.finish(
                message=f"seeded from {seed_file}" if self.seed() else f"no {seed_file} to seed"
            )
        return result

    def reset(self, progress: ProgressCallback | None = None) -> PushResult:
        """Recreate the embedded database from nothing: emulation, migrations, policies, seed."""
        if not self.is_local:
            raise LocalDatabaseError(
                "reset only recreates the embedded database; for a remote database use "
                "its own tooling (e.g. `supabase db reset --linked`)"
            )
        self.local.reset()
        Reporter(progress, "database", total=1).finish(
            message="recreated the local database from the Supabase emulation template"
        )
        return self.up(progress=progress)

    # -- reporting -------------------------------------------------------------------------

    def table_counts(
        self, schemas: tuple[str, ...] = ("public", "auth", "storage")
    ) -> list[TableCount]:
        """Row counts of every ordinary or partitioned table in ``schemas``."""
        with self.connect() as conn:
            tables = conn.execute(
                "select n.nspname, c.relname, c.relrowsecurity from pg_class c"
                " join pg_namespace n on n.oid = c.relnamespace"
                " where c.relkind in ('r', 'p') and not c.relispartition"
                " and n.nspname = any(%s) order by 1, 2",
                (list(schemas),),
            ).fetchall()
            counts = []
            for schema, table, rls in tables:
                query = sql.SQL("select count(*) from {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
                row = conn.execute(query).fetchone()
                counts.append(TableCount(schema, table, int(row[0]) if row else 0, bool(rls)))
            return counts

    def status(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """Everything ``pysync db status`` shows."""
        report: dict[str, Any] = {"target": "local" if self.is_local else "remote"}
        if self.is_local:
            report["local"] = self.local.status().as_dict()
        url = self.url()
        report["url"] = url if show_secrets else mask_url(url)
        report["migrations"] = self.migration_status().as_dict()
        report["policies"] = [p.path.name for p in discover_policies(self.settings.policies_dir)]
        return report
