"""A private PostgreSQL cluster (15 or 17) for development and tests.

The cluster lives under the project's data directory and listens on loopback only. When the
caller is root the server runs as the ``postgres`` system user, because PostgreSQL refuses to
run as root. Every operation is idempotent: ``start`` on a running cluster does nothing, and a
pid file left behind by a killed server is recognised and removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import socket
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pysync.errors import LocalDatabaseError
from pysync.localdb.binaries import DEFAULT_MAJOR, PgInstall, server_install
from pysync.localdb.cron import CRON_LIBRARY, cron_settings

__all__ = ["ClusterStatus", "LocalCluster"]

#: The bootstrap superuser, as on a Supabase project (``postgres`` is demoted there).
SUPERUSER = "supabase_admin"
#: Local-only password for every login role, as ``supabase start`` uses.
LOCAL_PASSWORD = "postgres"
#: The port ``supabase start`` uses for its database; taken when free.
PREFERRED_PORT = 54322
#: pg_cron's database, as on a Supabase project (the main database).
CRON_DATABASE = "postgres"

_SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "max_connections": "100",
    "shared_buffers": "128MB",
    "password_encryption": "'scram-sha-256'",
}
#: Preloaded when the server has them, as a hosted project preloads them: pg_stat_statements
#: (its view answers, with ``plans`` per statement when ``track_planning`` is on for a session).
_PRELOADED = ("pg_stat_statements",)
#: For throw-away test clusters: durability buys nothing there.
_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@dataclass(frozen=True)
class ClusterStatus:
    """What ``status`` reports; ``port`` and ``pid`` are ``None`` when stopped."""

    initialized: bool
    running: bool
    data_dir: Path
    port: int | None
    pid: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "initialized": self.initialized,
            "running": self.running,
            "data_dir": str(self.data_dir),
            "port": self.port,
            "pid": self.pid,
        }


def _free_port(preferred: int | None) -> int:
    """The preferred port when PostgreSQL could listen on it, else any free one.

    The probe sets SO_REUSEADDR as PostgreSQL does: a port whose last connections linger in
    TIME_WAIT (just after a stop) is free for the server, and only a listener makes it busy.
    """
    candidates = [preferred] if preferred else []
    for port in [*candidates, 0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise LocalDatabaseError("no free loopback port for the local database")


def _postgres_user() -> pwd.struct_passwd:
    """The system user the server runs as when we are root (PostgreSQL refuses root)."""
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise LocalDatabaseError(
            "running as root needs a `postgres` system user to run the server "
            "(apt-get install postgresql-15 creates it)"
        ) from None


def _reachable_by(path: Path, uid: int) -> bool:
    """Whether a non-root ``uid`` can traverse every existing ancestor of ``path``."""
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == uid:
            continue
        if not st.st_mode & stat.S_IXOTH:
            return False
    return True


class LocalCluster:
    """One PostgreSQL cluster under ``base_dir`` (normally ``<data dir>/pg``).

    ``fast=True`` turns off fsync for throw-away test clusters. ``preferred_port`` is tried
    first on the first start; later starts reuse the last port when it is still free.
    ``settings`` are extra server settings (a hot standby's, for example). ``cron=False``
    leaves pg_cron out even when the server has it (as a server without it would run).
    ``pg_major`` picks the server programs (:mod:`pysync.localdb.binaries`); they are looked
    up on first use.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        fast: bool = False,
        preferred_port: int | None = None,
        settings: Mapping[str, str] | None = None,
        cron: bool = True,
        pg_major: int = DEFAULT_MAJOR,
    ) -> None:
        self.pg_major = pg_major
        self._install: PgInstall | None = None
        self.fast = fast
        self.cron = cron
        self.settings = dict(settings or {})
        self.preferred_port = preferred_port
        self._as_root = os.geteuid() == 0
        self._pg_user = _postgres_user() if self._as_root else None
        base_dir = base_dir.resolve()
        if self._pg_user and not _reachable_by(base_dir, self._pg_user.pw_uid):
            # The postgres user cannot reach the project (e.g. under /root): keep the cluster
            # in a stable place it can reach, named after the project path.
            digest = hashlib.sha256(str(base_dir).encode()).hexdigest()[:12]
            base_dir = Path("/var/tmp") / f"pysync-{digest}"
        self.base_dir = base_dir
        self.pgdata = base_dir / "data"
        self.log_file = base_dir / "postgres.log"
        self._state_file = base_dir / "cluster.json"

    # -- process helpers -------------------------------------------------------------------

    @property
    def install(self) -> PgInstall:
        """The server programs of ``pg_major``, runnable by the user the server runs as."""
        if self._install is None:
            install = server_install(self.pg_major)
            self._install = install.reachable_by(self._pg_user) if self._pg_user else install
        return self._install

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary, as the postgres user when we are root."""
        install = self.install
        cmd = [str(install.program(args[0])), *args[1:]]
        kwargs: dict[str, Any] = {"env": install.env()}
        if self._pg_user:
            kwargs = {
                "user": self._pg_user.pw_uid,
                "group": self._pg_user.pw_gid,
                "extra_groups": [],
                "env": {**install.env(), "HOME": self._pg_user.pw_dir, "USER": "postgres"},
            }
        try:
            result = subprocess.run(
                cmd, cwd=self.base_dir, capture_output=True, text=True, check=False, **kwargs
            )
        except FileNotFoundError as exc:
            raise LocalDatabaseError(
                f"{cmd[0]} not found: the PostgreSQL {self.pg_major} build there lacks it"
            ) from exc
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            last = detail[-1] if detail else f"exit code {result.returncode}"
            raise LocalDatabaseError(f"{args[0]} failed: {last} (log: {self.log_file})")
        return result

    def _make_dir(self, path: Path, mode: int = 0o700) -> None:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        if self._pg_user:
            os.chown(path, self._pg_user.pw_uid, self._pg_user.pw_gid)

    def _write_owned(self, path: Path, text: str, mode: int = 0o600) -> None:
        path.write_text(text)
        path.chmod(mode)
        if self._pg_user:
            os.chown(path, self._pg_user.pw_uid, self._pg_user.pw_gid)

    # -- state -----------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def _load_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            return {}
        return state

    def _running_pid(self) -> int | None:
        """The postmaster's pid when a live server owns the pid file; clears a stale one."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            cmdline = []
        program = Path(cmdline[0].decode(errors="replace")).name if cmdline else ""
        if program in ("postgres", "postmaster") and str(self.pgdata).encode() in cmdline:
            return pid
        # Nobody (or an unrelated process that reused the pid) holds the lock: stale.
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        return None

    @property
    def port(self) -> int | None:
        port = self._load_state().get("port")
        return int(port) if port else None

    def status(self) -> ClusterStatus:
        pid = self._running_pid() if self.initialized else None
        return ClusterStatus(
            initialized=self.initialized,
            running=pid is not None,
            data_dir=self.pgdata,
            port=self.port if pid else None,
            pid=pid,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def init(self) -> bool:
        """Create the cluster if it does not exist. Returns whether it was created."""
        if self.initialized:
            made_by = (self.pgdata / "PG_VERSION").read_text().strip()
            if made_by != str(self.pg_major):
                raise LocalDatabaseError(
                    f"the cluster in {self.pgdata} was made by PostgreSQL {made_by}, not "
                    f"{self.pg_major}: set PYSYNC_PG_MAJOR={made_by}, or use another "
                    "PYSYNC_DATA_DIR for the other version"
                )
            return False
        self._make_dir(self.base_dir.parent, 0o755)
        self._make_dir(self.base_dir, 0o700)
        pwfile = self.base_dir / "initdb.pw"
        self._write_owned(pwfile, LOCAL_PASSWORD + "\n")
        try:
            self._run(
                "initdb",
                "--pgdata", str(self.pgdata),
                "--username", SUPERUSER,
                "--pwfile", str(pwfile),
                "--auth", "scram-sha-256",
                "--encoding", "UTF8",
                "--locale", "C.UTF-8",
                "--no-instructions",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'pysync.conf'\n")
        return True

    def _write_settings(self, port: int) -> None:
        settings = {**_SERVER_SETTINGS, "port": str(port)}
        preload = [name for name in _PRELOADED if self.install.has_library(name)]
        if self.cron and (cron := cron_settings(self.install, CRON_DATABASE)):
            settings.update(cron)
            preload.append(CRON_LIBRARY)
        if preload:
            settings["shared_preload_libraries"] = "'" + ",".join(preload) + "'"
        if self.fast:
            settings.update(_FAST_SETTINGS)
        settings.update(self.settings)
        body = "".join(f"{key} = {value}\n" for key, value in settings.items())
        self._write_owned(self.pgdata / "pysync.conf", "# Written by pysync.localdb\n" + body)
        self._write_owned(self._state_file, json.dumps({"port": port}) + "\n", 0o644)

    def start(self, timeout: float = 60.0) -> ClusterStatus:
        """Initialise when needed and start the server; a running cluster is left alone."""
        self.init()
        current = self.status()
        if current.running:
            return current
        port = _free_port(self.port or self.preferred_port)
        self._write_settings(port)
        self._run(
            "pg_ctl", "start", "--pgdata", str(self.pgdata), "--log", str(self.log_file),
            "--wait", "--timeout", str(int(timeout)), "--silent",
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while (status := self.status()).pid is None:
            if time.monotonic() > deadline:
                raise LocalDatabaseError(f"the local database did not start (log: {self.log_file})")
            time.sleep(0.05)
        return status

    def stop(self) -> bool:
        """Stop the server (fast shutdown). Returns whether it was running."""
        if not self.initialized or not self.status().running:
            return False
        self._run("pg_ctl", "stop", "--pgdata", str(self.pgdata), "--mode", "fast", "--wait")
        return True

    def url(self, user: str = "postgres", dbname: str = "postgres") -> str:
        """A connection URL for a login role on the running cluster."""
        port = self.status().port
        if port is None:
            raise LocalDatabaseError("the local database is not running: run `pysync db start`")
        return f"postgresql://{user}:{LOCAL_PASSWORD}@127.0.0.1:{port}/{dbname}"
