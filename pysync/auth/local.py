"""Users and sessions in the embedded database, as GoTrue would create them.

There is no GoTrue server locally; :class:`LocalAuth` writes the rows GoTrue's admin
"create user" writes and signs the tokens GoTrue would sign (the rows themselves are
described in :mod:`pysync.auth.users`, which does the work), so triggers on ``auth.users``,
foreign keys to it and policies using ``auth.uid()``/``auth.jwt()`` see exactly what
production sees. Each call uses its own connection; to create many users in one transaction,
call :mod:`pysync.auth.users` with a connection of your own.

Local only: it needs a connection that may write ``auth`` (``postgres`` locally).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pysync.auth import users
from pysync.auth.errors import AuthError
from pysync.auth.keys import SigningKey, jwks_document
from pysync.auth.session import AuthSession
from pysync.auth.tokens import LOCAL_AUTH_ISSUER
from pysync.auth.users import GOTRUE_BCRYPT_COST, INSTANCE_ID, LocalUser
from pysync.gateway.identity import Identity

__all__ = ["GOTRUE_BCRYPT_COST", "INSTANCE_ID", "LocalAuth", "LocalUser"]


class LocalAuth:
    """Create users and sign sessions for them in a local database (``url`` as ``postgres``).

    Tokens are signed with ``jwt_secret`` (HS256, the legacy secret), or, given
    ``signing_key``, with that asymmetric key as a project on Supabase's signing keys does;
    :meth:`jwks` is then what the project would publish for verifiers.
    """

    def __init__(
        self,
        url: str,
        *,
        jwt_secret: str,
        issuer: str = LOCAL_AUTH_ISSUER,
        bcrypt_cost: int = GOTRUE_BCRYPT_COST,
        expires_in: int = 3600,
        signing_key: SigningKey | None = None,
    ) -> None:
        self._url = url
        self._secret = jwt_secret
        self.signing_key = signing_key
        self._issuer = issuer
        self._cost = bcrypt_cost
        self._expires_in = expires_in

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._url, autocommit=True)

    def create_user(
        self,
        email: str,
        password: str | None = None,
        *,
        phone: str | None = None,
        user_metadata: Mapping[str, Any] | None = None,
        app_metadata: Mapping[str, Any] | None = None,
        confirmed: bool = True,
        user_id: str | None = None,
        role: str = "authenticated",
    ) -> LocalUser:
        """A user with an email identity (:func:`pysync.auth.users.create_user`)."""
        with self._connect() as conn:
            return users.create_user(
                conn,
                email,
                password,
                phone=phone,
                user_metadata=user_metadata,
                app_metadata=app_metadata,
                confirmed=confirmed,
                user_id=user_id,
                role=role,
                bcrypt_cost=self._cost,
            )

    def get_user(self, user_id: str) -> LocalUser:
        with self._connect() as conn:
            return users.get_user(conn, user_id)

    def sign_in_with_password(self, email: str, password: str) -> AuthSession:
        """Check the password against its bcrypt hash, as GoTrue's password grant does."""
        with self._connect() as conn:
            with conn.cursor(row_factory=dict_row) as cursor:
                row = cursor.execute(
                    "select id::text, email_confirmed_at is not null as confirmed"
                    " from auth.users where email = %s and not is_sso_user"
                    " and encrypted_password = extensions.crypt(%s, encrypted_password)",
                    (email.strip().lower(), password),
                ).fetchone()
            if row is None:
                raise AuthError("Invalid login credentials", code="invalid_credentials", status=400)
            if not row["confirmed"]:
                raise AuthError("Email not confirmed", code="email_not_confirmed", status=400)
            return self._session(conn, row["id"], None)

    def session_for(self, user: LocalUser | str, *, now: int | None = None) -> AuthSession:
        """Sign a session for ``user`` (recorded in ``auth.sessions``, as GoTrue does) with
        claims read from its current ``auth.users`` row."""
        with self._connect() as conn:
            return self._session(conn, user.id if isinstance(user, LocalUser) else user, now)

    def _session(self, conn: psycopg.Connection[Any], user_id: str, now: int | None) -> AuthSession:
        return users.open_session(
            conn,
            user_id,
            self.signing_key or self._secret,
            issuer=self._issuer,
            expires_in=self._expires_in,
            now=now,
        )

    def jwks(self) -> dict[str, Any]:
        """The JWKS a project signing with :attr:`signing_key` publishes (empty without one)."""
        return jwks_document([self.signing_key] if self.signing_key else [])

    def identity(self, user: LocalUser | str) -> Identity:
        """A gateway identity for ``user``, with a freshly signed access token."""
        return self.session_for(user).identity()
