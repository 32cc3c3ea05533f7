"""The gateway through a real transaction-mode pgbouncer (Debian's 1.18, started by the tests):
why ``pooled=True`` turns off prepared statements, and that no request's role or claims reach
the next request served by the same server connection."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from pysync.auth import LocalAuth
from pysync.client import Client
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import Identity, PostgresGateway
from pysync.localdb import LocalDatabase
from pysync.localdb.pooler import Pooler
from pysync.sync import SyncCache
from tests.helpers import connect
from tests.sync_world import SyncWorld

WHOAMI = """
create function public.whoami() returns jsonb language sql stable as $$
  select jsonb_build_object(
    'pid', pg_backend_pid(),
    'user', current_user,
    'claims', nullif(current_setting('request.jwt.claims', true), ''),
    'path', nullif(current_setting('request.path', true), ''),
    'isolation', current_setting('transaction_isolation'),
    'timeout', current_setting('statement_timeout'))
$$;
grant execute on function public.whoami() to anon, authenticated, service_role;
"""

#: What an idle server connection of the pooler carries when asked directly.
SESSION_STATE = """
select pg_backend_pid(), current_user, current_setting('role'),
       nullif(current_setting('request.jwt.claims', true), ''),
       current_setting('transaction_read_only'), current_setting('search_path'),
       current_setting('transaction_isolation'), current_setting('statement_timeout')
