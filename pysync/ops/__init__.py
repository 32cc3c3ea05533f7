"""Operations on a project's data: backups and restores (``backup``), SQLite snapshots
(``sqlite_export``) and the import from the legacy platform (``legacy``)."""

from pysync.ops.backup import BackupResult, RestoreResult, create_backup, restore_backup
from pysync.ops.legacy import ImportReport, import_legacy
from pysync.ops.sqlite_export import ExportResult, export_sqlite

__all__ = [
    "BackupResult",
    "ExportResult",
    "ImportReport",
    "RestoreResult",
    "create_backup",
    "export_sqlite",
    "import_legacy",
    "restore_backup",
]
