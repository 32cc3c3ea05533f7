"""Backups: a round trip into a fresh database keeps every row, grant and policy; a restore
that cannot be verified changes nothing; the SQLite snapshot reads back the same values."""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from pysync.cli.main import main
from pysync.errors import BackupError, RestoreVerificationError
from pysync.migrate import apply_seed, push
from pysync.ops.backup import (
    APP_SCHEMAS,
    DATA_TABLES,
    create_backup,
    manifest_path,
    restore_backup,
)
from pysync.ops.sqlite_export import export_sqlite
from pysync.rls import load_matrix, run_matrix
from tests.helpers import PROJECT_ROOT, connect

TUTOR = "b0000000-0000-4000-8000-000000000001"


def pushed_database(new_database: Callable[[], str]) -> str:
    url = new_database()
    with connect(url) as conn:
        push(conn, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "policies")
        apply_seed(conn, PROJECT_ROOT / "supabase" / "seed.sql")
    return url


def add_rows(url: str) -> uuid.UUID:
    """A new user (through the sign-up trigger), a course with a module, and a file."""
    user = uuid.uuid4()
    with connect(url) as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email, raw_app_meta_data,"
            " raw_user_meta_data, created_at, updated_at)"
            " values (%s, 'authenticated', 'authenticated', %s, %s, %s, now(), now())",
            (
                user,
                f"new-{user.hex[:8]}@example.test",
                json.dumps({"app_role": "tutor"}),
                json.dumps({"display_name": "Backup Tutor"}),
            ),
        )
        course = conn.execute(
            "insert into public.courses (tutor_id, title, status) values (%s, 'Backups 101',"
            " 'published') returning id",
            (user,),
        ).fetchone()
        assert course
        conn.execute(
            "insert into public.course_content (course_id, kind, position, title)"
            " values (%s, 'module', 0, 'Module')",
            (course[0],),
        )
        conn.execute(
            "insert into storage.objects (bucket_id, name, owner) values ('avatars', %s, %s)",
            (f"{user}/me.png", user),
        )
    return user


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Per table: row count and an md5 of every row's text, in order (ids included)."""
    tables = [f"{s}.{t}" for s, t in DATA_TABLES]
    with connect(url) as conn:
        tables += [
            f"{s}.{t}"
            for s, t in conn.execute(
                "select n.nspname, c.relname from pg_class c join pg_namespace n"
                " on n.oid = c.relnamespace where c.relkind in ('r', 'p')"
                " and n.nspname = any(%s)",
                (list(APP_SCHEMAS),),
            ).fetchall()
        ]
        result = {}
        for table in sorted(tables):
            row = conn.execute(
                f"select count(*), coalesce(md5(string_agg(t::text, '|' order by t::text)), '')"  # noqa: S608
                f" from {table} as t"
            ).fetchone()
            assert row
            result[table] = (int(row[0]), str(row[1]))
        return result


def privileges(url: str) -> list[tuple[str, ...]]:
    """Every grant on the application's objects, columns included (aclitems sorted, since
    their order carries no meaning)."""
    with connect(url) as conn:
        rows = conn.execute(
            "select n.nspname, c.relname,"
            " coalesce((select string_agg(x::text, ',' order by x::text)"
            " from unnest(c.relacl) x), ''),"
            " coalesce((select string_agg(a.attname || '=' || (select string_agg(x::text, ','"
            " order by x::text) from unnest(a.attacl) x), ';' order by a.attname)"
            " from pg_attribute a where a.attrelid = c.oid and a.attacl is not null), '')"
            " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = any(%s)"
            " union all select n.nspname, p.oid::regprocedure::text,"
            " coalesce((select string_agg(x::text, ',' order by x::text)"
            " from unnest(p.proacl) x), ''), ''"
            " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname = any(%s) order by 1, 2",
            (list(APP_SCHEMAS), list(APP_SCHEMAS)),
        ).fetchall()
    return [tuple(str(v) for v in row) for row in rows]


