"""The RLS benchmark: the shape and sanity of its figures and of the CLI's output, never
its speed (tiny worlds, a few iterations)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pysync.bench.rls import MAX_P95_MS, MAX_RATIO, RlsBenchResult, run_rls_bench
from pysync.cli.main import main
from pysync.errors import PysyncError
from pysync.localdb import LocalDatabase
from pysync.migrate import push
from pysync.seed import PerfPlan, seed_perf
from tests.helpers import PROJECT_ROOT, connect

MIGRATIONS = PROJECT_ROOT / "supabase" / "migrations"
POLICIES = PROJECT_ROOT / "policies"
QUERY_NAMES = [
    "my_courses",
    "course_content",
    "my_conversations",
    "latest_messages",
    "unread_notifications",
    "tutor_sessions_week",
    "my_submissions",
]


def bench_databases(local_db: LocalDatabase) -> list[str]:
    with local_db.admin_connect() as conn:
        rows = conn.execute(
            "select datname from pg_database where datname like 'pysync_bench_%'"
        ).fetchall()
    return [row[0] for row in rows]


def assert_sane(result: RlsBenchResult, *, naive: bool) -> None:
    data = result.as_dict()
    assert [q["name"] for q in data["queries"]] == QUERY_NAMES
    assert data["targets"] == {"ratio": MAX_RATIO, "p95_ms": MAX_P95_MS}
    for query in data["queries"]:
        assert query["rows"] > 0, query  # the picked users have data for every query
        assert 0 < query["p50_ms"] <= query["p95_ms"]
        assert 0 < query["bypass_p50_ms"] <= query["bypass_p95_ms"]
        assert query["ratio"] == pytest.approx(
            query["p95_ms"] / query["bypass_p95_ms"], rel=0.01, abs=0.01
        )
        assert (
            query["within_target"]
            == (query["ratio"] <= MAX_RATIO and query["p95_ms"] <= MAX_P95_MS)
            or abs(query["ratio"] - MAX_RATIO) < 0.01
        )
        assert ("naive_p95_ms" in query) is naive
        if naive:
            assert 0 < query["naive_p50_ms"] <= query["naive_p95_ms"]
    assert data["within_target"] == all(q["within_target"] for q in data["queries"])


def test_scratch_world_is_measured_both_ways_and_dropped(local_db: LocalDatabase) -> None:
    messages: list[str] = []
    result = run_rls_bench(
        local_db,
        users=200,
        iterations=3,
        warmup=1,
        migrations_dir=MIGRATIONS,
        policies_dir=POLICIES,
        progress=messages.append,
    )
    assert_sane(result, naive=False)
    assert (result.users, result.iterations) == (200, 3)
    assert result.seed is not None and result.seed["rows"] > 5000
    assert any("loading the perf world" in message for message in messages)
    assert bench_databases(local_db) == []


def test_naive_copy_is_measured_too_and_dropped(local_db: LocalDatabase) -> None:
    result = run_rls_bench(
        local_db,
        users=200,
        iterations=2,
        warmup=1,
        naive=True,
        migrations_dir=MIGRATIONS,
        policies_dir=POLICIES,
    )
    assert_sane(result, naive=True)
    assert bench_databases(local_db) == []


def test_an_existing_world_is_measured_in_place(
    new_database: Callable[[], str], local_db: LocalDatabase
) -> None:
    url = new_database()
    with connect(url) as conn:
        push(conn, MIGRATIONS, POLICIES)
        seed_perf(conn, PerfPlan(users=150), baseline=False)
    result = run_rls_bench(None, db_url=url, jwt_secret=local_db.jwt_secret, iterations=2, warmup=0)
    assert_sane(result, naive=False)
    assert result.users == 150 and result.seed is None
    with connect(url) as conn:  # nothing written: the gateway verified tokens itself
        assert conn.execute("select count(*) from auth.sessions").fetchone() == (0,)


def test_a_database_without_a_perf_world_is_refused(
    new_database: Callable[[], str], local_db: LocalDatabase
) -> None:
    url = new_database()
    with connect(url) as conn:
        push(conn, MIGRATIONS, POLICIES)
    with pytest.raises(PysyncError, match="pysync seed perf"):
        run_rls_bench(None, db_url=url, jwt_secret=local_db.jwt_secret, iterations=1)


def test_naive_needs_the_embedded_database(local_db: LocalDatabase) -> None:
    with pytest.raises(PysyncError, match="drop --db-url"):
        run_rls_bench(None, db_url=local_db.url(), jwt_secret="x" * 32, naive=True)


def test_cli_prints_the_json_shape(
    schema_project: Path, local_db: LocalDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", "rls", "--users", "150", "--iterations", "2", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert [q["name"] for q in data["queries"]] == QUERY_NAMES
    for query in data["queries"]:
        assert {"name", "p50_ms", "p95_ms", "bypass_p95_ms", "ratio"} <= set(query)
    assert bench_databases(local_db) == []


def test_cli_prints_a_table_with_the_naive_columns(
    schema_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "rls", "--users", "150", "-n", "2", "--naive"]) == 0
    out = capsys.readouterr().out
    assert "my_courses" in out and "naive" in out and "bypass" in out
    assert f"ratio <= {MAX_RATIO:g}x" in out
