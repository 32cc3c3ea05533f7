"""The auth layer's one exception: signing in, refreshing or creating a user failed."""

from __future__ import annotations

from pysync.errors import PysyncError

__all__ = ["AuthError"]


class AuthError(PysyncError):
    """Carries GoTrue's error ``code`` (``invalid_credentials``, ``refresh_token_not_found``…),
    the HTTP ``status`` when there was one, and whether trying again may help."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retryable = retryable
