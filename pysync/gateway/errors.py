"""The gateway's exceptions, one class per thing a caller can do about an error.

Both gateways raise the same classes for the same failure: :class:`PostgresGateway` from the
SQLSTATE of the server error, :class:`PostgrestGateway` from the ``code`` of PostgREST's error
JSON, which is the same SQLSTATE for database errors and a ``PGRSTnnn`` code for PostgREST's
own. :func:`error_for` is the single mapping; it never looks at message text.

Decisions worth knowing:

* ``57014`` (statement timeout, query cancelled) is :class:`QueryTimeout`, *not* retryable:
  the same request hits the same role ``statement_timeout`` again; narrow the query instead.
* ``25006`` (a write inside a read-only call) is :class:`InvalidInput`: the caller chose the
  read-only access mode (``select`` or ``rpc(read_only=True)``) for a function that writes.
* ``42883`` (no such operator or function *inside* a statement, e.g. ``ilike`` on a uuid) is
  :class:`InvalidInput`; an rpc to a function the API does not expose is :class:`NotFound`.
* ``PTnnn`` codes are PostgREST's "respond with HTTP status nnn" convention, so a function can
  choose the class: ``PT429`` → :class:`RateLimited`, ``PT409`` (how our RPCs report a stale
  base version) → :class:`Conflict`, ``PT404`` → :class:`NotFound`, and so on.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pysync.errors import PysyncError

__all__ = [
    "Conflict",
    "GatewayError",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "QueryTimeout",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "error_for",
]


class GatewayError(PysyncError):
    """A request through a gateway failed; carries PostgREST's four error fields.

    ``code`` is a SQLSTATE (``42501``), a PostgREST code (``PGRST301``) or, for an error body
    that is not PostgREST's JSON, the HTTP status as text. ``status`` is the HTTP status when
    the error came over HTTP (``None`` from :class:`PostgresGateway`).
    """

    #: Whether sending the very same request again may succeed.
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        hint: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details
        self.hint = hint
        self.status = status

    @property
    def sqlstate(self) -> str | None:
        """``code`` when it is a SQLSTATE (five characters), else ``None``."""
        return self.code if self.code and len(self.code) == 5 else None

    def as_dict(self) -> dict[str, Any]:
        """PostgREST's error JSON shape, plus the class name and status."""
        return {
            "error": type(self).__name__,
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "hint": self.hint,
            "status": self.status,
        }


class NotFound(GatewayError):
    """The table, function or single row asked for does not exist (or is not exposed)."""


class PermissionDenied(GatewayError):
    """A grant or a row level security policy refused the request (SQLSTATE 42501)."""


class Unauthorized(GatewayError):
    """The access token is invalid, expired or signed with another secret (PGRST301/303)."""


class Conflict(GatewayError):
    """A unique (23505) or exclusion (23P01) constraint, or a stale version (PT409)."""


class InvalidInput(GatewayError):
    """The request itself is wrong: bad value, constraint, unknown column, raised exception."""


class RateLimited(GatewayError):
    """A rate limit refused the request (``raise … using errcode = 'PT429'``); retry later."""

    retryable = True


class Unavailable(GatewayError):
    """The database or API is unreachable, overloaded, or aborted the transaction to avoid a
    conflict (serialization failure, deadlock); the same request may succeed when retried."""

    retryable = True


class QueryTimeout(GatewayError):
    """The statement ran longer than the role's ``statement_timeout`` (57014); not retryable."""


_BY_CODE: dict[str, type[GatewayError]] = {
    # class 42: syntax error or access rule violation
    "42501": PermissionDenied,
    "42P01": NotFound,
    "42P17": GatewayError,  # infinite recursion in a policy: a server bug, not the caller's
    # class 23: integrity constraint violation
    "23505": Conflict,
    "23P01": Conflict,
    # misc
    "25006": InvalidInput,
    "57014": QueryTimeout,
    "57P01": Unavailable,
    "57P02": Unavailable,
    "57P03": Unavailable,
    "40001": Unavailable,
    "40P01": Unavailable,
    "P0001": InvalidInput,
    "P0002": NotFound,
    # PostgREST's own codes (v12 and v13)
    "PGRST000": Unavailable,
    "PGRST001": Unavailable,
    "PGRST002": Unavailable,
    "PGRST003": Unavailable,
    "PGRST116": NotFound,
    "PGRST202": NotFound,
    "PGRST205": NotFound,
    "PGRST300": GatewayError,
    "PGRST301": Unauthorized,
    "PGRST302": Unauthorized,
    "PGRST303": Unauthorized,
}

_BY_CLASS: dict[str, type[GatewayError]] = {
    "08": Unavailable,  # connection exception
    "22": InvalidInput,  # data exception
    "23": InvalidInput,  # integrity constraint violation (not null, foreign key, check)
    "28": PermissionDenied,  # invalid authorization specification
    "0L": PermissionDenied,  # invalid grantor
    "0P": PermissionDenied,  # invalid role specification
    "42": InvalidInput,  # undefined column, datatype mismatch, …
    "53": Unavailable,  # insufficient resources
}

_BY_STATUS: dict[int, type[GatewayError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: PermissionDenied,
    404: NotFound,
    405: InvalidInput,
    406: InvalidInput,
    409: Conflict,
    413: InvalidInput,
    416: InvalidInput,
    422: InvalidInput,
    429: RateLimited,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
    520: Unavailable,
}


def _class_for(code: str | None, status: int | None) -> type[GatewayError]:
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code and code.startswith("PT") and code[2:].isdigit():
        return _BY_STATUS.get(int(code[2:]), GatewayError)
    if code and code.startswith(("PGRST1", "PGRST2")):
        # PGRST1xx: the request could not be parsed; PGRST2xx: a column, relationship or
        # function argument the schema cache does not know.
        return InvalidInput
    if code and len(code) == 5 and code[:2] in _BY_CLASS:
        return _BY_CLASS[code[:2]]
    if status is None and code and code.isdigit():
        # postgrest-py puts the HTTP status in ``code`` when the body is not PostgREST JSON.
        status = int(code)
    return _BY_STATUS.get(status, GatewayError) if status is not None else GatewayError


def error_for(
    code: str | None,
    message: str,
    *,
    details: Any = None,
    hint: str | None = None,
    status: int | None = None,
) -> GatewayError:
    """The exception for an error ``code`` (SQLSTATE or PostgREST code), else HTTP ``status``."""
    cls = _class_for(code, status)
    return cls(message, code=code, details=details, hint=hint, status=status)
