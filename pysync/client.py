"""One signed-in user's view of the platform: the identity plus every data source.

Application code reads like ``client.courses.list_enrolled()``. The same :class:`Client`
runs against a Supabase project (:meth:`Client.supabase`: PostgREST, GoTrue and Storage over
HTTP) and against the embedded database (:meth:`Client.local`: a
:class:`~pysync.gateway.PostgresGateway` logged in as ``authenticator``, replaying PostgREST's
request context), so row level security decides identically in both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import httpx
import jwt
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pysync.auth import AuthSession, LocalAuth, LocalUser, SupabaseSession
from pysync.auth.errors import AuthError
from pysync.datasources import (
    AssignmentsSource,
    Context,
    ConversationsSource,
    CoursesSource,
    DevicesSource,
    EnrollmentsSource,
    FeedbackSource,
    LocalStorage,
    MessagesSource,
    NotificationsSource,
    PaymentsSource,
    PreferencesSource,
    ProfilesSource,
    SessionsSource,
    SubmissionsSource,
    SupabaseStorage,
    SupportSource,
)
from pysync.datasources.storage import STORAGE_PRE_REQUEST
from pysync.errors import ConfigError
from pysync.gateway import Gateway, GatewayError, Identity, PostgresGateway, PostgrestGateway
from pysync.gateway.jwks import JwksKeys

__all__ = ["Client"]

Storage = LocalStorage | SupabaseStorage


class _LocalTokens:
    """Signs a fresh local access token shortly before the current one expires (as a
    refreshing GoTrue session would), so a long-lived local client never goes stale."""

    def __init__(self, auth: LocalAuth, user_id: str, margin: float = 60.0) -> None:
        self._auth = auth
        self._user_id = user_id
        self._margin = margin
        self._session: AuthSession | None = None
        self._lock = threading.Lock()

    def start(self, session: AuthSession) -> None:
        self._session = session

    def __call__(self) -> Identity:
        with self._lock:
            if self._session is None or self._session.needs_refresh(time.time(), self._margin):
                self._session = self._auth.session_for(self._user_id)
            return self._session.identity()


def _as_authenticator(url: str) -> str:
    """The same database, logged in as ``authenticator`` (locally every login role has the
    local password, as with ``supabase start``)."""
    params = {k: v for k, v in conninfo_to_dict(url).items() if v is not None}
    params["user"] = "authenticator"
    return make_conninfo("", **params)


def _user_id_by_email(url: str, email: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select id::text from auth.users where email = %s", (email.strip().lower(),)
        ).fetchone()
    if row is None:
        raise AuthError(f"no local user {email}", code="user_not_found", status=404)
    return str(row[0])


class Client:
    """The data sources of one identity. Every call is one request (one transaction)."""

    def __init__(
        self,
        gateway: Gateway,
        identity: Identity | Callable[[], Identity],
        *,
        storage: Storage | None = None,
        on_close: Sequence[Callable[[], None]] = (),
    ) -> None:
        context = Context(gateway, identity)
        self._context = context
        self._identity = identity
        self._storage = storage
        self._on_close = list(on_close)
        self.profiles = ProfilesSource(context)
        self.courses = CoursesSource(context)
        self.enrollments = EnrollmentsSource(context)
        self.sessions = SessionsSource(context)
        self.feedback = FeedbackSource(context)
        self.assignments = AssignmentsSource(context)
        self.submissions = SubmissionsSource(context)
        self.conversations = ConversationsSource(context)
        self.messages = MessagesSource(context)
        self.notifications = NotificationsSource(context)
        self.payments = PaymentsSource(context)
        self.devices = DevicesSource(context)
        self.preferences = PreferencesSource(context)
        self.support = SupportSource(context)

    # -- constructors ---------------------------------------------------------------------

    @classmethod
    def local(
        cls,
        url: str,
        jwt_secret: str,
        user: str | UUID | LocalUser,
        *,
        password: str | None = None,
        pool_size: int = 4,
        pooled: bool = False,
    ) -> Client:
        """A client for a user of the embedded database.

        ``url`` is the database as ``postgres`` (what ``pysync db status`` shows); requests go
        through a gateway logged in as ``authenticator``, like PostgREST. ``user`` is a
        :class:`~pysync.auth.LocalUser`, a user id, or an e-mail address; with ``password``
        the address signs in with it (checked against its bcrypt hash, as GoTrue does).
        ``pooled=True`` when ``url`` is a transaction-mode pooler (no prepared statements:
        :meth:`PostgresGateway.connect <pysync.gateway.PostgresGateway.connect>`).
        """
        auth = LocalAuth(url, jwt_secret=jwt_secret)
        tokens: _LocalTokens
        if isinstance(user, LocalUser):
            tokens = _LocalTokens(auth, user.id)
        elif isinstance(user, str) and "@" in user:
            if password is not None:
                session = auth.sign_in_with_password(user, password)
                tokens = _LocalTokens(auth, session.user_id)
                tokens.start(session)
            else:
                tokens = _LocalTokens(auth, _user_id_by_email(url, user))
        else:
            tokens = _LocalTokens(auth, str(user))
        tokens()  # fails now, not at the first call, when the user does not exist
        api_url = _as_authenticator(url)
        gateway = PostgresGateway.connect(
            api_url, jwt_secret=jwt_secret, max_size=pool_size, pooled=pooled
        )
        try:
            files = PostgresGateway.connect(
                api_url,
                jwt_secret=jwt_secret,
                schemas=("storage",),
                pre_request=STORAGE_PRE_REQUEST,
                max_size=2,
                pooled=pooled,
            )
        except BaseException:
            gateway.close()
            raise
        storage = LocalStorage(Context(files, tokens))
        return cls(gateway, tokens, storage=storage, on_close=[gateway.close, files.close])

    @classmethod
    def for_token(
        cls,
        gateway: Gateway,
        token: str,
        *,
        storage_gateway: Gateway | None = None,
        storage: Storage | None = None,
    ) -> Client:
        """A client for the bearer of an access token, over an existing gateway (for
        example a server job acting for the user of a request). ``storage_gateway``, a
        gateway whose request schema is ``storage`` and whose ``pre_request`` is
        :data:`~pysync.datasources.storage.STORAGE_PRE_REQUEST`, gives it local storage."""
        identity = Identity.from_jwt(token)
        if storage is None and storage_gateway is not None:
            storage = LocalStorage(Context(storage_gateway, identity))
        return cls(gateway, identity, storage=storage)

    @classmethod
    def supabase(
        cls,
        url: str,
        anon_key: str,
        email: str,
        password: str,
        *,
        http_client: httpx.Client | None = None,
    ) -> Client:
        """Sign in to a Supabase project with e-mail and password (supabase-auth) and reach
        it through its REST and Storage APIs. The session refreshes its token before it
        expires; ``http_client`` replaces the HTTP client (tests use a mock transport).

        ``anon_key`` is the project's publishable key (``sb_publishable_…``) or its legacy
        anon key. A token signed with the project's asymmetric signing key (ES256/RS256) is
        verified against the project's JWKS before it is used; a legacy HS256 token can only
        be checked by the server, which holds the secret.
        """
        session = SupabaseSession.for_project(url, anon_key, http_client=http_client)
        signed_in = session.sign_in_with_password(email, password)
        algorithm = jwt.get_unverified_header(signed_in.access_token).get("alg", "")
        if not str(algorithm).startswith("HS"):
            try:
                JwksKeys.for_project(url, http_client=http_client).verify(signed_in.access_token)
            except GatewayError as exc:
                raise AuthError(
                    f"the project's token does not verify against its JWKS: {exc}",
                    code="bad_jwt",
                    status=401,
                ) from exc
        gateway = PostgrestGateway.connect(url, anon_key, http_client=http_client)
        storage = SupabaseStorage(url, anon_key, session.identity, http_client=http_client)
        return cls(gateway, session.identity, storage=storage)

    # -- reading elsewhere ------------------------------------------------------------------

    def reading_from(
        self, gateway: Gateway, *, on_close: Sequence[Callable[[], None]] = ()
    ) -> Client:
        """The same user (the same, refreshing, token) over another gateway: typically one
        on a read replica, for ``SyncCache.open(client, path, read_client=…)``. The returned
        client has no storage; closing it runs ``on_close`` (not this client's steps)."""
        return Client(gateway, self._identity, on_close=on_close)

    def local_replica(
        self, url: str, jwt_secret: str, *, pool_size: int = 2, pooled: bool = False
    ) -> Client:
        """This user on a local read replica (a hot standby of the embedded database):
        ``url`` as ``postgres``, as for :meth:`local`; the returned client owns its gateway
        (close it). Reads only: a standby refuses writes."""
        gateway = PostgresGateway.connect(
            _as_authenticator(url), jwt_secret=jwt_secret, max_size=pool_size, pooled=pooled
        )
        return self.reading_from(gateway, on_close=[gateway.close])

    # -- the rest -------------------------------------------------------------------------

    @property
    def user_id(self) -> UUID:
        return self._context.user_id

    @property
    def gateway(self) -> Gateway:
        """The gateway acting as this client's user, for what no data source covers."""
        return self._context.gateway()

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            raise ConfigError("this client has no storage: build it with a storage gateway")
        return self._storage

    def close(self) -> None:
        for step in self._on_close:
            step()
        self._on_close.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()
