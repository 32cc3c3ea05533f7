"""Seed data: ``supabase/seed.sql``, the file ``supabase db reset`` runs after migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from pysync.migrate.files import SqlFile
from pysync.migrate.runner import apply_sql_file

__all__ = ["apply_seed"]


def apply_seed(conn: psycopg.Connection[Any], seed_file: Path, *, root: Path | None = None) -> bool:
    """Run the seed file in one transaction; returns False when there is no seed file.

    The seed must be re-runnable (``on conflict do nothing``): ``pysync up`` runs it each time.
    """
    if not seed_file.is_file():
        return False
    seed = SqlFile(path=seed_file, name=seed_file.stem)
    with conn.transaction():
        apply_sql_file(conn, seed, root=root)
    return True
