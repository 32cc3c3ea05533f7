"""Migration and policy files on disk, named as the Supabase CLI expects."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

from pysync.errors import MigrationFileError
from pysync.migrate.statements import Statement, split_statements

__all__ = ["MIGRATION_NAME", "SqlFile", "discover_migrations", "discover_policies", "new_migration"]

#: ``<14-digit UTC timestamp>_<name>.sql``, as ``supabase migration new`` creates.
MIGRATION_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[A-Za-z0-9_\-]+)\.sql$")
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class SqlFile:
    """A migration (``version`` set) or a policy file (``version`` None)."""

    path: Path
    name: str
    version: str | None = None

    @cached_property
    def text(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MigrationFileError(f"{self.path}: cannot read: {exc}") from exc

    @cached_property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @cached_property
    def statements(self) -> list[Statement]:
        return split_statements(self.text, path=str(self.path))

    def display(self, root: Path | None = None) -> str:
        """The path relative to ``root`` when possible, for messages."""
        if root:
            try:
                return str(self.path.relative_to(root))
            except ValueError:
                pass
        return str(self.path)


def discover_migrations(folder: Path) -> list[SqlFile]:
    """Every migration in ``folder``, in version order; misnamed ``.sql`` files are errors.

    A misnamed file would silently never run, which is worse than refusing to run at all.
    """
    if not folder.is_dir():
        return []
    found: dict[str, SqlFile] = {}
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationFileError(
                f"{path}: migration files must be named <14-digit timestamp>_<name>.sql"
            )
        version = match["version"]
        if version in found:
            raise MigrationFileError(
                f"{path}: version {version} is also used by {found[version].path.name}"
            )
        found[version] = SqlFile(path=path, name=match["name"], version=version)
    return [found[v] for v in sorted(found)]


def discover_policies(folder: Path) -> list[SqlFile]:
    """Every ``policies/*.sql`` file, in name order (prefix numbers to order them)."""
    if not folder.is_dir():
        return []
    return [SqlFile(path=p, name=p.stem) for p in sorted(folder.glob("*.sql"))]


def new_migration(folder: Path, name: str, now: datetime | None = None) -> Path:
    """Create an empty, correctly named migration; the version is the current UTC second
    (moved on by a second while taken, so two quick calls never collide)."""
    slug = _SLUG.sub("_", name.lower()).strip("_")
    if not slug:
        raise MigrationFileError(f"{name!r} is not a usable migration name")
    folder.mkdir(parents=True, exist_ok=True)
    taken = {f.version for f in discover_migrations(folder)}
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    while (version := moment.strftime("%Y%m%d%H%M%S")) in taken:
        moment += timedelta(seconds=1)
    path = folder / f"{version}_{slug}.sql"
    path.write_text(f"-- {slug.replace('_', ' ')}\n")
    return path
