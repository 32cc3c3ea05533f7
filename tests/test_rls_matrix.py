"""The declared access matrix: the project's policies pass it, and the runner can tell."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pysync.cli.main import main
from pysync.rls import coverage_gaps, load_matrix, run_matrix
from pysync.rls.matrix import MatrixError, RpcSpec, function_name
from pysync.rls.world import build_world
from tests.helpers import PROJECT_ROOT

#: Run on PostgreSQL 15 and again on 17 by `make test`.
pytestmark = pytest.mark.sql_suite

MATRIX = PROJECT_ROOT / "policies" / "matrix.toml"
Conn = psycopg.Connection[Any]


@pytest.fixture(scope="module")
def matrix() -> Any:
    return load_matrix(MATRIX)


def test_project_policies_pass_the_whole_matrix(app_conn: Conn, matrix: Any) -> None:
    report = run_matrix(app_conn, matrix)
    failures = [
        f"{r.table} {r.op} as {r.actor}: expected {r.expected}, got {r.got} ({r.detail})"
        for r in report.failures
    ]
    assert failures == []
    assert report.uncovered == []
    assert len(report.results) >= 500
    # Both outcomes are exercised, and denials come from permissions, not from errors.
    outcomes = {r.got for r in report.results}
    assert outcomes == {"allow", "deny"}


def test_a_wrong_expectation_is_reported(app_conn: Conn, matrix: Any) -> None:
    lines = list(matrix.lines)
    index = next(
        i for i, line in enumerate(lines)
        if line.table == "courses" and line.op == "select" and line.row == "draft_course"
    )  # fmt: skip
    lines[index] = dataclasses.replace(lines[index], allow=lines[index].allow | {"anon"})
    report = run_matrix(app_conn, dataclasses.replace(matrix, lines=lines))
    assert [(r.table, r.actor, r.expected, r.got) for r in report.failures] == [
        ("public.courses", "anon", "allow", "deny")
    ]


def test_run_leaves_no_fixture_behind(app_conn: Conn, matrix: Any) -> None:
    before = app_conn.execute("select count(*) from auth.users").fetchone()
    run_matrix(app_conn, matrix)
    after = app_conn.execute("select count(*) from auth.users").fetchone()
    assert before == after
    leftovers = app_conn.execute(
        "select count(*) from auth.users where email like '%@matrix.invalid'"
    ).fetchone()
    assert leftovers == (0,)


def test_uncovered_tables_and_policies_are_gaps(app_conn: Conn, matrix: Any) -> None:
    app_conn.execute("create table public.rogue (id uuid primary key)")
    app_conn.execute("create table public.guarded (id uuid primary key)")
    app_conn.execute("alter table public.guarded enable row level security")
    gaps = coverage_gaps(app_conn, matrix)
    assert "public.rogue: row level security is disabled" in gaps
    assert "public.rogue: no case lines in the access matrix" in gaps
    assert "public.guarded: no case lines in the access matrix" in gaps
    lines = [
        line for line in matrix.lines if not (line.table == "articles" and line.op == "delete")
    ]
    gaps = coverage_gaps(app_conn, dataclasses.replace(matrix, lines=lines))
    assert "public.articles: delete policies have no case line" in gaps


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ('allow = ["owner_tutor", "admin", "service_role"]', 'allow = ["owner_tutr"]'),
            "unknown actors",
        ),
        (('row = "draft_course"', 'row = "no_such_row"'), "needs a row naming a fixture row"),
        (('op = "delete"', 'op = "truncate"'), "op must be one of"),
        (("{published_course}/notes.pdf", "{nowhere}/notes.pdf"), "refers to unknown ['nowhere']"),
    ],
)
def test_malformed_matrix_is_refused_with_its_place(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    text = MATRIX.read_text()
    assert edit[0] in text
    broken = tmp_path / "matrix.toml"
    broken.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(
        MatrixError, match=f"^{broken}.*" + message.replace("[", r"\[").replace("]", r"\]")
    ):
        load_matrix(broken)


def test_cli_reports_json_and_fails_on_a_broken_promise(
    app_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rls", "test", "--db-url", app_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == 0 and report["cases"] == report["passed"] >= 500

    lying = tmp_path / "matrix.toml"
    lying.write_text(
        MATRIX.read_text().replace(
            'row = "draft_course"\nallow = ["owner_tutor", "admin", "service_role"]',
            'row = "draft_course"\nallow = ["owner_tutor", "other_tutor", "admin", "service_role"]',
            1,
        )
    )
    code = main(["rls", "test", "--db-url", app_url, "--json", "--matrix", str(lying)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["failed"] == 1
    assert report["failures"][0]["actor"] == "other_tutor"


def test_parts_beside_the_main_file_are_merged(tmp_path: Path) -> None:
    main_file = tmp_path / "matrix.toml"
    main_file.write_text(MATRIX.read_text())
    (tmp_path / "matrix").mkdir()
    (tmp_path / "matrix" / "extra.toml").write_text(
        '[rows.extra_course]\ntable = "courses"\n'
        'values = { tutor_id = "{other_tutor}", title = "Extra", status = "draft" }\n\n'
        '[[case]]\ntable = "courses"\nop = "select"\nrow = "extra_course"\n'
        'allow = ["other_tutor", "admin", "service_role"]\n'
    )
    merged = load_matrix(main_file)
    assert "extra_course" in merged.rows
    assert merged.lines[-1].row == "extra_course"
    (tmp_path / "matrix" / "clash.toml").write_text(
        '[rows.published_course]\ntable = "courses"\nvalues = { title = "Twin" }\n'
    )
    with pytest.raises(MatrixError, match="row published_course is already defined"):
        load_matrix(main_file)


def test_rows_made_by_triggers_are_taken_over_with_on_conflict(
    app_conn: Conn, tmp_path: Path
) -> None:
    main_file = tmp_path / "matrix.toml"
    main_file.write_text(MATRIX.read_text())
    (tmp_path / "matrix").mkdir()
    part = tmp_path / "matrix" / "prefs.toml"
    row = (
        '[rows.opted_out]\ntable = "notification_preferences"\n'
        'values = { user_id = "{other_student}", category = "grades", enabled = false }\n'
    )
    part.write_text(row + 'on_conflict = ["user_id", "category"]\n')
    matrix = load_matrix(main_file)
    assert matrix.rows["opted_out"].on_conflict == ("user_id", "category")
    world = build_world(app_conn, matrix)
    enabled = app_conn.execute(
        "select enabled, user_id from public.notification_preferences where id = %s",
        (world.ids["opted_out"],),
    ).fetchone()
    assert enabled == (False, world.ids["other_student"])

    part.write_text(row.replace("category = ", "kind = ") + 'on_conflict = ["category"]\n')
    with pytest.raises(MatrixError, match="on_conflict must list columns it sets"):
        load_matrix(main_file)


# -- RPCs: who may execute each function of public -------------------------------------------


def test_every_sync_rpc_is_declared_with_its_roles(matrix: Any) -> None:
    declared = {rpc.function: set(rpc.allow) for rpc in matrix.rpcs}
    assert declared["public.sync_pull(jsonb)"] == {"authenticated", "service_role"}
    assert declared["public.sync_push(uuid, jsonb)"] == {"authenticated", "service_role"}
    assert declared["public.sync_prune()"] == {"service_role"}
    assert {"public.sync_schema()", "public.sync_checksums(jsonb)"} <= set(declared)


def test_a_public_function_without_an_rpc_line_is_a_gap(app_conn: Conn, matrix: Any) -> None:
    app_conn.execute(
        "create function public.rogue_rpc(n integer, tags text[]) returns int"
        " language sql as 'select n'"
    )
    app_conn.execute(
        "create function public.rogue_trigger() returns trigger language plpgsql"
        " as 'begin return new; end'"
    )
    gaps = coverage_gaps(app_conn, matrix)
    assert gaps == ["public.rogue_rpc(integer, text[]): no rpc line in the access matrix"]

    declared = RpcSpec(function_name("rogue_rpc(integer,text[])"), frozenset({"service_role"}))
    covered = dataclasses.replace(matrix, rpcs=[*matrix.rpcs, declared])
    assert coverage_gaps(app_conn, covered) == []
    # Supabase's default privileges let every API role execute a new public function.
    report = run_matrix(app_conn, covered)
    assert [(r.table, r.actor, r.expected, r.got) for r in report.failures] == [
        ("public.rogue_rpc(integer, text[])", "anon", "deny", "allow"),
        ("public.rogue_rpc(integer, text[])", "authenticated", "deny", "allow"),
    ]


def test_a_wrong_rpc_expectation_is_reported(app_conn: Conn, matrix: Any) -> None:
    rpcs = [
        dataclasses.replace(rpc, allow=rpc.allow | {"authenticated"})
        if rpc.function == "public.sync_prune()"
        else rpc
        for rpc in matrix.rpcs
    ]
    missing = RpcSpec("public.no_such_rpc()", frozenset({"authenticated"}))
    report = run_matrix(app_conn, dataclasses.replace(matrix, rpcs=[*rpcs, missing]))
    # A function that does not exist fails for every role, even those it must deny.
    assert sorted((r.table, r.actor, r.expected, r.got) for r in report.failures) == [
        ("public.no_such_rpc()", "anon", "deny", "error"),
        ("public.no_such_rpc()", "authenticated", "allow", "error"),
        ("public.no_such_rpc()", "service_role", "deny", "error"),
        ("public.sync_prune()", "authenticated", "allow", "deny"),
    ]


@pytest.mark.parametrize(
    ("rpc", "message"),
    [
        ('function = "sync_pull(jsonb)"\nallow = ["owner_student"]\n', "unknown roles"),
        ('function = "sync_pull"\nallow = []\n', "function must be a signature"),
        ('function = "sync_pull(jsonb)"\n', "allow must list the API roles"),
        ('function = "public.sync_pull( jsonb )"\nallow = []\n', "is already declared"),
    ],
)
def test_malformed_rpc_lines_are_refused(tmp_path: Path, rpc: str, message: str) -> None:
    main_file = tmp_path / "matrix.toml"
    main_file.write_text(MATRIX.read_text())
    (tmp_path / "matrix").mkdir()
    (tmp_path / "matrix" / "sync.toml").write_text(
        (PROJECT_ROOT / "policies" / "matrix" / "sync.toml").read_text()
    )
    (tmp_path / "matrix" / "zz.toml").write_text("[[rpc]]\n" + rpc)
    with pytest.raises(MatrixError, match=f"zz.toml: rpc 1.*{message}"):
        load_matrix(main_file)
