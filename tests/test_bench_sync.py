"""The sync benchmark: that every benchmark runs and reports its figures in the documented
shape, on a tiny world. Never its speed (no timing assertion)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pysync.bench.sync import BENCHMARKS, TARGETS, run_sync_bench
from pysync.cli.main import main
from pysync.errors import PysyncError
from pysync.localdb import LocalDatabase
from tests.helpers import PROJECT_ROOT
from tests.test_bench_rls import bench_databases

MIGRATIONS = PROJECT_ROOT / "supabase" / "migrations"
POLICIES = PROJECT_ROOT / "policies"


def test_every_benchmark_runs_and_reports_its_shape(local_db: LocalDatabase) -> None:
    messages: list[str] = []
    result = run_sync_bench(
        local_db,
        users=120,
        rows=300,
        iterations=4,
        push_ops=30,
        capacity_users=5,
        capacity_threads=2,
        capacity_seconds=0.2,
        writes=2,
        files=2,
        file_bytes=4096,
        migrations_dir=MIGRATIONS,
        policies_dir=POLICIES,
        progress=messages.append,
    )
    data = result.as_dict()
    assert [b["name"] for b in data["benchmarks"]] == list(BENCHMARKS)
    assert data["users"] >= 120 and data["rows"] == 300
    assert set(data["load"]) == {"1m", "5m", "15m", "cpus"}
    for bench in data["benchmarks"]:
        assert bench["target"] == TARGETS[bench["name"]]
        assert isinstance(bench["within_target"], bool)
        assert bench["ratio"] is not None and bench["ratio"] > 0
        for side in ("measured", "baseline"):
            if "p50_ms" in bench[side]:
                assert 0 < bench[side]["p50_ms"] <= bench[side]["p95_ms"]
    first = result.figure("first_sync")
    assert first is not None
    assert first.measured["rows"] == 300 and first.baseline["rows"] == 300
    assert first.measured["rows_per_second"] > 0 and first.measured["peak_rss_mb"] > 0
    samples = first.extra["samples"]
    assert samples and samples[-1][0] >= 300  # (rows so far, seconds, RSS KB) per page
    # Three rounds by default, each pair reported; the figure is their median.
    assert first.extra["rounds"] == 3
    by_round = first.extra["rows_per_second_by_round"]
    assert len(by_round) == len(first.extra["floor_rows_per_second_by_round"]) == 3
    assert first.measured["rows_per_second"] == sorted(by_round)[1]
    no_change = result.figure("no_change_pull")
    assert no_change is not None and no_change.measured["buckets"] >= 5
    pushed = result.figure("push")
    assert pushed is not None and pushed.measured["ops"] == 30
    files = result.figure("files")
    assert files is not None and files.measured["files"] == 2
    assert files.measured["upload_mb_s"] > 0 and files.measured["download_mb_s"] > 0
    assert files.baseline["copy_mb_s"] > 0
    assert any("first_sync" in message for message in messages)
    assert bench_databases(local_db) == []


def test_only_runs_the_named_benchmarks(local_db: LocalDatabase) -> None:
    result = run_sync_bench(
        local_db,
        users=60,
        rows=50,
        only=["apply_one_change"],
        iterations=4,
        migrations_dir=MIGRATIONS,
        policies_dir=POLICIES,
    )
    assert [f.name for f in result.figures] == ["apply_one_change"]
    with pytest.raises(PysyncError, match="unknown benchmark"):
        run_sync_bench(local_db, only=["nope"], migrations_dir=MIGRATIONS, policies_dir=POLICIES)


def test_cli_prints_the_json_shape(
    schema_project: Path, local_db: LocalDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["bench", "sync", "--users", "60", "--rows", "40", "-n", "3", "--rounds", "1", "--json"]
    code = main([*args, "--only", "no_change_pull", "--only", "first_sync"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert [b["name"] for b in data["benchmarks"]] == ["no_change_pull", "first_sync"]
    for bench in data["benchmarks"]:
        assert {"measured", "baseline", "ratio", "target", "within_target"} <= set(bench)
        assert "samples" not in bench  # the per-page samples are for --plot only
    assert bench_databases(local_db) == []


def test_cli_prints_a_table(schema_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench", "sync", "--users", "60", "--push-ops", "12", "-n", "3"]
    assert main([*args, "--only", "push"]) == 0
    out = capsys.readouterr().out
    assert "push" in out and "ops/s" in out and "load" in out
