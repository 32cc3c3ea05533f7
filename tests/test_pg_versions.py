"""PostgreSQL majors: the setting that picks one, the programs found for it, a cluster that
refuses another major's data directory, and client programs at least as new as the server."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from pysync.config import Settings, parse_pg_major
from pysync.errors import BackupError, ConfigError, LocalDatabaseError
from pysync.localdb import LocalCluster, LocalDatabase
from pysync.localdb.binaries import PgInstall, client_candidates, server_install
from pysync.ops._tools import client_install
from pysync.ops.backup import create_backup
from tests.helpers import make_tempdir, remove_tree, write_project


@pytest.mark.parametrize(("text", "major"), [(None, 15), ("", 15), ("15", 15), ("17", 17)])
def test_pg_major_setting_accepts_the_supported_majors(text: str | None, major: int) -> None:
    assert parse_pg_major(text) == major


@pytest.mark.parametrize("text", ["16", "18", "seventeen", "17.2"])
def test_an_unsupported_pg_major_is_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^PYSYNC_PG_MAJOR must be 15 or 17, not "):
        parse_pg_major(text)


def test_each_major_gets_its_own_cluster_under_the_data_dir() -> None:
    root = write_project(make_tempdir("pysync-majors-"), {}, {})
    try:
        fifteen = LocalDatabase.from_settings(Settings.load(root, environ={}))
        seventeen = LocalDatabase.from_settings(
            Settings.load(root, environ={"PYSYNC_PG_MAJOR": "17"})
        )
    finally:
        remove_tree(root)
    assert (fifteen.cluster.pg_major, seventeen.cluster.pg_major) == (15, 17)
    assert fifteen.cluster.base_dir == root / ".pysync" / "pg"
    assert seventeen.cluster.base_dir == root / ".pysync" / "pg17"


def test_a_cluster_refuses_a_data_directory_of_another_major(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "pg", fast=True, pg_major=17)
    cluster.pgdata.mkdir(parents=True)
    (cluster.pgdata / "PG_VERSION").write_text("15\n")
    with pytest.raises(
        LocalDatabaseError, match=r"made by PostgreSQL 15, not 17: set PYSYNC_PG_MAJOR=15"
    ):
        cluster.start()


def test_missing_pg17_programs_say_how_to_install_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYSYNC_PG17_BIN", str(tmp_path))
    with pytest.raises(LocalDatabaseError, match=r"bootstrap\.sh --pg17"):
        server_install(17)


def test_programs_of_another_major_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fifteen = server_install(15)
    monkeypatch.setenv("PYSYNC_PG17_BIN", str(fifteen.bin_dir))
    with pytest.raises(LocalDatabaseError, match=r"is PostgreSQL 15, not 17"):
        server_install(17)


def test_loadable_modules_are_told_apart() -> None:
    fifteen = server_install(15)
    assert fifteen.has_library("pg_stat_statements") and fifteen.has_library("pgcrypto")
    assert not fifteen.has_library("no_such_module")


@pytest.mark.sql_suite
def test_the_server_has_the_contrib_modules_the_emulation_and_dumps_need(
    local_db: LocalDatabase,
) -> None:
    with local_db.admin_connect() as conn:
        rows = conn.execute(
            "select name from pg_available_extensions where name = any(%s) order by name",
            (["pg_stat_statements", "pgcrypto", "pgtap", "uuid-ossp"],),
        ).fetchall()
    assert [r[0] for r in rows] == ["pg_stat_statements", "pgcrypto", "pgtap", "uuid-ossp"]
    assert server_install(local_db.cluster.pg_major).has_library("pg_stat_statements")


def test_client_programs_are_the_oldest_at_least_as_new_as_the_server() -> None:
    majors = sorted({c.major for c in client_candidates()})
    assert 15 in majors, "Debian's postgresql-client-15 is part of the set-up"
    assert client_install(15).major == 15
    newest = majors[-1]
    with pytest.raises(BackupError, match=rf"PostgreSQL {newest + 1} needs pg_dump"):
        client_install(newest + 1)


@pytest.mark.sql_suite  # meant for the PostgreSQL 17 run, where no 17 client programs exist
def test_backup_of_a_server_newer_than_every_client_fails_before_writing(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    url = new_database()
    with psycopg.connect(url) as conn:
        server = conn.info.server_version // 10000
    if any(c.major >= server for c in client_candidates()):
        pytest.skip(f"client programs of PostgreSQL {server} or newer are installed here")
    out = tmp_path / "app.dump"
    with pytest.raises(BackupError, match=rf"^PostgreSQL {server} needs pg_dump, pg_restore"):
        create_backup(url, out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to the postgres user")
def test_programs_the_postgres_user_cannot_reach_are_mirrored_for_it(tmp_path: Path) -> None:
    postgres = pwd.getpwnam("postgres")
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    shutil.copytree(server_install(15).bin_dir, hidden / "bin")
    install = PgInstall(15, hidden / "bin")
    mirrored = install.reachable_by(postgres)
    try:
        assert mirrored.bin_dir.parent.parent == Path("/var/tmp")
        assert install.reachable_by(postgres) == mirrored  # mirrored once, then reused
        result = subprocess.run(
            [str(mirrored.program("postgres")), "--version"],
            capture_output=True, text=True, check=False, user=postgres.pw_uid,
        )  # fmt: skip
        assert result.returncode == 0 and "(PostgreSQL) 15" in result.stdout
    finally:
        shutil.rmtree(mirrored.bin_dir.parent)
