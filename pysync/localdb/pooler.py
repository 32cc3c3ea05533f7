"""A transaction-mode pgbouncer in front of a local cluster, as Supabase's pooler serves it.

Supabase serves most clients through a pooler in *transaction* mode: each transaction may run
on a different server connection, so nothing may depend on session state (``SET`` without
``LOCAL``, session advisory locks, ``LISTEN``) nor on named prepared statements, which
pgbouncer 1.18 (Debian 12's) does not track. :class:`Pooler` writes a configuration for
Debian's ``pgbouncer`` and runs it as a child process on a free loopback port; the tests put
one in front of their cluster and run the gateway and the sync engine through it
(:class:`~pysync.gateway.PostgresGateway` with ``pooled=True``).

Clients log in with SCRAM (every local login role has the local password, as with
``supabase start``), and pgbouncer logs in to the server with the same password from its
``auth_file``. As root the pooler runs as the ``postgres`` system user, like the server.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from pysync.errors import LocalDatabaseError
from pysync.localdb.cluster import LOCAL_PASSWORD, _free_port

__all__ = ["Pooler", "PoolerServer", "pgbouncer_path"]

#: Startup parameters psycopg or other drivers may send that pgbouncer cannot pass on in
#: transaction mode; ignoring them is what Supabase's pooler does too.
IGNORED_STARTUP_PARAMETERS = ("extra_float_digits", "options")


def pgbouncer_path() -> str | None:
    """The ``pgbouncer`` binary (``PYSYNC_PGBOUNCER`` or on ``PATH``, then ``/usr/sbin``)."""
    chosen = os.environ.get("PYSYNC_PGBOUNCER")
    if chosen:
        return chosen if Path(chosen).is_file() else None
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@dataclass(frozen=True)
class PoolerServer:
    """One server connection as pgbouncer's ``SHOW SERVERS`` reports it.

    ``state`` is ``active`` while linked to a client (in a transaction, in transaction
    mode), ``idle`` when it can be handed out, ``used``/``tested``/``new`` in between;
    ``remote_pid`` is the backend's ``pg_backend_pid()``."""

    user: str
    database: str
    state: str
    remote_pid: int
    linked: bool


class Pooler:
    """One pgbouncer (transaction mode) in front of the server at ``127.0.0.1:server_port``.

    ``users`` are the login roles clients may use (all with the local password). Every
    database of the server is reachable (a ``*`` entry), so databases created after the start
    work too. ``pool_size`` is the most server connections per database and user.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        server_port: int,
        users: Sequence[str],
        pool_size: int = 10,
        max_client_conn: int = 400,
    ) -> None:
        self.base_dir = base_dir.resolve()
        self.server_port = server_port
        self.users = tuple(users)
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.config_file = self.base_dir / "pgbouncer.ini"
        self.log_file = self.base_dir / "pgbouncer.log"
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._pg_user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    @classmethod
    def for_database(cls, database: Any, base_dir: Path, **options: Any) -> Pooler:
        """A pooler for a running :class:`~pysync.localdb.LocalDatabase`, admitting every
        login role of its cluster."""
        port = database.status().port
        if port is None:
            raise LocalDatabaseError("the local database is not running: run `pysync db start`")
        with database.admin_connect() as conn:
            rows = conn.execute(
                "select rolname from pg_roles where rolcanlogin order by rolname"
            ).fetchall()
        return cls(base_dir, server_port=port, users=[str(r[0]) for r in rows], **options)

    # -- files -----------------------------------------------------------------------------

    def _own(self, path: Path, mode: int) -> None:
        path.chmod(mode)
        if self._pg_user:
            os.chown(path, self._pg_user.pw_uid, self._pg_user.pw_gid)

    def _write_config(self, port: int) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.base_dir, 0o700)
        auth_file = self.base_dir / "userlist.txt"
        auth_file.write_text(
            "".join(f"{_quote(user)} {_quote(LOCAL_PASSWORD)}\n" for user in self.users)
        )
        self._own(auth_file, 0o600)
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(port),
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": str(auth_file),
            "pool_mode": "transaction",
            "default_pool_size": str(self.pool_size),
            "min_pool_size": "0",
            "reserve_pool_size": "0",
            "max_client_conn": str(self.max_client_conn),
            "ignore_startup_parameters": ",".join(IGNORED_STARTUP_PARAMETERS),
            "server_lifetime": "3600",
            "server_idle_timeout": "60",
            "logfile": str(self.log_file),
            "log_connections": "0",
            "log_disconnections": "0",
            "admin_users": "supabase_admin",
            "stats_users": "supabase_admin",
        }
        body = (
            "; Written by pysync.localdb.pooler\n[databases]\n"
            f"* = host=127.0.0.1 port={self.server_port}\n\n[pgbouncer]\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        self.config_file.write_text(body)
        self._own(self.config_file, 0o600)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> int:
        """Start pgbouncer (a no-op when running); returns its port."""
        if self.running and self.port is not None:
            return self.port
        binary = pgbouncer_path()
        if binary is None:
            raise LocalDatabaseError(
                "pgbouncer not found: run ./scripts/bootstrap.sh --pgbouncer "
                "(apt-get install pgbouncer)"
            )
        port = _free_port(None)
        self._write_config(port)
        kwargs: dict[str, Any] = {}
        if self._pg_user:
            kwargs = {
                "user": self._pg_user.pw_uid,
                "group": self._pg_user.pw_gid,
                "extra_groups": [],
                "env": {**os.environ, "HOME": self._pg_user.pw_dir, "USER": "postgres"},
            }
        self._process = subprocess.Popen(
            [binary, "-q", str(self.config_file)],
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **kwargs,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                self._process = None
                raise LocalDatabaseError(f"pgbouncer exited at start (log: {self.log_file})")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise LocalDatabaseError(
                        f"pgbouncer did not listen on port {port} (log: {self.log_file})"
                    ) from None
                time.sleep(0.05)
        self.port = port
        return port

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop pgbouncer (SIGTERM: immediate shutdown). Returns whether it was running."""
        process, self._process = self._process, None
        self.port = None
        if process is None or process.poll() is not None:
            return False
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return True

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """A URL through the pooler for ``user`` (a role named at construction)."""
        if self.port is None:
            raise LocalDatabaseError("the pooler is not running")
        return f"postgresql://{user}:{LOCAL_PASSWORD}@127.0.0.1:{self.port}/{dbname}"

    def servers(self, dbname: str | None = None) -> list[PoolerServer]:
        """The server connections pgbouncer holds (for ``dbname`` only, if given), read from
        its admin console as ``supabase_admin``.

        The console speaks only the simple query protocol, hence the client-side cursor."""
        with psycopg.connect(
            self.url("pgbouncer", "supabase_admin"),
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
        ) as console:
            cursor = console.execute("SHOW SERVERS")
            names = [column.name for column in cursor.description or ()]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return [
            PoolerServer(
                user=str(row["user"]),
                database=str(row["database"]),
                state=str(row["state"]),
                remote_pid=int(row["remote_pid"]),
                linked=bool(row["link"]),
            )
            for row in rows
            if dbname is None or row["database"] == dbname
        ]

    def __enter__(self) -> Pooler:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
