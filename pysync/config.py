"""Settings, read once from the environment and the project's ``.env``.

One immutable object, so every layer sees the same answer and a bad value fails early with a
message that names the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from pysync.errors import ConfigError

__all__ = [
    "DEFAULT_PG_MAJOR",
    "LOCAL_JWT_SECRET",
    "SUPPORTED_PG_MAJORS",
    "Settings",
    "find_project_dir",
    "parse_pg_major",
]

#: The JWT secret of every local Supabase stack (``supabase start``); local use only.
LOCAL_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
#: PostgreSQL majors the embedded database runs: Debian's 15, and 17 as new Supabase projects.
SUPPORTED_PG_MAJORS = (15, 17)
DEFAULT_PG_MAJOR = 15


def parse_pg_major(value: str | None, *, name: str = "PYSYNC_PG_MAJOR") -> int:
    """A supported PostgreSQL major version from a setting's text (empty or unset: 15)."""
    if not value:
        return DEFAULT_PG_MAJOR
    major = int(value) if value.strip().isdigit() else -1
    if major not in SUPPORTED_PG_MAJORS:
        choices = " or ".join(str(m) for m in SUPPORTED_PG_MAJORS)
        raise ConfigError(f"{name} must be {choices}, not {value!r}")
    return major


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` holding ``supabase/migrations``.

    Falls back to ``start`` itself so commands such as ``db new`` can bootstrap a project.
    """
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "supabase" / "migrations").is_dir():
            return candidate
    return here


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the environment variable that sets each field."""

    project_dir: Path
    #: ``PYSYNC_DATA_DIR``: where the embedded cluster lives (default ``<project>/.pysync``).
    data_dir: Path
    #: ``SUPABASE_DB_URL``: a Postgres URL to target instead of the embedded database.
    db_url: str | None = None
    #: ``SUPABASE_JWT_SECRET``: signs and verifies access tokens.
    jwt_secret: str = LOCAL_JWT_SECRET
    #: ``SUPABASE_URL``, ``SUPABASE_ANON_KEY``, ``SUPABASE_SERVICE_ROLE_KEY``: a real project's API.
    #: ``SUPABASE_PUBLISHABLE_KEY`` / ``SUPABASE_SECRET_KEY`` (the new keys) win when set.
    supabase_url: str | None = None
    anon_key: str | None = field(default=None, repr=False)
    service_role_key: str | None = field(default=None, repr=False)
    #: ``PYSYNC_PG_MAJOR``: the embedded database's PostgreSQL major version, 15 or 17.
    pg_major: int = DEFAULT_PG_MAJOR

    @property
    def migrations_dir(self) -> Path:
        return self.project_dir / "supabase" / "migrations"

    @property
    def policies_dir(self) -> Path:
        return self.project_dir / "policies"

    @property
    def seed_file(self) -> Path:
        return self.project_dir / "supabase" / "seed.sql"

    @classmethod
    def load(
        cls, project_dir: Path | None = None, environ: dict[str, str] | None = None
    ) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``) over the project's ``.env``."""
        root = find_project_dir(project_dir)
        values: dict[str, str] = {
            k: v for k, v in dotenv_values(root / ".env").items() if v is not None
        }
        values.update(os.environ if environ is None else environ)

        data_dir = Path(values.get("PYSYNC_DATA_DIR") or root / ".pysync")
        if not data_dir.is_absolute():
            data_dir = root / data_dir
        jwt_secret = values.get("SUPABASE_JWT_SECRET") or LOCAL_JWT_SECRET
        if len(jwt_secret) < 32:
            raise ConfigError("SUPABASE_JWT_SECRET must be at least 32 characters long")
        db_url = values.get("SUPABASE_DB_URL") or None
        if db_url and not db_url.startswith(("postgres://", "postgresql://")):
            raise ConfigError("SUPABASE_DB_URL must be a postgresql:// URL")
        return cls(
            project_dir=root,
            data_dir=data_dir,
            db_url=db_url,
            jwt_secret=jwt_secret,
            supabase_url=values.get("SUPABASE_URL") or None,
            anon_key=values.get("SUPABASE_PUBLISHABLE_KEY")
            or values.get("SUPABASE_ANON_KEY")
            or None,
            service_role_key=values.get("SUPABASE_SECRET_KEY")
            or values.get("SUPABASE_SERVICE_ROLE_KEY")
            or None,
            pg_major=parse_pg_major(values.get("PYSYNC_PG_MAJOR")),
        )
