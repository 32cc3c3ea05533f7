"""``pysync gen types``: models generated from the live catalog.

Three kinds of proof: golden files for a small purpose-built schema that holds every case the
writers handle (so a change to the output is a reviewed diff), checks of the whole platform
schema's output by real tools (``deno check`` for TypeScript, a Dart grammar for Dart, mypy
and the data sources for Python), and a drift test: the committed Python models are exactly
what the migrations generate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pysync.cli.main import main
from pysync.gen import generate, introspect, render
from pysync.gen.introspect import literals_of_check
from pysync.gen.names import class_name, literal_type_name
from tests.helpers import PROJECT_ROOT, connect

GOLDEN = PROJECT_ROOT / "tests" / "fixtures" / "gen"
DENO = PROJECT_ROOT / ".tools" / "node_modules" / ".bin" / "deno"
UPDATE = os.environ.get("PYSYNC_UPDATE_GOLDEN") == "1"

#: Every case the writers distinguish, in one small schema.
CATALOG_SQL = """
create type public.mood as enum ('happy', 'so_so', 'in');
create table public.authors (
    id uuid primary key default gen_random_uuid(),
    name text not null
);
create table public.notes (
    id bigint generated always as identity primary key,
    author_id uuid not null references public.authors (id),
    title varchar(80) not null,
    body text,
    stars int4 not null default 0,
    price numeric(10, 2),
    ratio float8,
    pinned bool not null default false,
    due_on date,
    created_at timestamptz not null default now(),
    payload jsonb not null default '{}',
    extra json,
    tags text[] not null default '{}',
    scores int4[],
    mood public.mood,
    status text not null default 'draft' check (status in ('draft', 'in_review', 'it''s done')),
    kind text check (kind in ('a', 'b')),
    title_length int4 generated always as (length(title)) stored,
    constraint notes_range check (stars between 0 and 5)
);
create table public.profiles_extra (
    author_id uuid primary key references public.authors (id),
    bio text not null
);
create view public.note_titles as select id, title from public.notes;
create function public.count_notes(author uuid, since timestamptz default null)
returns int8 language sql stable as 'select count(*) from public.notes';
create function public.note_stats()
returns table (author_id uuid, notes int8) language sql stable
as 'select author_id, count(*) from public.notes group by 1';
create function public.latest_notes(how_many int4 default 10)
returns setof public.notes language sql stable as 'select * from public.notes limit how_many';
create function public.touch() returns void language sql as 'select 1';
create function public.hidden() returns int4 language sql as 'select 1';
revoke execute on function public.hidden() from public, anon, authenticated, service_role;
grant select on public.authors, public.notes, public.profiles_extra, public.note_titles
    to anon, authenticated, service_role;
