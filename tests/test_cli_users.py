"""``pysync users …`` and ``pysync jwt mint``: GoTrue-style users from the command line, and
tokens that work as they would from GoTrue."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import psycopg
import pytest

from pysync.auth import LocalAuth, mint_api_key
from pysync.cli.main import main
from pysync.config import LOCAL_JWT_SECRET
from pysync.gateway import Identity, PostgresGateway, eq
from pysync.localdb import LocalDatabase
from tests.helpers import PROJECT_ROOT

#: What `supabase start` prints as the local anon key.
LOCAL_ANON_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAi"
    "OjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
)
REMOTE_URL = "postgresql://postgres:secret@db.abcdefghijklmnop.supabase.co:5432/postgres"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    for name in ("SUPABASE_DB_URL", "SUPABASE_JWT_SECRET", "SUPABASE_URL", "PYSYNC_DEBUG"):
        monkeypatch.delenv(name, raising=False)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def one_line_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, _, err = cli(capsys, *args)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


def email() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}@example.net"


@pytest.fixture
def gateway(local_db: LocalDatabase, app_url: str) -> Iterator[PostgresGateway]:
    dbname = app_url.rsplit("/", 1)[1]
    with PostgresGateway.connect(
        local_db.url(dbname, user="authenticator"), jwt_secret=LOCAL_JWT_SECRET, max_size=1
    ) as gw:
        yield gw


def test_users_are_created_listed_and_deleted_with_their_profiles(
    app_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    address = email()
    created = cli_json(
        capsys, "users", "create", address.upper(), "--role", "tutor", "--name", "Tia Tutor",
        "--db-url", app_url,
    )  # fmt: skip
    assert created["email"] == address
    assert (created["role"], created["confirmed"]) == ("tutor", True)
    with psycopg.connect(app_url) as conn:
        profile = conn.execute(
            "select display_name, role from public.profiles where id = %s", (created["id"],)
        ).fetchone()
        identity = conn.execute(
            "select provider, identity_data ->> 'email' from auth.identities where user_id = %s",
            (created["id"],),
        ).fetchone()
    assert profile == ("Tia Tutor", "tutor")
    assert identity == ("email", address)

    tutors = cli_json(capsys, "users", "list", "--role", "tutor", "--db-url", app_url)
    students = cli_json(capsys, "users", "list", "--role", "student", "--db-url", app_url)
    assert created in tutors
    assert address not in {u["email"] for u in students}
    assert {"tutor.tom@example.com", address} <= {u["email"] for u in tutors}

    message = one_line_error(capsys, "users", "delete", address, "--db-url", app_url)
    assert (
        message == f"deleting {address} also deletes their profile and data: run again with --yes"
    )
    deleted = cli_json(capsys, "users", "delete", address, "--yes", "--db-url", app_url)
    assert deleted == {"deleted": created}
    with psycopg.connect(app_url) as conn:
        left = conn.execute("select count(*) from public.profiles where id = %s", (created["id"],))
        assert left.fetchone() == (0,)
    message = one_line_error(capsys, "users", "delete", address, "--yes", "--db-url", app_url)
    assert message == f"no user with email {address} (see `pysync users list`)"


def test_a_created_user_signs_in_with_the_password_given(
    app_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    address = email()
    created = cli_json(
        capsys, "users", "create", address, "--password", "s3cret-pw", "--db-url", app_url
    )
    assert created["role"] == "student"
    session = LocalAuth(app_url, jwt_secret=LOCAL_JWT_SECRET).sign_in_with_password(
        address, "s3cret-pw"
    )
    assert session.user_id == created["id"]


def test_a_duplicate_email_and_an_unknown_role_are_refused(
    app_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    address = email()
    cli_json(capsys, "users", "create", address, "--db-url", app_url)
    message = one_line_error(capsys, "users", "create", address, "--db-url", app_url)
    assert message == "A user with this email address has already been registered"
    code, _, err = cli(capsys, "users", "create", email(), "--role", "teacher", "--db-url", app_url)
    assert code == 2
    assert "'teacher' is not one of" in err


def test_a_minted_user_token_carries_gotrue_claims_and_works_through_the_gateway(
    app_url: str, gateway: PostgresGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    address = email()
    created = cli_json(
        capsys, "users", "create", address, "--role", "tutor", "--name", "Ty", "--db-url", app_url
    )
    minted = cli_json(
        capsys, "jwt", "mint", "--user", address, "--expires-in", "600", "--db-url", app_url
    )
    claims = jwt.decode(
        minted["token"], LOCAL_JWT_SECRET, algorithms=["HS256"], audience="authenticated"
    )
    assert list(claims) == [
        "iss", "sub", "aud", "exp", "iat", "email", "phone", "app_metadata", "user_metadata",
        "role", "aal", "amr", "session_id", "is_anonymous",
    ]  # fmt: skip
    assert (claims["sub"], claims["email"], claims["role"]) == (
        created["id"],
        address,
        "authenticated",
    )
    assert claims["app_metadata"] == {
        "provider": "email",
        "providers": ["email"],
        "app_role": "tutor",
    }
    assert claims["user_metadata"] == {"display_name": "Ty", "email_verified": True}
    assert claims["exp"] - claims["iat"] == 600
    assert minted["expires_at"] == claims["exp"]
    with psycopg.connect(app_url) as conn:
        recorded = conn.execute(
            "select user_id::text from auth.sessions where id = %s", (claims["session_id"],)
        ).fetchone()
    assert recorded == (created["id"],)

    me = gateway.as_identity(Identity.from_jwt(minted["token"]))
    rows = me.select("profiles", filters=[eq("id", created["id"])]).rows
    assert [(r["display_name"], r["role"]) for r in rows] == [("Ty", "tutor")]
    human = cli(capsys, "jwt", "mint", "--user", address, "--db-url", app_url)[1]
    assert jwt.decode(human.strip(), options={"verify_signature": False})["sub"] == created["id"]


def test_api_keys_are_the_local_stack_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "jwt", "mint", "--role", "anon")
    assert (code, out.strip()) == (0, LOCAL_ANON_KEY)
    service = cli_json(capsys, "jwt", "mint", "--role", "service_role")
    assert service["token"] == mint_api_key(LOCAL_JWT_SECRET, "service_role")
    short = cli_json(capsys, "jwt", "mint", "--role", "anon", "--expires-in", "60")
    claims = jwt.decode(short["token"], LOCAL_JWT_SECRET, algorithms=["HS256"])
    assert claims["role"] == "anon"
    assert abs(claims["exp"] - (time.time() + 60)) < 5


def test_minting_errors_are_one_line(app_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        one_line_error(capsys, "jwt", "mint", "--user", "Nobody@Example.net", "--db-url", app_url)
        == "no user with email nobody@example.net (see `pysync users list`)"
    )
    expected = "give exactly one of --user EMAIL or --role anon|service_role"
    assert one_line_error(capsys, "jwt", "mint") == expected
    assert one_line_error(capsys, "jwt", "mint", "--user", "a@b.c", "--role", "anon") == expected


def test_a_remote_target_needs_its_own_jwt_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert one_line_error(capsys, "jwt", "mint", "--role", "anon", "--db-url", REMOTE_URL) == (
        "the target is remote but SUPABASE_JWT_SECRET is the local default: set it to the"
        " project's JWT secret (Dashboard → Project Settings → API)"
    )
    secret = "a-real-projects-secret-of-at-least-32-characters"
    monkeypatch.setenv("SUPABASE_JWT_SECRET", secret)
    key = cli_json(capsys, "jwt", "mint", "--role", "service_role", "--db-url", REMOTE_URL)
    claims = jwt.decode(key["token"], secret, algorithms=["HS256"])
    assert (claims["iss"], claims["role"]) == ("supabase", "service_role")