"""


def _dbname(url: str) -> str:
    return str(conninfo_to_dict(url)["dbname"])


def _pooled(pooler: Pooler, url: str, **options: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(pooler.url(_dbname(url), "authenticator"), autocommit=True, **options)


def _server_state(pooler: Pooler, url: str, pid: int) -> tuple[Any, ...]:
    """``SESSION_STATE`` of the pooler's server connection ``pid``, asked by plain clients.

    pgbouncer hands a new client whichever idle server connection it likes (one left over
    from an earlier test, say), so one plain client may land elsewhere. Each client here
    holds a transaction open, which pins its server connection, until one lands on ``pid``
    (a transaction does not reset the session state asked for). The transactions end in the
    order they began, so ``pid``'s goes back to the pool last and is the next one handed out
    (pgbouncer reuses the most recently released); a client that left with its transaction
    open would make pgbouncer drop that server connection instead."""
    clients: list[psycopg.Connection[Any]] = []
    try:
        for _ in range(pooler.pool_size):
            client = _pooled(pooler, url)
            clients.append(client)
            client.execute("begin")
            state = client.execute(SESSION_STATE).fetchone()
            if state is not None and state[0] == pid:
                return tuple(state)
    finally:
        for client in clients:
            client.execute("rollback")
        for client in clients:
            client.close()
    raise AssertionError(f"no server connection of the pooler is {pid}")


def test_the_pooler_shares_server_connections_between_transactions(
    pooler: Pooler, fresh_url: str
) -> None:
    """Transaction mode for real: a session-level SET of one client is seen by another
    client whose transaction lands on the same server connection."""
    with _pooled(pooler, fresh_url) as first, _pooled(pooler, fresh_url) as second:
        pid = first.execute("select pg_backend_pid()").fetchone()
        first.execute("set application_name = 'leaked'")
        seen = second.execute("select pg_backend_pid(), current_setting('application_name')")
        assert seen.fetchone() == (pid[0] if pid else None, "leaked")


def test_automatic_prepared_statements_break_through_the_pooler(
    pooler: Pooler, fresh_url: str
) -> None:
    """Why ``PostgresGateway.connect(…, pooled=True)`` sets ``prepare_threshold=None``."""
    query = "select %s::int + 1"
    with (
        _pooled(pooler, fresh_url, prepare_threshold=0) as prepared,
        _pooled(pooler, fresh_url) as holder,
    ):
        assert prepared.execute(query, (1,)).fetchone() == (2,)  # prepared on server S1
        with holder.transaction():
            holder.execute("select 1")  # S1 is now busy: the next statement runs on S2
            with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                prepared.execute(query, (2,))
    with (
        _pooled(pooler, fresh_url, prepare_threshold=None) as unprepared,
        _pooled(pooler, fresh_url) as holder,
    ):
        assert unprepared.execute(query, (1,)).fetchone() == (2,)
        with holder.transaction():
            holder.execute("select 1")
            assert unprepared.execute(query, (2,)).fetchone() == (3,)


def test_no_role_or_claims_leak_to_the_next_request(pooler: Pooler, fresh_url: str) -> None:
    with connect(fresh_url) as conn:
        conn.execute(WHOAMI)
    auth = LocalAuth(fresh_url, jwt_secret=LOCAL_JWT_SECRET, bcrypt_cost=4)
    user = auth.create_user("pooled@example.com", "pw-123456")
    url = pooler.url(_dbname(fresh_url), "authenticator")
    with PostgresGateway.connect(
        url, jwt_secret=LOCAL_JWT_SECRET, pooled=True, max_size=1
    ) as gateway:
        as_user = gateway.as_identity(auth.identity(user)).rpc("whoami")
        assert as_user["user"] == "authenticated"
        assert json.loads(as_user["claims"])["sub"] == user.id
        # The same server connection, asked by a plain client of the pooler: it is the
        # authenticator again, with no claims, read-write, on the default search_path.
        state = _server_state(pooler, fresh_url, as_user["pid"])
        assert state[1:] == (
            "authenticator",
            "none",
            None,
            "off",
            '"$user", public',
            "read committed",
            "8s",
        )  # fmt: skip (8s: authenticator's own statement_timeout, as on Supabase)
        # And the next request on it, anonymous, carries only its own context.
        anon = gateway.as_identity(Identity.anon()).rpc("whoami")
        assert anon["pid"] == as_user["pid"]
        assert anon["user"] == "anon"
        assert "sub" not in (anon["claims"] or "")


def test_a_roles_isolation_and_timeout_stay_in_its_request(
    local_db: LocalDatabase, pooler: Pooler, fresh_url: str
) -> None:
    """A role with ``default_transaction_isolation`` makes the gateway open an explicit
    ``BEGIN ISOLATION LEVEL …`` in its pipeline; through the pooler it applies to that request
    and the server connection is plain again afterwards."""
    with connect(fresh_url) as conn:
        conn.execute(WHOAMI)
    role = f"pooled_role_{uuid.uuid4().hex[:8]}"
    ident = sql.Identifier(role)
    with local_db.admin_connect() as conn:
        conn.execute(sql.SQL("create role {} nologin inherit").format(ident))
        conn.execute(sql.SQL("grant anon to {}").format(ident))
        conn.execute(sql.SQL("grant {} to authenticator").format(ident))
        conn.execute(sql.SQL("alter role {} set statement_timeout = '4321ms'").format(ident))
        conn.execute(
            sql.SQL("alter role {} set default_transaction_isolation = 'repeatable read'").format(
                ident
            )
        )
    try:
        token = jwt.encode({"role": role, "exp": int(time.time()) + 60}, LOCAL_JWT_SECRET)
        url = pooler.url(_dbname(fresh_url), "authenticator")
        with PostgresGateway.connect(
            url, jwt_secret=LOCAL_JWT_SECRET, pooled=True, max_size=1
        ) as gateway:
            for _ in range(7):  # past psycopg's prepare threshold
                ctx = gateway.as_identity(Identity.from_jwt(token)).rpc("whoami")
                assert (ctx["user"], ctx["isolation"], ctx["timeout"]) == (
                    role, "repeatable read", "4321ms"
                )  # fmt: skip
            state = _server_state(pooler, fresh_url, ctx["pid"])
            assert state[1:3] == ("authenticator", "none")
            assert state[6:] == ("read committed", "8s")  # authenticator's own timeout
    finally:
        with local_db.admin_connect() as conn:
            conn.execute(sql.SQL("drop role {}").format(ident))


def test_concurrent_requests_of_many_users_through_the_pooler(
    pooler: Pooler, fresh_url: str
) -> None:
    """More client connections than the gateways' pools share few server connections, and
    each answer is its own user's (with ``pooled=True`` nothing is prepared)."""
    with connect(fresh_url) as conn:
        conn.execute(WHOAMI)
    auth = LocalAuth(fresh_url, jwt_secret=LOCAL_JWT_SECRET, bcrypt_cost=4)
    users = [auth.create_user(f"u{i}@example.com", "pw-123456") for i in range(4)]
    url = pooler.url(_dbname(fresh_url), "authenticator")
    errors: list[str] = []
    pids: set[int] = set()
    with PostgresGateway.connect(
        url, jwt_secret=LOCAL_JWT_SECRET, pooled=True, max_size=4
    ) as gateway:

        def work(index: int) -> None:
            user = users[index]
            acting = gateway.as_identity(auth.identity(user))
            for _ in range(25):
                answer = acting.rpc("whoami")
                pids.add(int(answer["pid"]))
                if user.id not in (answer["claims"] or ""):
                    errors.append(f"{user.id} got {answer['claims']}")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(users))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert 1 <= len(pids) <= pooler.pool_size


def test_a_local_client_syncs_through_the_pooler(
    pooler: Pooler, app_url: str, tmp_path: Path
) -> None:
    """The public API end to end: ``Client.local(pooler URL, …, pooled=True)`` (sign-in,
    gateway and storage gateway through pgbouncer) and a cache's round trip."""
    world = SyncWorld(app_url)
    try:
        tutor, student = world.user("tutor"), world.user("student")
        conversation = str(world.client(student).conversations.start_direct(tutor.id).id)
    finally:
        world.close()
    url = pooler.url(_dbname(app_url), "postgres")
    with (
        Client.local(url, LOCAL_JWT_SECRET, student, pooled=True) as client,
        SyncCache.open(client, tmp_path / "pooled.db") as cache,
    ):
        for round_number in range(8):  # past psycopg's prepare threshold (5)
            mid = cache.insert(
                "messages",
                {"conversation_id": conversation, "sender_id": student.id, "body": "hi"},
            )
            cache.sync()
            assert cache.get("messages", mid)["version"] == 1, round_number  # type: ignore[index]
        assert cache.status().pending_ops == 0 and cache.status().last_error is None
        assert len(client.messages.page(conversation).items) == 8
