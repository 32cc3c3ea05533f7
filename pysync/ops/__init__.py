"""Operations on a project's data: backups, restores, SQLite snapshots, legacy imports."""