def global_default_privileges(url: str) -> list[tuple[str, ...]]:
    with connect(url) as conn:
        rows = conn.execute(
            "select defaclrole::regrole::text, defaclobjtype::text, (select string_agg("
            "x::text, ',' order by x::text) from unnest(defaclacl) x) from pg_default_acl"
            " where defaclnamespace = 0 order by 1, 2"
        ).fetchall()
    return [tuple(str(v) for v in row) for row in rows]


def public_schema_acl(url: str) -> tuple[str, list[tuple[str, ...]]]:
    with connect(url) as conn:
        row = conn.execute(
            "select nspowner::regrole::text || ' ' || coalesce(nspacl::text, '')"
            " from pg_namespace where nspname = 'public'"
        ).fetchone()
        defaults = conn.execute(
            "select defaclrole::regrole::text, defaclobjtype::text, defaclacl::text"
            " from pg_default_acl where defaclnamespace = 'public'::regnamespace order by 1, 2"
        ).fetchall()
    assert row
    return str(row[0]), [tuple(str(v) for v in d) for d in defaults]


@pytest.fixture
def backed_up(new_database: Callable[[], str], tmp_path: Path) -> tuple[str, Path]:
    source = pushed_database(new_database)
    add_rows(source)
    result = create_backup(source, tmp_path / "app.dump")
    assert result.path.is_file() and result.manifest_path.is_file()
    return source, result.path


def test_round_trip_into_a_fresh_database_keeps_every_row(
    backed_up: tuple[str, Path], new_database: Callable[[], str]
) -> None:
    source, archive = backed_up
    target = new_database()
    result = restore_backup(target, archive)
    assert result.ok and len(result.checks) >= 15
    before, after = fingerprint(source), fingerprint(target)
    assert after == before
    assert before["public.courses"][0] >= 1 and before["storage.objects"][0] == 1


def test_restore_keeps_grants_and_supabase_default_privileges(
    backed_up: tuple[str, Path], new_database: Callable[[], str]
) -> None:
    source, archive = backed_up
    untouched = new_database()
    target = new_database()
    restore_backup(target, archive)
    assert privileges(target) == privileges(source)
    assert public_schema_acl(target) == public_schema_acl(untouched)
    # e.g. the foundation's "revoke execute on functions from public" for future functions
    assert global_default_privileges(source) != global_default_privileges(untouched)
    assert global_default_privileges(target) == global_default_privileges(source)


def test_rls_and_the_sign_up_trigger_work_after_restore(
    backed_up: tuple[str, Path], new_database: Callable[[], str]
) -> None:
    _, archive = backed_up
    target = new_database()
    restore_backup(target, archive)
    with connect(target) as conn:
        report = run_matrix(conn, load_matrix(PROJECT_ROOT / "policies" / "matrix.toml"))
    assert report.ok, [r for r in report.results if not r.passed][:5]
    user = add_rows(target)  # the sign-up trigger and storage policies came back
    with connect(target) as conn:
        row = conn.execute("select role from public.profiles where id = %s", (user,)).fetchone()
    assert row == ("tutor",)


def test_restoring_over_an_existing_database_replaces_its_data(
    backed_up: tuple[str, Path], new_database: Callable[[], str]
) -> None:
    source, archive = backed_up
    target = pushed_database(new_database)
    extra = add_rows(target)
    restore_backup(target, archive)
    assert fingerprint(target) == fingerprint(source)
    with connect(target) as conn:
        assert conn.execute("select 1 from auth.users where id = %s", (extra,)).fetchone() is None


