"""``supabase/config.toml`` agrees with the project: one section per edge function and no
other, the buckets the policies create with their limits, the exposed schemas the RLS audit
assumes, the database's major version and JWT lifetime, and the pre-request hook it names."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import psycopg
import pytest

from pysync.deployment import PRE_REQUEST_HOOK
from pysync.localdb.cluster import PREFERRED_PORT
from pysync.rls.audit import load_audit_config
from tests.helpers import PROJECT_ROOT

Conn = psycopg.Connection[Any]
SUPABASE = PROJECT_ROOT / "supabase"
CONFIG: dict[str, Any] = tomllib.loads((SUPABASE / "config.toml").read_text())

# Built on feat/edge-functions at the same time as this file: tolerated only while absent
# from the tree. Once that branch is merged they exist, the checks below are strict for
# them too, and this set can go.
_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}


def size_in_bytes(text: str) -> int:
    """A Supabase CLI size ("50MiB", "500KB") in bytes."""
    match = re.fullmatch(r"(\d+)\s*([KMG]i?B|B)?", text)
    assert match, f"not a size: {text!r}"
    return int(match[1]) * _UNITS[match[2] or "B"]


def function_directories() -> set[str]:
    """Functions as the Supabase CLI sees them: folders, except shared code (``_shared``,
    any ``_``-prefixed folder) and hidden ones."""
    return {
        path.name
        for path in (SUPABASE / "functions").iterdir()
        if path.is_dir() and not path.name.startswith(("_", "."))
    }


def test_every_function_has_a_section() -> None:
    sections = set(CONFIG["functions"])
    assert function_directories() - sections == set()


def test_every_section_is_a_function_with_its_entrypoint() -> None:
    directories = function_directories()
    for name, section in CONFIG["functions"].items():
        assert name in directories, f"[functions.{name}] has no supabase/functions/{name}/"
        assert section["enabled"] is True
        assert (SUPABASE / section["entrypoint"]).is_file(), section["entrypoint"]


def test_jwt_verification_per_function() -> None:
    verify = {name: section["verify_jwt"] for name, section in CONFIG["functions"].items()}
    # Stripe cannot send a Supabase JWT: with verification on, every webhook would get 401.
    assert verify["payments-webhook"] is False
    assert verify["export-my-data"] is True
    assert verify["push-dispatch"] is True


def test_buckets_match_the_migrated_database(app_conn: Conn) -> None:
    rows = app_conn.execute(
        "select id, public, file_size_limit, allowed_mime_types from storage.buckets"
    ).fetchall()
    in_database = {
        bucket: (public, limit, sorted(types or [])) for bucket, public, limit, types in rows
    }
    in_config = {
        bucket: (
            section["public"],
            size_in_bytes(section["file_size_limit"]),
            sorted(section["allowed_mime_types"]),
        )
        for bucket, section in CONFIG["storage"]["buckets"].items()
    }
    assert in_config == in_database
    largest = max(limit for _, limit, _ in in_config.values())
    assert size_in_bytes(CONFIG["storage"]["file_size_limit"]) >= largest


def test_database_settings_match_the_embedded_database(app_conn: Conn) -> None:
    row = app_conn.execute(
        "select current_setting('server_version_num')::int / 10000,"
        " current_setting('app.settings.jwt_exp')::int"
    ).fetchone()
    assert row is not None
    major, jwt_exp = row
    assert CONFIG["db"]["major_version"] == major
    assert CONFIG["auth"]["jwt_expiry"] == jwt_exp
    assert CONFIG["db"]["port"] == PREFERRED_PORT


def test_exposed_schemas_are_the_audited_ones() -> None:
    audit = load_audit_config(PROJECT_ROOT / "policies" / "audit.toml")
    assert CONFIG["api"]["schemas"] == list(audit.exposed_schemas)


def test_the_named_pre_request_hook_exists(app_conn: Conn) -> None:
    text = (SUPABASE / "config.toml").read_text()
    assert f"pgrst.db_pre_request = '{PRE_REQUEST_HOOK}'" in text
    row = app_conn.execute("select to_regprocedure(%s)", (PRE_REQUEST_HOOK + "()",)).fetchone()
    assert row is not None and row[0] is not None


def test_auth_settings_the_schema_relies_on() -> None:
    auth = CONFIG["auth"]
    # Policies trust the authenticated role, which anonymous sign-ins would also get.
    assert auth["enable_anonymous_sign_ins"] is False
    # Joining an organization by e-mail domain trusts email_confirmed_at.
    assert auth["email"]["enable_confirmations"] is True


@pytest.mark.parametrize("name", sorted(CONFIG["functions"]))
def test_function_sections_use_only_the_clis_keys(name: str) -> None:
    """The Supabase CLI refuses a config.toml with keys it does not know."""
    known = {"enabled", "verify_jwt", "import_map", "entrypoint", "static_files"}
    assert set(CONFIG["functions"][name]) <= known


def test_config_toml_is_the_cli_template() -> None:
    """The sections ``supabase init`` writes are all there (a hand-written file drifts)."""
    for section in ("api", "db", "realtime", "studio", "inbucket", "storage", "auth"):
        assert section in CONFIG
    assert CONFIG["project_id"] == "pysync"
    assert CONFIG["db"]["seed"]["sql_paths"] == ["./seed.sql"]
    assert (SUPABASE / "seed.sql").is_file()
