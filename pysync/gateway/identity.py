"""Who a gateway call acts as: nobody (anon), the service role, or the bearer of a token."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Identity", "IdentityKind"]


class IdentityKind(StrEnum):
    ANON = "anon"
    SERVICE_ROLE = "service_role"
    TOKEN = "token"


@dataclass(frozen=True)
class Identity:
    """An identity, independent of the gateway that will present it.

    Only a token identity carries a JWT; it is verified by the gateway on every call (as
    PostgREST verifies every request), never here, so an identity can outlive its token's
    expiry and fail with :class:`~pysync.gateway.errors.Unauthorized` exactly when PostgREST
    would. Through PostgREST, ``anon`` and ``service_role`` present the project's API keys;
    through :class:`~pysync.gateway.PostgresGateway` they become the claims
    ``{"role": "anon"}`` and ``{"role": "service_role"}``.
    """

    kind: IdentityKind
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.kind is IdentityKind.TOKEN) != bool(self.token):
            raise ValueError("a token identity needs a token, and only it may carry one")

    @classmethod
    def anon(cls) -> Identity:
        """No token: PostgREST's ``db-anon-role``."""
        return cls(IdentityKind.ANON)

    @classmethod
    def service_role(cls) -> Identity:
        """The service role, which bypasses row level security; for trusted server jobs only."""
        return cls(IdentityKind.SERVICE_ROLE)

    @classmethod
    def from_jwt(cls, token: str) -> Identity:
        """The bearer of ``token`` (a user's access token, or any JWT signed by the project)."""
        return cls(IdentityKind.TOKEN, token)
