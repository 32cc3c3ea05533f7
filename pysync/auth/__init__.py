"""Who is calling: local users and tokens as GoTrue makes them, and production sessions."""

from pysync.auth.errors import AuthError
from pysync.auth.keys import SigningKey, jwks_document
from pysync.auth.local import LocalAuth
from pysync.auth.session import AuthSession, Clock, SupabaseSession
from pysync.auth.tokens import (
    DEMO_KEY_EXPIRY,
    DEMO_KEY_ISSUER,
    LOCAL_AUTH_ISSUER,
    mint_access_token,
    mint_api_key,
)
from pysync.auth.users import (
    APP_ROLES,
    GOTRUE_BCRYPT_COST,
    INSTANCE_ID,
    LocalUser,
    UserRecord,
    create_user,
    delete_user,
    find_user,
    get_user,
    list_users,
    mint_user_token,
    open_session,
)

__all__ = [
    "APP_ROLES",
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
    "SigningKey",
    "SupabaseSession",
    "UserRecord",
    "create_user",
    "delete_user",
    "find_user",
    "get_user",
    "jwks_document",
    "list_users",
    "mint_access_token",
    "mint_api_key",
    "mint_user_token",
    "open_session",
]
