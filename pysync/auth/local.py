"""Users and sessions in the embedded database, as GoTrue would create them.

There is no GoTrue server locally; :class:`LocalAuth` writes the rows GoTrue's admin
"create user" writes (``internal/api/admin.go``: ``adminUserCreate``) and signs the tokens
GoTrue would sign, so triggers on ``auth.users``, foreign keys to it and policies using
``auth.uid()``/``auth.jwt()`` see exactly what production sees:

* ``auth.users``: ``instance_id`` the zero uuid, ``aud``/``role`` ``authenticated``, email
  lower-cased, bcrypt password (``crypt(pw, gen_salt('bf', 10))``: GoTrue uses Go's
  ``bcrypt.DefaultCost`` 10, ``$2a$10$…``), token columns ``''`` rather than ``NULL`` (Go
  zero strings; GoTrue's own queries compare them to ``''``), ``raw_app_meta_data``
  ``{"provider": "email", "providers": ["email"]}`` merged with the given app metadata, and
  ``raw_user_meta_data`` the given metadata plus ``email_verified: true`` once confirmed;
* ``auth.identities``: provider ``email``, ``provider_id`` the user id, ``identity_data``
  ``{"sub", "email", "email_verified": false, "phone_verified": false}`` (GoTrue records the
  identity's claims at creation and does not rewrite them on confirmation).

Local only: it needs a connection that may write ``auth`` (``postgres`` locally).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pysync.auth.errors import AuthError
from pysync.auth.session import AuthSession
from pysync.auth.tokens import LOCAL_AUTH_ISSUER, mint_access_token
from pysync.gateway.identity import Identity

__all__ = ["GOTRUE_BCRYPT_COST", "INSTANCE_ID", "LocalAuth", "LocalUser"]

#: GoTrue's ``DONTUSEINSTANCEID``: always the zero uuid.
INSTANCE_ID = "00000000-0000-0000-0000-000000000000"
#: Go's ``bcrypt.DefaultCost``, which GoTrue hashes passwords with.
GOTRUE_BCRYPT_COST = 10


@dataclass(frozen=True)
class LocalUser:
    """The parts of an ``auth.users`` row that go into an access token."""

    id: str
    email: str | None
    phone: str | None
    role: str
    aud: str
    app_metadata: Mapping[str, Any] = field(default_factory=dict)
    user_metadata: Mapping[str, Any] = field(default_factory=dict)
    is_anonymous: bool = False


_INSERT_USER = """
insert into auth.users (
    instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
    confirmation_token, recovery_token, email_change_token_new, email_change,
    email_change_token_current, email_change_confirm_status, phone_change,
    phone_change_token, reauthentication_token, phone, raw_app_meta_data,
    raw_user_meta_data, is_sso_user, is_anonymous, created_at, updated_at
) values (
    %(instance_id)s, %(id)s, 'authenticated', %(role)s, %(email)s,
    extensions.crypt(%(password)s, extensions.gen_salt('bf', %(cost)s)),
    case when %(confirmed)s then now() end,
    '', '', '', '', '', 0, '', '', '', %(phone)s, %(app)s, %(user)s, false, false, now(), now()
)
"""

_INSERT_IDENTITY = """
insert into auth.identities (
    provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at
) values (%(id)s::text, %(id)s::uuid, %(data)s, 'email', now(), now(), now())
"""

_SELECT_USER = """
select id::text, email, phone, role, aud, raw_app_meta_data, raw_user_meta_data, is_anonymous
from auth.users where id = %s
"""


def _user(row: Mapping[str, Any]) -> LocalUser:
    return LocalUser(
        id=row["id"],
        email=row["email"],
        phone=row["phone"],
        role=row["role"],
        aud=row["aud"],
        app_metadata=row["raw_app_meta_data"] or {},
        user_metadata=row["raw_user_meta_data"] or {},
        is_anonymous=row["is_anonymous"],
    )


class LocalAuth:
    """Create users and sign sessions for them in a local database (``url`` as ``postgres``)."""

    def __init__(
        self,
        url: str,
        *,
        jwt_secret: str,
        issuer: str = LOCAL_AUTH_ISSUER,
        bcrypt_cost: int = GOTRUE_BCRYPT_COST,
        expires_in: int = 3600,
    ) -> None:
        self._url = url
        self._secret = jwt_secret
        self._issuer = issuer
        self._cost = bcrypt_cost
        self._expires_in = expires_in

    def _connect(self) -> psycopg.Connection[dict[str, Any]]:
        return psycopg.connect(self._url, autocommit=True, row_factory=dict_row)

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
        """A user with an email identity; a random password when none is given (as GoTrue).

        ``app_metadata`` is merged over ``{"provider": "email", "providers": ["email"]}``
        (a ``None`` value removes a key, as GoTrue's ``UpdateAppMetaData`` does).
        """
        new_id = user_id or str(uuid.uuid4())
        email = email.strip().lower()
        app: dict[str, Any] = {"provider": "email", "providers": ["email"]}
        for key, value in (app_metadata or {}).items():
            if value is None:
                app.pop(key, None)
            else:
                app[key] = value
        user_meta = dict(user_metadata or {})
        if confirmed:
            user_meta["email_verified"] = True
        identity = {
            "sub": new_id,
            "email": email,
            "email_verified": False,
            "phone_verified": False,
        }
        try:
            with self._connect() as conn, conn.transaction():
                conn.execute(
                    _INSERT_USER,
                    {
                        "instance_id": INSTANCE_ID,
                        "id": new_id,
                        "role": role,
                        "email": email,
                        "password": password or secrets.token_urlsafe(48),
                        "cost": self._cost,
                        "confirmed": confirmed,
                        "phone": phone or None,
                        "app": Jsonb(app),
                        "user": Jsonb(user_meta),
                    },
                )
                conn.execute(_INSERT_IDENTITY, {"id": new_id, "data": Jsonb(identity)})
        except psycopg.errors.UniqueViolation as exc:
            raise AuthError(
                "A user with this email address has already been registered",
                code="email_exists",
                status=422,
            ) from exc
        return LocalUser(
            id=new_id,
            email=email,
            phone=phone or None,
            role=role,
            aud="authenticated",
            app_metadata=app,
            user_metadata=user_meta,
        )

    def get_user(self, user_id: str) -> LocalUser:
        with self._connect() as conn:
            row = conn.execute(_SELECT_USER, (user_id,)).fetchone()
        if row is None:
            raise AuthError(f"no user {user_id}", code="user_not_found", status=404)
        return _user(row)

    def sign_in_with_password(self, email: str, password: str) -> AuthSession:
        """Check the password against its bcrypt hash, as GoTrue's password grant does."""
        with self._connect() as conn:
            row = conn.execute(
                "select id::text, email_confirmed_at is not null as confirmed from auth.users"
                " where email = %s and not is_sso_user"
                " and encrypted_password = extensions.crypt(%s, encrypted_password)",
                (email.strip().lower(), password),
            ).fetchone()
        if row is None:
            raise AuthError("Invalid login credentials", code="invalid_credentials", status=400)
        if not row["confirmed"]:
            raise AuthError("Email not confirmed", code="email_not_confirmed", status=400)
        return self.session_for(row["id"])

    def session_for(self, user: LocalUser | str, *, now: int | None = None) -> AuthSession:
        """Sign a session for ``user`` (recorded in ``auth.sessions``, as GoTrue does) with
        claims read from its current ``auth.users`` row."""
        user_id = user.id if isinstance(user, LocalUser) else user
        issued_at = int(time.time()) if now is None else now
        session_id = str(uuid.uuid4())
        with self._connect() as conn, conn.transaction():
            row = conn.execute(_SELECT_USER, (user_id,)).fetchone()
            if row is None:
                raise AuthError(f"no user {user_id}", code="user_not_found", status=404)
            conn.execute(
                "insert into auth.sessions (id, user_id, created_at, updated_at, aal)"
                " values (%s, %s, now(), now(), 'aal1')",
                (session_id, user_id),
            )
            conn.execute("update auth.users set last_sign_in_at = now() where id = %s", (user_id,))
        current = _user(row)
        token = mint_access_token(
            self._secret,
            user_id=current.id,
            email=current.email,
            phone=current.phone,
            role=current.role,
            audience=current.aud,
            app_metadata=current.app_metadata,
            user_metadata=current.user_metadata,
            session_id=session_id,
            is_anonymous=current.is_anonymous,
            issuer=self._issuer,
            expires_in=self._expires_in,
            now=issued_at,
        )
        return AuthSession(
            access_token=token,
            refresh_token="",
            expires_at=issued_at + self._expires_in,
            user_id=current.id,
        )

    def identity(self, user: LocalUser | str) -> Identity:
        """A gateway identity for ``user``, with a freshly signed access token."""
        return self.session_for(user).identity()
