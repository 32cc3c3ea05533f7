"""Push migrations and policies to any PostgreSQL database, Supabase's way and a bit safer.

Each migration file runs in its own transaction together with its history row, statement by
statement so a failure can name the statement and line; then every policy file runs in one
more transaction. Beyond the Supabase CLI: an edited, already-applied migration is *drift* and
blocks the push; ``dry_run`` runs everything inside an outer transaction and rolls it back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pysync.errors import MigrationDriftError, MigrationError
from pysync.migrate import history
from pysync.migrate.files import SqlFile, discover_migrations, discover_policies
from pysync.progress import ProgressCallback, Reporter

__all__ = [
    "Drift",
    "MigrationStatus",
    "PushResult",
    "apply_sql_file",
    "inspect",
    "push",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drift:
    """An applied migration whose file changed (``edited``) or vanished (``missing``)."""

    version: str
    name: str | None
    reason: str

    def describe(self) -> str:
        what = "was edited after it was applied" if self.reason == "edited" else "has no file"
        return f"migration {self.version}_{self.name or '?'} {what}"


@dataclass(frozen=True)
class MigrationStatus:
    """The target compared with the migrations folder."""

    applied: list[history.AppliedMigration]
    pending: list[SqlFile]
    drift: list[Drift]
    #: Pending files older than the newest applied version (the Supabase CLI wants
    #: ``--include-all`` for those, and so do we).
    out_of_order: list[SqlFile]
    #: Applied by another tool, so without our checksum: cannot be checked for edits.
    unverified: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": [{"version": m.version, "name": m.name} for m in self.applied],
            "pending": [{"version": f.version, "name": f.name} for f in self.pending],
            "drift": [
                {"version": d.version, "name": d.name, "reason": d.reason} for d in self.drift
            ],
            "out_of_order": [f.version for f in self.out_of_order],
            "unverified": self.unverified,
        }


@dataclass(frozen=True)
class PushResult:
    applied: list[SqlFile]
    policies: list[SqlFile]
    dry_run: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "applied": [{"version": f.version, "name": f.name} for f in self.applied],
            "policies": [f.path.name for f in self.policies],
        }


def inspect(conn: psycopg.Connection[Any], migrations_dir: Path) -> MigrationStatus:
    """Compare the target's history with the files, without changing anything."""
    files = discover_migrations(migrations_dir)
    by_version = {f.version: f for f in files}
    applied = history.read_history(conn)
    drift: list[Drift] = []
    unverified: list[str] = []
    for version, row in applied.items():
        file = by_version.get(version)
        if file is None:
            drift.append(Drift(version, row.name, "missing"))
        elif row.checksum is None:
            unverified.append(version)
        elif row.checksum != file.checksum:
            drift.append(Drift(version, row.name, "edited"))
    pending = [f for f in files if f.version not in applied]
    newest = max(applied, default="")
    out_of_order = [f for f in pending if f.version is not None and f.version < newest]
    return MigrationStatus(
        applied=list(applied.values()),
        pending=pending,
        drift=drift,
        out_of_order=out_of_order,
        unverified=unverified,
    )


def apply_sql_file(
    conn: psycopg.Connection[Any], file: SqlFile, *, root: Path | None = None
) -> None:
    """Run a file's statements in order on ``conn`` (inside the caller's transaction).

    A failure becomes a :class:`MigrationError` naming the file, statement and line; the
    caller's transaction block then rolls the whole file back.
    """
    shown = file.display(root)
    for statement in file.statements:
        try:
            conn.execute(statement.text.encode())
        except psycopg.Error as exc:
            diag = exc.diag
            position = int(diag.statement_position) if diag.statement_position else None
            line = statement.line_at(position)
            message = diag.message_primary or str(exc).strip()
            plpgsql = [c for c in (diag.context or "").splitlines() if c.startswith("PL/pgSQL")]
            if plpgsql:  # e.g. "PL/pgSQL function inline_code_block line 2 at PERFORM"
                message += f" (in {plpgsql[-1]})"
            code = f" [{diag.sqlstate}]" if diag.sqlstate else ""
            raise MigrationError(
                f"{shown}: statement {statement.number} (line {line}): {message}{code}",
                path=shown,
                statement=statement.number,
                line=line,
                sqlstate=diag.sqlstate,
            ) from exc


def push(
    conn: psycopg.Connection[Any],
    migrations_dir: Path,
    policies_dir: Path,
    *,
    dry_run: bool = False,
    include_all: bool = False,
    root: Path | None = None,
    progress: ProgressCallback | None = None,
) -> PushResult:
    """Apply pending migrations, then all policy files. ``conn`` must be in autocommit mode.

    Raises :class:`MigrationDriftError` before touching anything when applied migrations no
    longer match their files, and :class:`MigrationError` when a file fails (that file, and
    everything after it, is not applied; earlier files stay, unless ``dry_run``).

    ``progress`` hears two tasks: ``migrations`` (one per pending file, each event naming the
    file about to run) and ``policies`` (files).
    """
    policies = discover_policies(policies_dir)
    # Parse everything first: a syntax error anywhere stops the push before it starts.
    for file in [*discover_migrations(migrations_dir), *policies]:
        _ = file.statements

    conn.execute("select pg_advisory_lock(%s)", (history.PUSH_LOCK_KEY,))
    try:
        if dry_run:
            with conn.transaction(force_rollback=True):
                return _push_locked(
                    conn, migrations_dir, policies, include_all, True, root, progress
                )
        return _push_locked(conn, migrations_dir, policies, include_all, False, root, progress)
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (history.PUSH_LOCK_KEY,))


def _push_locked(
    conn: psycopg.Connection[Any],
    migrations_dir: Path,
    policies: list[SqlFile],
    include_all: bool,
    dry_run: bool,
    root: Path | None,
    progress: ProgressCallback | None,
) -> PushResult:
    history.ensure_history(conn)
    status = inspect(conn, migrations_dir)
    if status.drift:
        details = "; ".join(d.describe() for d in status.drift)
        raise MigrationDriftError(
            f"{details}: restore the file, or write a new migration for the change "
            "(see `pysync db status`)"
        )
    if status.out_of_order and not include_all:
        versions = ", ".join(str(f.version) for f in status.out_of_order)
        raise MigrationDriftError(
            f"pending migrations older than the last applied one ({versions}): "
            "rename them to a newer version or push with --include-all"
        )
    migrations = Reporter(progress, "migrations", total=len(status.pending), unit="migrations")
    for file in status.pending:
        message = f"applying {file.display(root)}"
        _log.info(message)
        migrations.update(message=message)
        with conn.transaction():
            apply_sql_file(conn, file, root=root)
            history.record_migration(conn, file)
        migrations.advance()
    if not status.pending:
        migrations.finish(message="no pending migrations")
    if policies:
        files = Reporter(progress, "policies", total=len(policies), unit="files")
        message = f"applying {len(policies)} policy file(s)"
        _log.info(message)
        files.update(message=message)
        with conn.transaction():
            for policy in policies:
                apply_sql_file(conn, policy, root=root)
                files.advance()
            history.record_policies(conn, policies)
    return PushResult(applied=status.pending, policies=policies, dry_run=dry_run)
