"""Build the library objects a command works on, from settings and the command's options."""

from __future__ import annotations

from pysync.config import Settings
from pysync.errors import ConfigError
from pysync.project import Project


def project(db_url: str | None = None) -> Project:
    """The current project, targeting ``db_url`` when given, else the embedded database."""
    if db_url and not db_url.startswith(("postgres://", "postgresql://")):
        raise ConfigError("--db-url must be a postgresql:// URL")
    return Project(Settings.load(), db_url=db_url)


def local_project(db_url: str | None, command: str) -> Project:
    """A project whose target must be the embedded database (start, stop, reset)."""
    chosen = project(db_url)
    if not chosen.is_local:
        raise ConfigError(
            f"`{command}` manages the embedded database; drop --db-url / SUPABASE_DB_URL "
            "(environment or .env) to use it (pysync does not run remote databases)"
        )
    return chosen
