"""Migrations and policies: discover the files, compare with the target, push, seed, lint."""

from pysync.migrate.files import SqlFile, discover_migrations, discover_policies, new_migration
from pysync.migrate.runner import Drift, MigrationStatus, PushResult, apply_sql_file, inspect, push
from pysync.migrate.seed import apply_seed
from pysync.migrate.statements import Statement, split_statements

__all__ = [
    "Drift",
    "MigrationStatus",
    "PushResult",
    "SqlFile",
    "Statement",
    "apply_seed",
    "apply_sql_file",
    "discover_migrations",
    "discover_policies",
    "inspect",
    "new_migration",
    "push",
    "split_statements",
]
