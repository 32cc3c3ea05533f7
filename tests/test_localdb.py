"""The embedded cluster's lifecycle: create, start, stop, idempotency, stale pid recovery."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pysync.localdb import LocalCluster, LocalDatabase
from pysync.localdb.cluster import SUPERUSER
from tests.helpers import make_tempdir, remove_tree


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A cluster of its own: these tests stop and start it."""
    base = make_tempdir("pysync-lifecycle-")
    cluster = LocalCluster(base / "pg", fast=True)
    yield cluster
    cluster.stop()
    remove_tree(base)


def _server_pid(cluster: LocalCluster) -> int:
    with psycopg.connect(cluster.url(user=SUPERUSER)) as conn:
        row = conn.execute("select pg_backend_pid(), pg_postmaster_start_time()").fetchone()
        assert row is not None
    status = cluster.status()
    assert status.pid is not None
    return status.pid


def test_start_creates_and_runs_cluster(cluster: LocalCluster) -> None:
    assert not cluster.status().initialized
    status = cluster.start()
    assert status.initialized and status.running
    assert status.port is not None
    assert (cluster.pgdata / "PG_VERSION").read_text().strip() == "15"
    with psycopg.connect(cluster.url(user=SUPERUSER)) as conn:
        settings = dict(
            conn.execute(
                "select name, setting from pg_settings"
                " where name in ('wal_level', 'listen_addresses', 'server_version_num')"
            ).fetchall()
        )
    assert settings["wal_level"] == "logical"
    assert settings["listen_addresses"] == "127.0.0.1"
    assert settings["server_version_num"].startswith("15")


def test_start_on_running_cluster_is_a_no_op(cluster: LocalCluster) -> None:
    first = cluster.start()
    pid = _server_pid(cluster)
    second = cluster.start()
    assert second.pid == pid == first.pid
    assert second.port == first.port


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to the postgres user")
def test_server_runs_as_postgres_user_when_root(cluster: LocalCluster) -> None:
    import pwd

    cluster.start()
    postgres_uid = pwd.getpwnam("postgres").pw_uid
    assert cluster.pgdata.stat().st_uid == postgres_uid
    pid = cluster.status().pid
    assert Path(f"/proc/{pid}").stat().st_uid == postgres_uid


def test_stop_is_idempotent_and_keeps_the_port(cluster: LocalCluster) -> None:
    port = cluster.start().port
    assert cluster.stop() is True
    assert cluster.status().running is False
    assert cluster.stop() is False
    # The port is kept when it is still free; another process may take it in between
    # (other clusters start on random ports), and then any free port will do.
    with socket.socket() as probe:
        still_free = probe.connect_ex(("127.0.0.1", port or 0)) != 0
    restarted = cluster.start().port
    assert restarted is not None
    if still_free:
        assert restarted == port


def test_stale_pid_file_is_recovered(cluster: LocalCluster) -> None:
    cluster.start()
    cluster.stop()
    pid_file = cluster.pgdata / "postmaster.pid"
    # A pid file naming a live process that is not this cluster's postmaster (ourselves):
    # PostgreSQL itself would refuse to start with it.
    pid_file.write_text(f"{os.getpid()}\n{cluster.pgdata}\n")
    assert cluster.status().running is False
    assert not pid_file.exists()
    pid_file.write_text(f"{os.getpid()}\n{cluster.pgdata}\n")
    status = cluster.start()
    assert status.running and status.pid != os.getpid()


def test_url_of_stopped_cluster_says_what_to_do(cluster: LocalCluster) -> None:
    cluster.stop()
    with pytest.raises(Exception, match="pysync db start"):
        cluster.url()
    cluster.start()


def test_template_makes_fresh_databases_quickly(local_db: LocalDatabase) -> None:
    url = local_db.create_database("t_template_check", replace=True)
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "select pg_catalog.pg_get_userbyid(datdba), current_setting('app.settings.jwt_exp')"
                " from pg_database where datname = current_database()"
            ).fetchone()
        assert row == ("postgres", "3600")
    finally:
        local_db.drop_database("t_template_check")
