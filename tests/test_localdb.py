"""The embedded cluster's lifecycle: create, start, stop, idempotency, stale pid recovery,
and databases built by an older emulation."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pysync.errors import LocalDatabaseError
from pysync.localdb import LocalCluster, LocalDatabase, emulation
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
        settings: dict[str, str] = dict(
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


def _age(db: LocalDatabase, dbname: str) -> None:
    """Make ``dbname`` look built by release 1: its version a bare digest, without storage's
    delete guard, and postgres a member of the storage owner as release 1 made it."""
    with db.admin_connect(dbname) as conn:
        conn.execute("update pysync_local.emulation set version = '0123456789abcdef'")
        conn.execute("drop trigger protect_objects_delete on storage.objects")
        conn.execute("grant supabase_storage_admin to postgres")


def _state(db: LocalDatabase, dbname: str) -> tuple[str | None, bool, bool]:
    with db.admin_connect(dbname) as conn:
        row = conn.execute(
            "select pysync_local_version, guarded, member from (select"
            " (select version from pysync_local.emulation) as pysync_local_version,"
            " exists (select from pg_trigger where tgname = 'protect_objects_delete') as guarded,"
            " pg_has_role('postgres', 'supabase_storage_admin', 'USAGE') as member) as s"
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def test_older_emulation_is_upgraded_or_rebuilt() -> None:
    """Start upgrades the roles and rebuilds the template and an empty main database;
    a main database with project data is left alone until `db reset` rebuilds it."""
    base = make_tempdir("pysync-upgrade-")
    db = LocalDatabase(base / "pg", jwt_secret="s" * 40, fast=True, preferred_port=None)
    current = (emulation.EMULATION_VERSION, True, False)
    try:
        db.start()
        assert emulation.release_of(emulation.EMULATION_VERSION) == emulation.EMULATION_RELEASE
        assert emulation.release_of("0123456789abcdef") == 1
        _age(db, "pysync_template")
        _age(db, "postgres")
        db.stop()
        db.start()
        assert _state(db, "pysync_template") == current
        assert _state(db, "postgres") == current

        _age(db, "postgres")
        with db.admin_connect("postgres") as conn:
            conn.execute("create table public.kept (id int)")
        db.stop()
        with pytest.raises(LocalDatabaseError, match=r"release 1\).*pysync db reset"):
            db.start()
        with db.admin_connect("postgres") as conn:
            assert conn.execute("select to_regclass('public.kept')").fetchone() == ("kept",)
        db.reset()
        assert _state(db, "postgres") == current
        with db.admin_connect("postgres") as conn:
            assert conn.execute("select to_regclass('public.kept')").fetchone() == (None,)
    finally:
        db.stop()
        remove_tree(base)
