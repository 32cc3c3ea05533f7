"""The Deno edge functions run locally: their test suite against a throw-away database, and a
loopback server against the embedded database (``pysync functions test`` / ``serve``).

The functions' integration tests talk to Postgres directly (a driver from npm), so they need
a database with the project's migrations and policies: :func:`scratch_database` makes one on
the embedded cluster and drops it afterwards, so a test run never touches the developer's data.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg

from pysync.auth.tokens import mint_api_key
from pysync.config import Settings
from pysync.errors import PysyncError
from pysync.localdb import LocalDatabase
from pysync.migrate import push

__all__ = [
    "DEFAULT_PORT",
    "FUNCTIONS",
    "FunctionsError",
    "deno_path",
    "functions_dir",
    "run_tests",
    "scratch_database",
    "serve_command",
    "serve_env",
    "test_command",
]

#: The functions `pysync functions serve` routes (one folder each under supabase/functions).
FUNCTIONS = ("push-dispatch", "export-my-data")
#: Next to the local Supabase stack's ports (54321-54327), not on them.
DEFAULT_PORT = 54329
#: What the Deno programs may do: the tests make temporary files, the server stores exports.
_PERMISSIONS = ("--allow-env", "--allow-net", "--allow-read", "--allow-write")


class FunctionsError(PysyncError):
    """Deno is missing, or the functions' suite failed."""


def functions_dir(settings: Settings) -> Path:
    return settings.project_dir / "supabase" / "functions"


def deno_path(settings: Settings) -> Path:
    """The project's pinned Deno (``scripts/bootstrap.sh --deno`` installs it)."""
    deno = settings.project_dir / ".tools" / "node_modules" / ".bin" / "deno"
    if not deno.exists():
        raise FunctionsError("Deno is not installed: run ./scripts/bootstrap.sh --deno")
    return deno


@contextmanager
def scratch_database(local: LocalDatabase, settings: Settings) -> Iterator[str]:
    """A new database on the embedded cluster with the migrations and policies; dropped after."""
    name = f"functions_{uuid.uuid4().hex[:12]}"
    url = local.create_database(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            push(conn, settings.migrations_dir, settings.policies_dir, root=settings.project_dir)
        yield url
    finally:
        local.drop_database(name)


def test_command(deno: Path, paths: Sequence[str] = ()) -> list[str]:
    """``deno test`` over the whole suite, or over ``paths`` (relative to supabase/functions)."""
    return [str(deno), "test", *_PERMISSIONS, *paths]


def run_tests(
    settings: Settings,
    db_url: str | None,
    paths: Sequence[str] = (),
    *,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the Deno suite; with ``db_url`` the integration tests run against that database
    (they are reported as ignored without one)."""
    env = {**os.environ, "SUPABASE_JWT_SECRET": settings.jwt_secret}
    env.pop("PYSYNC_TEST_DB_URL", None)
    if db_url:
        env["PYSYNC_TEST_DB_URL"] = db_url
    return subprocess.run(
        test_command(deno_path(settings), paths),
        cwd=functions_dir(settings),
        env=env,
        check=False,
        capture_output=capture,
        text=True,
    )


def serve_command(deno: Path) -> list[str]:
    return [str(deno), "run", *_PERMISSIONS, "_dev/serve.ts"]


def serve_env(
    settings: Settings, db_url: str, port: int, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The local server's environment: the database, the project's JWT secret, the service
    role key push-dispatch expects, and where stored exports go."""
    return {
        **(os.environ if base is None else base),
        "PYSYNC_FUNCTIONS_DB_URL": db_url,
        "PYSYNC_FUNCTIONS_PORT": str(port),
        "PYSYNC_FUNCTIONS_STORAGE_DIR": str(settings.data_dir / "functions-storage"),
        "SUPABASE_JWT_SECRET": settings.jwt_secret,
        "SUPABASE_SERVICE_ROLE_KEY": mint_api_key(settings.jwt_secret, "service_role"),
    }
