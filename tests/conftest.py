"""Fixtures: one throw-away cluster per test session, fresh databases cloned from the
Supabase-emulation template, and connections whose work is rolled back."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pysync.config import LOCAL_JWT_SECRET, parse_pg_major
from pysync.localdb import LocalDatabase
from pysync.localdb.pooler import Pooler, pgbouncer_path
from pysync.localdb.replica import ReadReplica, pg_basebackup_available
from pysync.migrate import apply_seed, push
from tests.helpers import PROJECT_ROOT, connect, make_tempdir, remove_tree, write_project


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    path = make_tempdir("pysync-test-")
    yield path
    remove_tree(path)


@pytest.fixture(scope="session")
def local_db(session_dir: Path) -> Iterator[LocalDatabase]:
    """The test session's own embedded database (not the developer's), of the major that
    ``PYSYNC_PG_MAJOR`` names (``make test`` runs the ``sql_suite`` tests again on 17)."""
    db = LocalDatabase(
        session_dir / "pg",
        jwt_secret=LOCAL_JWT_SECRET,
        fast=True,
        preferred_port=None,
        pg_major=parse_pg_major(os.environ.get("PYSYNC_PG_MAJOR")),
    )
    db.start()
    yield db
    db.stop()


@pytest.fixture(scope="session")
def pooler(local_db: LocalDatabase, session_dir: Path) -> Iterator[Pooler]:
    """A transaction-mode pgbouncer in front of the session's cluster, started by the first
    test that needs it (``Pooler.url(dbname, "authenticator")``; gateways over it need
    ``pooled=True``)."""
    if pgbouncer_path() is None:
        pytest.skip("pgbouncer is not installed: run ./scripts/bootstrap.sh --pgbouncer as root")
    made = Pooler.for_database(local_db, session_dir / "pgbouncer")
    made.start()
    yield made
    made.stop()


@pytest.fixture(scope="module")
def replica(local_db: LocalDatabase, session_dir: Path) -> Iterator[ReadReplica]:
    """A streaming hot standby of the session's cluster (``pg_basebackup -R``), for the
    modules that need one; ``wait_for_replay()`` before reading what the primary wrote."""
    if not pg_basebackup_available(local_db.cluster.pg_major):
        pytest.skip(
            f"no pg_basebackup for PostgreSQL {local_db.cluster.pg_major} "
            "(Debian's postgresql-15 has it; the npm registry's 17 build has server programs only)"
        )
    made = ReadReplica(local_db, session_dir / f"replica-{uuid.uuid4().hex[:8]}")
    made.start()
    yield made
    made.stop()
    remove_tree(made.cluster.base_dir)


@pytest.fixture
def new_database(local_db: LocalDatabase) -> Iterator[Callable[[], str]]:
    """Factory of fresh Supabase-like databases, dropped after the test."""
    created: list[str] = []

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        created.append(name)
        return local_db.create_database(name)

    yield make
    for name in created:
        local_db.drop_database(name)


@pytest.fixture
def fresh_url(new_database: Callable[[], str]) -> str:
    """A fresh database with the emulation only (no migrations)."""
    return new_database()


@pytest.fixture(scope="module")
def app_url(local_db: LocalDatabase) -> Iterator[str]:
    """A database per test module with the project's migrations, policies and seed."""
    name = f"app_{uuid.uuid4().hex[:12]}"
    url = local_db.create_database(name)
    with connect(url) as conn:
        push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
        apply_seed(conn, PROJECT_ROOT / "supabase" / "seed.sql")
    yield url
    local_db.drop_database(name)


@pytest.fixture
def conn(fresh_url: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(fresh_url) as connection:
        yield connection


@pytest.fixture
def app_conn(app_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the module's app database; each test's work is rolled back."""
    with connect(app_url) as connection, connection.transaction(force_rollback=True):
        yield connection


@pytest.fixture
def schema_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session_dir: Path) -> Path:
    """A project with this repository's migrations and policies as the current directory,
    its embedded database the test session's cluster (for the CLI's benchmarks)."""
    root = write_project(
        tmp_path,
        {
            path.name: path.read_text()
            for path in (PROJECT_ROOT / "supabase" / "migrations").glob("*.sql")
        },
        {path.name: path.read_text() for path in (PROJECT_ROOT / "policies").glob("*.sql")},
    )
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYSYNC_DATA_DIR", str(session_dir))
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    monkeypatch.delenv("PYSYNC_DEBUG", raising=False)
    return root