-- The sync RPCs' signatures (bodies aside): their payloads are declared, so typed; a function
-- that only shares a name (sync_checksums with another argument) keeps plain JSON.
create function public.sync_schema() returns jsonb language sql stable as 'select null::jsonb';
create function public.sync_pull(request jsonb) returns json language sql stable
as 'select null::json';
create function public.sync_push(client_id uuid, ops jsonb) returns jsonb language sql
as 'select null::jsonb';
create function public.sync_checksums(buckets jsonb) returns jsonb language sql stable
as 'select null::jsonb';
create function public.sync_prune() returns jsonb language sql as 'select null::jsonb';
revoke execute on function public.sync_prune() from public, anon, authenticated;
create table public.not_exposed (id int primary key);
revoke all on public.not_exposed from anon, authenticated, service_role;
"""


@pytest.fixture
def catalog_url(fresh_url: str) -> str:
    with connect(fresh_url) as conn:
        conn.execute(CATALOG_SQL)
    return fresh_url


@pytest.fixture(scope="module")
def platform_conn(app_url: str) -> Iterator[psycopg.Connection[Any]]:
    with connect(app_url) as conn:
        yield conn


def _check_golden(lang: str, files: dict[str, str]) -> None:
    folder = GOLDEN / lang
    if UPDATE:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
    committed = {path.name: path.read_text() for path in sorted(folder.iterdir())}
    assert sorted(committed) == sorted(files), "run with PYSYNC_UPDATE_GOLDEN=1 to refresh"
    for name, text in files.items():
        assert text == committed[name], f"{lang}/{name} differs from the golden file"


# -- reading the catalog ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("(status = ANY (ARRAY['a'::text, 'b'::text]))", ("a", "b")),
        (
            "((kind)::text = ANY ((ARRAY['x'::character varying,"
            " 'y'::character varying])::text[]))",
            ("x", "y"),
        ),
        ("(status = ANY (ARRAY['it''s'::text]))", ("it's",)),
        ("((stars >= 0) AND (stars <= 5))", None),
        ("(other = ANY (ARRAY['a'::text]))", None),
        ("(status = ANY (ARRAY['a'::text, lower('B'::text)]))", None),
    ],
)
def test_literals_come_only_from_a_plain_in_list(
    expression: str, expected: tuple[str, ...] | None
) -> None:
    column = "kind" if "kind" in expression else "status"
    assert literals_of_check(column, expression) == expected


def test_the_catalog_is_read_as_the_server_describes_it(catalog_url: str) -> None:
    with connect(catalog_url) as conn:
        schema = introspect(conn, ["public"])
    names = [r.name for r in schema.relations]
    assert names == ["authors", "note_titles", "notes", "profiles_extra"]  # not_exposed: no grant
    notes = next(r for r in schema.relations if r.name == "notes")
    columns = {c.name: c for c in notes.columns}
    assert columns["status"].literals == ("draft", "in_review", "it's done")
    assert columns["stars"].literals is None  # a range check is not a set of literals
    assert columns["id"].is_identity and columns["id"].has_default
    assert columns["title_length"].is_generated
    assert columns["tags"].is_array and columns["tags"].type == "text"
    assert columns["mood"].is_enum and columns["mood"].nullable
    assert [e.values for e in schema.enums] == [("happy", "so_so", "in")]
    functions = {f.name: f for f in schema.functions}
    assert "hidden" not in functions  # no API role may execute it
    # The sync RPCs' declared payloads bind to the exact declared signatures only.
    assert functions["sync_pull"].payload is not None
    assert functions["sync_push"].payload is not None
    assert functions["sync_checksums"].payload is None  # `buckets jsonb`, not `request jsonb`
    assert functions["latest_notes"].returns_set and functions["latest_notes"].returns == "notes"
    assert [p.name for p in functions["note_stats"].returns_table] == ["author_id", "notes"]
    assert [(a.name, a.has_default) for a in functions["count_notes"].arguments] == [
        ("author", False),
        ("since", True),
    ]
    profiles_extra = next(r for r in schema.relations if r.name == "profiles_extra")
    assert profiles_extra.foreign_keys[0].one_to_one


def test_names() -> None:
    assert class_name("support_queries") == "SupportQuery"
    assert class_name("session_feedback") == "SessionFeedback"
    assert class_name("course_content") == "ContentItem"
    assert literal_type_name("tutoring_sessions", "status") == "TutoringSessionStatus"


# -- golden files -------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["dart", "typescript", "python"])
def test_output_matches_the_golden_files(catalog_url: str, lang: str) -> None:
    with connect(catalog_url) as conn:
        files = generate(conn, lang)
    _check_golden(lang, files)
    if lang == "dart":
        for name, text in files.items():
            assert _dart_errors(text.encode()) == [], name


# -- the platform schema, checked by real tools -------------------------------------------


def test_committed_python_models_match_the_migrations(
    platform_conn: psycopg.Connection[Any],
) -> None:
    """``pysync/datasources/rows.py`` and ``sync_payloads.py`` are generated: regenerate them
    after a migration with ``pysync gen types --lang python --out pysync/datasources``."""
    files = generate(platform_conn, "python")
    assert sorted(files) == ["rows.py", "sync_payloads.py"]
    for name, text in files.items():
        committed = (PROJECT_ROOT / "pysync" / "datasources" / name).read_text()
        assert text == committed, (
            f"pysync/datasources/{name} drifted from the schema: run "
            "`pysync gen types --lang python --out pysync/datasources`"
        )


def _dart_errors(source: bytes) -> list[str]:
    tree_sitter = pytest.importorskip("tree_sitter")
    tree_sitter_dart = pytest.importorskip("tree_sitter_dart")
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_dart.language()))
    found: list[str] = []
    stack = [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            found.append(f"{node.start_point}: {node.text[:60]!r}")
        stack.extend(node.children)
    return found


def test_the_dart_grammar_catches_broken_code() -> None:
    assert _dart_errors(b"class A { int f( => 1; }")


def test_platform_dart_models_parse(platform_conn: psycopg.Connection[Any]) -> None:
    files = generate(platform_conn, "dart")
    expected = {"profiles.dart", "courses.dart", "enums.dart", "rpc.dart", "models.dart"}
    assert expected | {"sync_payloads.dart"} <= set(files)
    for name, text in files.items():
        assert _dart_errors(text.encode()) == [], name
        assert all(len(line) <= 80 for line in text.splitlines() if not line.startswith("//")), name
    # Private helpers are referenced by name (`_list(_string)`): each must be defined in the
    # file that uses it, which the grammar alone does not check.
    for name, text in files.items():
        used = set(re.findall(r"(?<![\w.'])(_[A-Za-z]\w*)", text))
        defined = set(re.findall(r"^[^/ ].*?(?<![\w.])(_[A-Za-z]\w*)\s*[(<=]", text, re.M))
        assert used <= defined, (name, used - defined)
    barrel = files["models.dart"]
    assert all(f"export '{name}';" in barrel for name in files if name != "models.dart")


def test_platform_typescript_passes_deno_check(
    platform_conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    if not DENO.exists():
        pytest.skip("deno is installed by `scripts/bootstrap.sh --deno` (make test does)")
    (text,) = generate(platform_conn, "typescript").values()
    (tmp_path / "database.types.ts").write_text(text)
    # Code written against `supabase gen types typescript` output must compile, and a wrong
    # literal must not.
    (tmp_path / "use.ts").write_text(
        "import type { Database, Json, SyncOpStatus, SyncPushOp, Tables, TablesInsert }\n"
        '  from "./database.types.ts";\n'
        'type Course = Tables<"courses">;\n'
        'const status: Course["status"] = "published";\n'
        'const insert: TablesInsert<"messages"> = { conversation_id: "c", body: "hi",'
        ' sender_id: "s" };\n'
        "// @ts-expect-error: not a course status\n"
        'const wrong: Course["status"] = "bogus";\n'
        # The sync RPCs take and return their declared payloads, not Json.
        'type Pull = Database["public"]["Functions"]["sync_pull"];\n'
        'const args: Pull["Args"] = { request: { version: 5, limit: 100,\n'
        '  buckets: { "messages:m": { cursor: "10:12:11", round: null, after: null } },\n'
        '  subscriptions: [{ stream: "course_preview", key: "k" }] } };\n'
        'const firstValue = (page: Pull["Returns"]): Json | undefined =>\n'
        "  page.buckets[0]?.rows[0]?.[0];\n"
        'const byColumn = (page: Pull["Returns"]): Json | undefined =>\n'
        "  page.buckets[0]?.by_column?.[0]?.[0];\n"
        "// @ts-expect-error: the types describe wire version 5 only\n"
        'const v1: Pull["Args"] = { request: { version: 4 } };\n'
        'type Push = Database["public"]["Functions"]["sync_push"];\n'
        'const push: Push["Args"] = { client_id: "c", ops: [{ op_id: 1, table: "messages",\n'
        '  kind: "insert", id: "i", data: { body: "hi" }, base_version: null }] };\n'
        'const opStatus = (answer: Push["Returns"]): SyncOpStatus | undefined =>\n'
        "  answer.results[0]?.status;\n"
        "// @ts-expect-error: not an op kind\n"
        'const upsert: SyncPushOp["kind"] = "upsert";\n'
        "console.log(status, insert, wrong, args, firstValue, byColumn, v1, push, opStatus,\n"
        "  upsert);\n"
    )
    result = subprocess.run(
        [str(DENO), "check", "--no-lock", "use.ts"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr


# -- the command --------------------------------------------------------------------------


def test_cli_writes_typescript_to_stdout_and_dart_to_a_folder(
    schema_project: Path,
    app_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["gen", "types", "--lang", "typescript", "--db-url", app_url]) == 0
    out = capsys.readouterr().out
    assert "export type Database = {" in out and "courses: {" in out
    assert main(["gen", "types", "--lang", "dart", "--db-url", app_url]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"error: dart writes {len(generate_for(app_url, 'dart'))} files: give --out DIR"
    ]
    target = tmp_path / "lib" / "models"
    assert main(["gen", "types", "--lang", "dart", "--out", str(target), "--db-url", app_url]) == 0
    assert (target / "models.dart").is_file() and (target / "courses.dart").is_file()
    capsys.readouterr()
    # Python writes rows.py and sync_payloads.py: a folder, or --json.
    assert main(["gen", "types", "--lang", "python", "--db-url", app_url]) == 1
    assert capsys.readouterr().err.strip() == "error: python writes 2 files: give --out DIR"
    assert main(["gen", "types", "--lang", "python", "--json", "--db-url", app_url]) == 0
    files = json.loads(capsys.readouterr().out)["files"]
    assert files["rows.py"] == (PROJECT_ROOT / "pysync" / "datasources" / "rows.py").read_text()


def generate_for(url: str, lang: str) -> dict[str, str]:
    with connect(url) as conn:
        return render(introspect(conn, ["public"]), lang)
