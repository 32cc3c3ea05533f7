"""The gateway through a real transaction-mode pgbouncer (Debian's 1.18, started by the tests):
why ``pooled=True`` turns off prepared statements, and that no request's role or claims reach
the next request served by the same server connection."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict

from pysync.auth import LocalAuth
from pysync.client import Client
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import GatewayError, Identity, PostgresGateway
from pysync.localdb import LocalDatabase
from pysync.localdb.pooler import Pooler, PoolerServer
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

FAIL_NOW = """
create function public.fail_now() returns void language plpgsql as $$
begin
  raise exception 'no such thing';
end
$$;
grant execute on function public.fail_now() to anon;
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


def _server_state(pooler: Pooler, url: str, pid: int, timeout: float = 15.0) -> tuple[Any, ...]:
    """``SESSION_STATE`` of the pooler's server connection ``pid``, asked by plain clients.

    pgbouncer hands a new client whichever idle server connection it likes (one left over
    from an earlier request, say), so one plain client may land elsewhere. First wait, for a
    bounded time, until the admin console reports ``pid`` idle: a server connection still
    linked to a client is handed to no one, and a client queued for a server would wait
    pgbouncer's ``query_wait_timeout`` (two minutes). Then each client holds a transaction
    open, which pins its server connection (a transaction does not reset the session state
    asked for), taking the idle ones until one lands on ``pid``: no more clients than there
    were idle servers, so none of them ever queues. Every client rolls back and closes,
    whatever happened to the others, so none is left to the garbage collector."""
    dbname = _dbname(url)
    deadline = time.monotonic() + timeout
    while True:
        servers = [s for s in pooler.servers(dbname) if s.user == "authenticator"]
        if any(s.remote_pid == pid and s.state == "idle" for s in servers):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"server connection {pid} never became idle: {servers}")
        time.sleep(0.05)
    idle = sum(1 for s in servers if s.state == "idle")
    with contextlib.ExitStack() as stack:
        for _ in range(idle):
            client = stack.enter_context(_pooled(pooler, url))
            client.execute("begin")
            stack.callback(_rollback_quietly, client)
            state = client.execute(SESSION_STATE).fetchone()
            if state is not None and state[0] == pid:
                return tuple(state)
    raise AssertionError(f"no client of the pooler landed on {pid} among {servers}")


def _rollback_quietly(client: psycopg.Connection[Any]) -> None:
    """End ``client``'s transaction so its server connection goes back to the pool; one
    that is already broken needs nothing (closing it releases its server)."""
    with contextlib.suppress(psycopg.Error):
        client.execute("rollback")


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
        conn.execute(FAIL_NOW)
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
                assert _held(pooler, fresh_url) == []
            # A request that fails inside its explicit transaction is rolled back, and its
            # server connection goes back to the pool with it.
            with pytest.raises(GatewayError, match="no such thing"):
                gateway.as_identity(Identity.from_jwt(token)).rpc("fail_now")
            assert _held(pooler, fresh_url) == []
            ctx = gateway.as_identity(Identity.from_jwt(token)).rpc("whoami")
            assert ctx["isolation"] == "repeatable read"
            state = _server_state(pooler, fresh_url, ctx["pid"])
            assert state[1:3] == ("authenticator", "none")
            assert state[6:] == ("read committed", "8s")  # authenticator's own timeout
    finally:
        with local_db.admin_connect() as conn:
            conn.execute(sql.SQL("drop role {}").format(ident))


def _held(pooler: Pooler, url: str) -> list[PoolerServer]:
    """The pooler's server connections for ``url``'s database that a client holds."""
    return [server for server in pooler.servers(_dbname(url)) if server.linked]


def test_a_flush_after_the_sync_holds_a_server_connection(pooler: Pooler, fresh_url: str) -> None:
    """Why a pooled gateway sends each request as one ``Query`` message, not a pipeline.

    psycopg ends a pipeline with a Sync and, when the answer is not in yet, a Flush. Sent
    after pgbouncer has passed on the Sync's ReadyForQuery (here: deliberately), the Flush
    starts a transaction on a server connection that will never answer it, so that
    connection stays linked to an idle client until the client's next message."""
    with _pooled(pooler, fresh_url) as client:
        libpq = client.pgconn
        libpq.nonblocking = 0
        libpq.enter_pipeline_mode()
        libpq.send_query_params(b"select 1", None)
        libpq.pipeline_sync()
        statuses: list[int] = []
        while not statuses or statuses[-1] != pq.ExecStatus.PIPELINE_SYNC:
            result = libpq.get_result()
            if result is not None:
                statuses.append(result.status)
        assert statuses == [pq.ExecStatus.TUPLES_OK, pq.ExecStatus.PIPELINE_SYNC]
        assert _held(pooler, fresh_url) == []

        libpq.send_flush_request()
        libpq.flush()
        deadline = time.monotonic() + 10
        while not (held := _held(pooler, fresh_url)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [server.state for server in held] == ["active"]

        libpq.pipeline_sync()  # its ReadyForQuery lets pgbouncer take the connection back
        result = libpq.get_result()
        assert result is not None and result.status == pq.ExecStatus.PIPELINE_SYNC
        libpq.exit_pipeline_mode()
        assert _held(pooler, fresh_url) == []


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