def test_a_count_mismatch_rolls_the_whole_restore_back(
    backed_up: tuple[str, Path], new_database: Callable[[], str]
) -> None:
    _, archive = backed_up
    target = pushed_database(new_database)
    before = fingerprint(target)
    manifest = json.loads(manifest_path(archive).read_text())
    manifest["tables"]["public.courses"] += 1
    manifest_path(archive).write_text(json.dumps(manifest))
    with pytest.raises(RestoreVerificationError, match=r"public\.courses.* has \d+ rows"):
        restore_backup(target, archive)
    assert fingerprint(target) == before


def test_a_damaged_archive_is_refused_before_anything_is_dropped(
    backed_up: tuple[str, Path], new_database: Callable[[], str], tmp_path: Path
) -> None:
    _, archive = backed_up
    damaged = tmp_path / "damaged.dump"
    shutil.copy(archive, damaged)
    shutil.copy(manifest_path(archive), manifest_path(damaged))
    with damaged.open("ab") as handle:
        handle.write(b"\0")
    target = pushed_database(new_database)
    before = fingerprint(target)
    with pytest.raises(BackupError, match="does not match its manifest"):
        restore_backup(target, damaged)
    manifest_path(damaged).unlink()
    with pytest.raises(BackupError, match="no manifest"):
        restore_backup(target, damaged)
    assert fingerprint(target) == before


def test_cli_restore_needs_yes(
    backed_up: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    source, archive = backed_up
    assert main(["backup", "restore", str(archive), "--db-url", source]) == 1
    assert "run again with --yes" in capsys.readouterr().err


def test_cli_create_reports_counts_as_json(
    new_database: Callable[[], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = pushed_database(new_database)
    out = tmp_path / "cli.dump"
    assert main(["backup", "create", "--db-url", source, "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(out) and report["bytes"] == out.stat().st_size
    assert report["tables"]["public.profiles"] == fingerprint(source)["public.profiles"][0]


def test_sqlite_snapshot_matches_counts_and_values(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    source = pushed_database(new_database)
    add_rows(source)
    with connect(source) as conn:
        conn.execute(
            "create table public.export_probe (id int primary key, tags text[], flag boolean,"
            " blob bytea, amount numeric, ratio float8, doc jsonb, at timestamptz, day date)"
        )
        conn.execute(
            "insert into public.export_probe values (1, '{a,\"b c\"}', true, '\\x0102',"
            " 12.50, 0.25, '{\"k\": [1, null]}', '2026-12-01 10:00:00.5+01', '2026-12-01'),"
            " (2, null, false, null, null, null, null, null, null)"
        )
        tables = [
            str(r[0])
            for r in conn.execute(
                "select relname from pg_class where relnamespace = 'public'::regnamespace"
                " and relkind in ('r', 'p') and not relispartition"
            ).fetchall()
        ]
        counts = {}
        for table in tables:
            row = conn.execute(f'select count(*) from public."{table}"').fetchone()  # noqa: S608
            assert row
            counts[table] = int(row[0])
    result = export_sqlite(source, tmp_path / "snap.sqlite")
    assert result.tables == counts and counts["courses"] >= 1
    lite = sqlite3.connect(tmp_path / "snap.sqlite")
    for table, rows in counts.items():
        assert lite.execute(f'select count(*) from "{table}"').fetchone() == (rows,)  # noqa: S608
    assert lite.execute("select * from export_probe order by id").fetchall() == [
        (
            1,
            '["a", "b c"]',
            1,
            b"\x01\x02",
            "12.50",
            0.25,
            '{"k": [1, null]}',
            "2026-12-01T09:00:00.5+00:00",
            "2026-12-01",
        ),
        (2, None, 0, None, None, None, None, None, None),
    ]
    tutor = lite.execute("select role, onboarded from profiles where id = ?", (TUTOR,)).fetchone()
    assert tutor == ("tutor", 0)
    with pytest.raises(sqlite3.IntegrityError):
        lite.execute("insert into profiles (id) values (?)", (TUTOR,))
    recorded = dict(lite.execute("select table_name, row_count from _pysync_export").fetchall())
    assert recorded == counts
