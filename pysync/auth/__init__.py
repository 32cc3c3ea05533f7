"""Who is calling: local users and tokens as GoTrue makes them, and production sessions."""

from pysync.auth.errors import AuthError
from pysync.auth.local import GOTRUE_BCRYPT_COST, INSTANCE_ID, LocalAuth, LocalUser
from pysync.auth.session import AuthSession, Clock, SupabaseSession
from pysync.auth.tokens import (
    DEMO_KEY_EXPIRY,
    DEMO_KEY_ISSUER,
    LOCAL_AUTH_ISSUER,
    mint_access_token,
    mint_api_key,
)

__all__ = [
    "DEMO_KEY_EXPIRY",
    "DEMO_KEY_ISSUER",
    "GOTRUE_BCRYPT_COST",
    "INSTANCE_ID",
    "LOCAL_AUTH_ISSUER",
    "AuthError",
    "AuthSession",
    "Clock",
    "LocalAuth",
    "LocalUser",
    "SupabaseSession",
    "mint_access_token",
    "mint_api_key",
]
