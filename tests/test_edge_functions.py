"""The edge functions run locally: ``pysync functions test`` runs the Deno integration tests
against a throw-away database on the embedded cluster, and ``pysync functions serve`` answers
on loopback against a database (here the module's app database)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pysync.auth.tokens import mint_access_token
from pysync.cli.main import main
from pysync.config import Settings
from pysync.functions import serve_command, serve_env
from tests.helpers import PROJECT_ROOT, connect

DENO = PROJECT_ROOT / ".tools" / "node_modules" / ".bin" / "deno"
needs_deno = pytest.mark.skipif(
    not DENO.exists(), reason="Deno is not installed: run ./scripts/bootstrap.sh --deno"
)
INTEGRATION = ["push-dispatch/integration_test.ts", "export-my-data/integration_test.ts"]


@needs_deno
def test_functions_test_runs_the_integration_tests_against_a_scratch_database(
    monkeypatch: pytest.MonkeyPatch, session_dir: Path, local_db: Any, capfd: Any
) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.setenv("PYSYNC_DATA_DIR", str(session_dir))
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    with connect(local_db.url()) as conn:
        before = conn.execute("select count(*) from pg_database").fetchone()
    assert main(["functions", "test", *INTEGRATION]) == 0
    out = capfd.readouterr().out
    assert "integration: push-dispatch records, prunes" in out
    assert "integration: export-my-data answers the caller's own data" in out
    assert "2 passed | 0 failed" in out and "ignored" not in out
    with connect(local_db.url()) as conn:
        after = conn.execute("select count(*) from pg_database").fetchone()
    assert after == before, "the scratch database is dropped"


def test_functions_test_without_deno_says_how_to_install_it(
    schema_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["functions", "test", "--no-db"]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: Deno is not installed: run ./scripts/bootstrap.sh --deno"
    )


@needs_deno
def test_functions_test_reports_json_and_a_failed_run_as_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(PROJECT_ROOT)
    monkeypatch.delenv("SUPABASE_DB_URL", raising=False)
    assert main(["functions", "test", "--no-db", "--json", "push-dispatch/handler_test.ts"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["exit_code"]) == (True, 0)
    assert "push-dispatch refuses wrong methods" in report["output"]
    assert main(["functions", "test", "--no-db", "no-such-function/"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: the Deno tests failed (deno exited with 1)"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(url: str, *, token: str | None = None, body: bytes | None = b"{}") -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        url, data=body, headers=headers, method="POST" if body is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def server(app_url: str, tmp_path: Path) -> Iterator[tuple[str, Settings, dict[str, str]]]:
    """`pysync functions serve`'s program on a free port against the app database, exports
    above 200 bytes stored (so both answers of export-my-data are reachable)."""
    settings = Settings.load(PROJECT_ROOT, {"PYSYNC_DATA_DIR": str(tmp_path)})
    port = _free_port()
    env = serve_env(settings, app_url, port)
    env["EXPORT_INLINE_MAX_BYTES"] = "200"
    log = tmp_path / "serve.log"  # a file, not a pipe: nobody drains a pipe while tests run
    with log.open("wb") as sink:
        process = subprocess.Popen(
            serve_command(DENO),
            cwd=PROJECT_ROOT / "supabase" / "functions",
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise AssertionError(log.read_text(errors="replace"))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        yield base, settings, env
    finally:
        process.terminate()
        process.wait(timeout=30)


@needs_deno
def test_functions_serve_answers_each_function_on_loopback(
    server: tuple[str, Settings, dict[str, str]], app_url: str
) -> None:
    base, settings, env = server
    user = str(uuid.uuid4())
    with connect(app_url) as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email) values"
            " (%s, 'authenticated', 'authenticated', %s)",
            (user, f"serve.{user[:8]}@example.com"),
        )
    try:
        token = mint_access_token(settings.jwt_secret, user_id=user)
        status, stored = _call(f"{base}/functions/v1/export-my-data", token=token)
        assert status == 200 and stored["user_id"] == user, stored
        assert stored["path"].startswith(f"{user}/export-")
        status, document = _call(stored["signed_url"], body=None)
        assert status == 200 and document["user_id"] == user
        assert len(document["notification_preferences"]) == 4

        status, error = _call(f"{base}/functions/v1/export-my-data")
        assert (status, error) == (
            401,
            {"error": "missing bearer token (Authorization: Bearer <jwt>)"},
        )
        status, error = _call(f"{base}/functions/v1/push-dispatch", token=token)
        assert status == 401 and "service role" in error["error"]
        missing = str(uuid.uuid4())
        status, error = _call(
            f"{base}/functions/v1/push-dispatch",
            token=env["SUPABASE_SERVICE_ROLE_KEY"],
            body=json.dumps({"notification_id": missing}).encode(),
        )
        assert (status, error) == (404, {"error": f"no notification {missing}"})
        status, error = _call(f"{base}/functions/v1/nothing-here")
        assert status == 404
    finally:
        with connect(app_url) as conn, conn.transaction():
            conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
            conn.execute("delete from storage.objects where owner = %s", (user,))
            conn.execute("delete from auth.users where id = %s", (user,))


def test_erasing_a_user_removes_their_stored_exports(app_conn: Any) -> None:
    """A stored export is owned by its user (export-my-data uploads with the user's token), so
    ``delete_user()`` removes it and lists it for deletion through the Storage API."""
    user = str(uuid.uuid4())
    app_conn.execute(
        "insert into auth.users (id, aud, role, email) values"
        " (%s, 'authenticated', 'authenticated', %s)",
        (user, f"erase.{user[:8]}@example.com"),
    )
    name = f"{user}/export-2026-12-02.json"
    app_conn.execute(
        "insert into storage.objects (bucket_id, name, owner, owner_id)"
        " values ('exports', %s, %s, %s)",
        (name, user, user),
    )
    summary = app_conn.execute("select public.delete_user(%s)", (user,)).fetchone()[0]
    assert {"bucket": "exports", "name": name} in summary["storage_objects"]
    left = app_conn.execute(
        "select count(*) from storage.objects where bucket_id = 'exports' and name = %s", (name,)
    ).fetchone()
    assert left == (0,)
