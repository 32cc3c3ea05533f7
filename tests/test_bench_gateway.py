"""The gateway benchmark: the shape of its result and of the CLI's output, never its speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pysync.bench import TARGET_RATIO, run_gateway_bench
from pysync.cli.main import main
from pysync.localdb import LocalDatabase
from tests.helpers import write_project


def bench_databases(local_db: LocalDatabase) -> list[str]:
    with local_db.admin_connect() as conn:
        rows = conn.execute(
            "select datname from pg_database where datname like 'pysync_bench_%'"
        ).fetchall()
    return [row[0] for row in rows]


def test_result_has_both_timings_and_their_ratio(local_db: LocalDatabase) -> None:
    messages: list[str] = []
    result = run_gateway_bench(local_db, iterations=5, rows=50, warmup=2, progress=messages.append)
    data = result.as_dict()
    assert (data["iterations"], data["rows"], data["target_ratio"]) == (5, 50, TARGET_RATIO)
    for side in ("gateway", "bare"):
        timing = data[side]
        assert set(timing) == {"p50_ms", "p95_ms", "mean_ms"}
        assert 0 < timing["p50_ms"] <= timing["p95_ms"]
    assert data["ratio_p50"] == pytest.approx(data["gateway"]["p50_ms"] / data["bare"]["p50_ms"])
    assert data["ratio_p95"] == pytest.approx(data["gateway"]["p95_ms"] / data["bare"]["p95_ms"])
    assert data["within_target"] == (data["ratio_p50"] <= TARGET_RATIO)
    assert any("50 rows" in message for message in messages)
    assert bench_databases(local_db) == []


def test_nothing_to_measure_is_refused(local_db: LocalDatabase) -> None:
    with pytest.raises(ValueError):
        run_gateway_bench(local_db, iterations=0)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session_dir: Path) -> Path:
    """A project whose embedded database is the test session's cluster."""
    root = write_project(tmp_path, {})
    monkeypatch.chdir(root)
    monkeypatch.setenv("PYSYNC_DATA_DIR", str(session_dir))
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    monkeypatch.delenv("PYSYNC_DEBUG", raising=False)
    return root


def test_cli_prints_json_figures(
    project: Path, local_db: LocalDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", "gateway", "--iterations", "3", "--rows", "20", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert (data["iterations"], data["rows"]) == (3, 20)
    assert {"gateway", "bare", "ratio_p50", "ratio_p95"} <= set(data)
    assert bench_databases(local_db) == []


def test_cli_prints_a_table(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "gateway", "-n", "3", "--rows", "20"]) == 0
    out = capsys.readouterr().out
    assert "PostgresGateway.select" in out and "bare psycopg" in out
    assert "p50 ratio" in out and f"{TARGET_RATIO:g}x target" in out
