"""Users as GoTrue's admin API makes them, written through a caller's connection.

Every function takes a connection (one that may write ``auth``: ``postgres`` locally, the
platform), so one transaction can create many users: the development seed, the RLS matrix's
fixture world and :class:`~pysync.auth.LocalAuth` all create users here, and so share one
implementation of the rows GoTrue writes (``internal/api/admin.go``: ``adminUserCreate``):

* ``auth.users``: ``instance_id`` the zero uuid, ``aud``/``role`` ``authenticated``, email
  lower-cased, bcrypt password (``crypt(pw, gen_salt('bf', 10))``: GoTrue uses Go's
  ``bcrypt.DefaultCost`` 10, ``$2a$10$…``), token columns ``''`` rather than ``NULL`` (Go
  zero strings; GoTrue's own queries compare them to ``''``), ``raw_app_meta_data``
  ``{"provider": "email", "providers": ["email"]}`` merged with the given app metadata, and
  ``raw_user_meta_data`` the given metadata plus ``email_verified: true`` once confirmed;
* ``auth.identities``: provider ``email``, ``provider_id`` the user id, ``identity_data``
  ``{"sub", "email", "email_verified": false, "phone_verified": false}`` (GoTrue records the
  identity's claims at creation and does not rewrite them on confirmation).

The application role goes into ``app_metadata.app_role``: the project's sign-up trigger reads
it to create the matching profile.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pysync.auth.errors import AuthError
from pysync.auth.session import AuthSession
from pysync.auth.tokens import LOCAL_AUTH_ISSUER, Signer, mint_access_token

__all__ = [
    "APP_ROLES",
    "GOTRUE_BCRYPT_COST",
    "INSTANCE_ID",
    "LocalUser",
    "UserRecord",
    "create_user",
    "delete_user",
    "find_user",
    "get_user",
    "list_users",
    "lookup_user",
    "mint_user_token",
    "open_session",
    "parse_user_id",
]

#: GoTrue's ``DONTUSEINSTANCEID``: always the zero uuid.
INSTANCE_ID = "00000000-0000-0000-0000-000000000000"
#: Go's ``bcrypt.DefaultCost``, which GoTrue hashes passwords with.
GOTRUE_BCRYPT_COST = 10
#: The application roles the sign-up trigger accepts in ``app_metadata.app_role``.
APP_ROLES = ("student", "tutor", "admin")

Conn = psycopg.Connection[Any]


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


@dataclass(frozen=True)
class UserRecord:
    """A user as ``pysync users list`` shows one: the application role is the profile's
    (an admin may have changed it since sign-up), else the one asked for at sign-up."""

    id: str
    email: str | None
    role: str | None
    created: datetime
    confirmed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "created": self.created.isoformat(),
            "confirmed": self.confirmed,
        }


_INSERT_USER = """
insert into auth.users (
    instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
    confirmation_token, recovery_token, email_change_token_new, email_change,
    email_change_token_current, email_change_confirm_status, phone_change,
    phone_change_token, reauthentication_token, phone, raw_app_meta_data,
    raw_user_meta_data, is_sso_user, is_anonymous, created_at, updated_at
) values (
    %(instance_id)s, %(id)s, 'authenticated', %(role)s, %(email)s,
    coalesce(%(hash)s, extensions.crypt(%(password)s, extensions.gen_salt('bf', %(cost)s))),
    case when %(confirmed)s then coalesce(%(created_at)s, now()) end,
    '', '', '', '', '', 0, '', '', '', %(phone)s, %(app)s, %(user)s, false, false,
    coalesce(%(created_at)s, now()), coalesce(%(created_at)s, now())
)
on conflict do nothing
"""

_INSERT_IDENTITY = """
insert into auth.identities (
    provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at
) values (
    %(id)s::text, %(id)s::uuid, %(data)s, 'email', coalesce(%(created_at)s, now()),
    coalesce(%(created_at)s, now()), coalesce(%(created_at)s, now())
)
"""

_SELECT_USER = """
select id::text, email, phone, role, aud, raw_app_meta_data, raw_user_meta_data, is_anonymous
from auth.users where id = %s
"""

#: Users by email (as GoTrue matches it: lower-cased, not SSO) and/or application role.
_SELECT_RECORDS = """
select r.* from (
    select u.id::text, u.email,
        coalesce(p.role, u.raw_app_meta_data ->> 'app_role') as app_role,
        u.created_at, u.email_confirmed_at is not null as confirmed
    from auth.users as u
    left join public.profiles as p on p.id = u.id
    where %(email)s::text is null or (u.email = %(email)s and not u.is_sso_user)
) as r
where %(role)s::text is null or r.app_role = %(role)s
order by r.created_at, r.email
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


def _record(row: tuple[Any, ...]) -> UserRecord:
    return UserRecord(id=row[0], email=row[1], role=row[2], created=row[3], confirmed=row[4])


