"""The exceptions the library raises.

Every error a user can cause or fix derives from :class:`PysyncError`, so the CLI can turn it
into one readable line in one place (``pysync.cli.errors``) while real bugs still surface as
tracebacks.
"""

from __future__ import annotations

__all__ = [
    "BackupError",
    "ConfigError",
    "ErasureRefusedError",
    "LegacyImportError",
    "LocalDatabaseError",
    "MigrationDriftError",
    "MigrationError",
    "MigrationFileError",
    "PysyncError",
    "RestoreVerificationError",
    "UnknownUserError",
    "first_line",
]


def first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message, or its class name when it has none.

    Server and driver messages run to several lines (DETAIL, HINT, CONTEXT); a one-line
    report wants the first, and an empty message must not become an ``IndexError``.
    """
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def _rebuild(
    cls: type[BaseException], args: tuple[object, ...], state: dict[str, object]
) -> BaseException:
    """Unpickle a :class:`PysyncError` without calling its ``__init__`` (see ``__reduce__``)."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class PysyncError(Exception):
    """Base class: an error the user can act on. ``str(err)`` is the one-line message.

    Errors survive pickling (a worker process or a multiprocessing pool hands them back to
    its parent) with their message and every attribute, SQLSTATE included. Exception's own
    pickling calls ``cls(*args)``, which fails for subclasses with keyword-only fields.
    """

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigError(PysyncError):
    """A setting is missing or malformed."""


class LocalDatabaseError(PysyncError):
    """The embedded PostgreSQL cluster could not be created, started, stopped or reached."""


class MigrationFileError(PysyncError):
    """A migration or policy file is badly named or cannot be parsed."""


class MigrationError(PysyncError):
    """A migration or policy file failed while being applied; nothing of it was kept.

    Carries where it failed so callers (and ``--json`` output) can point at the exact place.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str,
        statement: int | None = None,
        line: int | None = None,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.statement = statement
        self.line = line
        self.sqlstate = sqlstate


class MigrationDriftError(PysyncError):
    """Applied migrations no longer match their files, or the database has unknown versions."""


class BackupError(PysyncError):
    """A backup could not be written, read, or restored (tool failure, missing manifest,
    an archive that does not match its manifest)."""


class RestoreVerificationError(BackupError):
    """A restore loaded, but its row counts disagree with the manifest; it was rolled back."""


class LegacyImportError(PysyncError):
    """The legacy source cannot be imported as it stands (missing tables or columns, values
    that do not map); nothing was written when this is raised before the first batch."""


class UnknownUserError(PysyncError):
    """No account has the given e-mail address or id."""


class ErasureRefusedError(PysyncError):
    """``delete_user`` refused and changed nothing: the user is an organization's last owner,
    or teaches courses other people take. The message says what to do first."""
