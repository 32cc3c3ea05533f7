"""Build the library objects a command works on, from settings and the command's options."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pysync.auth import DEMO_KEY_ISSUER, LOCAL_AUTH_ISSUER
from pysync.config import LOCAL_JWT_SECRET, Settings
from pysync.errors import ConfigError
from pysync.project import Project

_LOOPBACK = ("localhost", "127.0.0.1", "::1")


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


def is_remote(chosen: Project) -> bool:
    """Whether the target is another machine's database (not the embedded one, nor a local
    ``supabase start`` stack or test cluster on this machine)."""
    host = urlsplit(chosen.db_url).hostname if chosen.db_url else None
    return host is not None and host not in _LOOPBACK


@dataclass(frozen=True)
class Signing:
    """How tokens for the target are signed: the secret and the ``iss`` claims to use."""

    secret: str
    #: ``iss`` of access tokens: GoTrue's external URL + ``/auth/v1``.
    issuer: str
    #: ``iss`` of API keys: ``supabase-demo`` locally, ``supabase`` on the hosted platform.
    key_issuer: str


def signing(chosen: Project) -> Signing:
    """The target's signing settings; a remote target needs its own ``SUPABASE_JWT_SECRET``
    (the local stack's well-known secret would sign tokens it rejects, or should)."""
    settings = chosen.settings
    remote = is_remote(chosen)
    if remote and settings.jwt_secret == LOCAL_JWT_SECRET:
        raise ConfigError(
            "the target is remote but SUPABASE_JWT_SECRET is the local default: set it to the"
            " project's JWT secret (Dashboard → Project Settings → API)"
        )
    issuer = f"{settings.supabase_url.rstrip('/')}/auth/v1" if settings.supabase_url else None
    return Signing(
        secret=settings.jwt_secret,
        issuer=issuer or LOCAL_AUTH_ISSUER,
        key_issuer="supabase" if remote else DEMO_KEY_ISSUER,
    )