def create_user(
    conn: Conn,
    email: str,
    password: str | None = None,
    *,
    phone: str | None = None,
    user_metadata: Mapping[str, Any] | None = None,
    app_metadata: Mapping[str, Any] | None = None,
    confirmed: bool = True,
    user_id: str | uuid.UUID | None = None,
    role: str = "authenticated",
    bcrypt_cost: int = GOTRUE_BCRYPT_COST,
    password_hash: str | None = None,
    created_at: datetime | None = None,
    exist_ok: bool = False,
) -> LocalUser:
    """A user with an email identity; a random password when none is given (as GoTrue).

    ``app_metadata`` is merged over ``{"provider": "email", "providers": ["email"]}`` (a
    ``None`` value removes a key, as GoTrue's ``UpdateAppMetaData`` does). ``password_hash``
    stores a ready bcrypt hash instead (a seed hashes its shared password once, not per user);
    ``created_at`` backdates the user. With ``exist_ok``, a user already there under this id
    or email is returned as it is (re-runnable seeds); otherwise that is GoTrue's
    ``email_exists`` error. Runs in a savepoint of the caller's transaction.
    """
    new_id = str(user_id or uuid.uuid4())
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
    identity = {"sub": new_id, "email": email, "email_verified": False, "phone_verified": False}
    with conn.transaction():
        inserted = conn.execute(
            _INSERT_USER,
            {
                "instance_id": INSTANCE_ID,
                "id": new_id,
                "role": role,
                "email": email,
                "hash": password_hash,
                "password": password or secrets.token_urlsafe(48),
                "cost": bcrypt_cost,
                "confirmed": confirmed,
                "phone": phone or None,
                "app": Jsonb(app),
                "user": Jsonb(user_meta),
                "created_at": created_at,
            },
        ).rowcount
        if not inserted:
            existing = conn.execute(
                "select id::text from auth.users where id = %s or (email = %s and not is_sso_user)",
                (new_id, email),
            ).fetchone()
            if not exist_ok or existing is None:
                raise AuthError(
                    "A user with this email address has already been registered",
                    code="email_exists",
                    status=422,
                )
            return get_user(conn, existing[0])
        conn.execute(
            _INSERT_IDENTITY, {"id": new_id, "data": Jsonb(identity), "created_at": created_at}
        )
    return LocalUser(
        id=new_id,
        email=email,
        phone=phone or None,
        role=role,
        aud="authenticated",
        app_metadata=app,
        user_metadata=user_meta,
    )


def get_user(conn: Conn, user_id: str) -> LocalUser:
    """The user with id ``user_id`` (``user_not_found`` when there is none)."""
    with conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(_SELECT_USER, (user_id,)).fetchone()
    if row is None:
        raise AuthError(f"no user {user_id}", code="user_not_found", status=404)
    return _user(row)


def parse_user_id(text: str) -> uuid.UUID | None:
    """``text`` as a user id, or None when it is not a uuid (then it names an e-mail)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def lookup_user(conn: Conn, who: str) -> tuple[uuid.UUID, str | None] | None:
    """``(id, email)`` of the account ``who`` names, by id or by e-mail (any case), or None.

    Commands that take "a user" (``gdpr``, ``rls explain``) accept either, and each says in
    its own words what it could not find.
    """
    user_id = parse_user_id(who)
    if user_id is not None:
        row = conn.execute("select id, email from auth.users where id = %s", (user_id,)).fetchone()
    else:
        row = conn.execute(
            "select id, email from auth.users where lower(email) = lower(%s)"
            " order by created_at limit 1",
            (who,),
        ).fetchone()
    return (row[0], row[1]) if row else None


def find_user(conn: Conn, email: str) -> UserRecord:
    """The user signing in with ``email`` (case-insensitive, as GoTrue matches it)."""
    email = email.strip().lower()
    row = conn.execute(_SELECT_RECORDS, {"email": email, "role": None}).fetchone()
    if row is None:
        raise AuthError(
            f"no user with email {email} (see `pysync users list`)",
            code="user_not_found",
            status=404,
        )
    return _record(row)


def list_users(conn: Conn, role: str | None = None) -> list[UserRecord]:
    """Every user, oldest first; only those with application role ``role`` when given."""
    rows = conn.execute(_SELECT_RECORDS, {"email": None, "role": role}).fetchall()
    return [_record(row) for row in rows]


def delete_user(conn: Conn, email: str) -> UserRecord:
    """Delete the user signing in with ``email``; their profile and rows go with it (the
    schema's foreign keys cascade or set null, and its guards still apply)."""
    with conn.transaction():
        user = find_user(conn, email)
        conn.execute("delete from auth.users where id = %s", (user.id,))
    return user


def open_session(
    conn: Conn,
    user_id: str,
    jwt_secret: Signer,
    *,
    issuer: str = LOCAL_AUTH_ISSUER,
    expires_in: int = 3600,
    now: int | None = None,
) -> AuthSession:
    """Sign a session for ``user_id`` as GoTrue does after a password sign-in: recorded in
    ``auth.sessions``, ``last_sign_in_at`` stamped, claims read from the current row."""
    issued_at = int(time.time()) if now is None else now
    session_id = str(uuid.uuid4())
    with conn.transaction():
        current = get_user(conn, user_id)
        conn.execute(
            "insert into auth.sessions (id, user_id, created_at, updated_at, aal)"
            " values (%s, %s, now(), now(), 'aal1')",
            (session_id, user_id),
        )
        conn.execute("update auth.users set last_sign_in_at = now() where id = %s", (user_id,))
    token = mint_access_token(
        jwt_secret,
        user_id=current.id,
        email=current.email,
        phone=current.phone,
        role=current.role,
        audience=current.aud,
        app_metadata=current.app_metadata,
        user_metadata=current.user_metadata,
        session_id=session_id,
        is_anonymous=current.is_anonymous,
        issuer=issuer,
        expires_in=expires_in,
        now=issued_at,
    )
    return AuthSession(
        access_token=token,
        refresh_token="",
        expires_at=issued_at + expires_in,
        user_id=current.id,
    )


def mint_user_token(
    conn: Conn,
    email: str,
    jwt_secret: Signer,
    *,
    issuer: str = LOCAL_AUTH_ISSUER,
    expires_in: int = 3600,
    now: int | None = None,
) -> tuple[UserRecord, AuthSession]:
    """An access token for the user signing in with ``email``, as a password sign-in would
    give them (``user_not_found`` for an unknown email)."""
    user = find_user(conn, email)
    session = open_session(conn, user.id, jwt_secret, issuer=issuer, expires_in=expires_in, now=now)
    return user, session
