"""Back up the application's data and restore it into a Supabase-like database.

What a backup holds (one ``pg_dump`` custom-format archive plus a JSON manifest beside it):

* ``public``, ``private`` and ``supabase_migrations``: schema and data. These are ours.
* the rows of ``auth.users``, ``auth.identities``, ``storage.buckets`` and ``storage.objects``.
  Supabase owns those tables, so a restore reloads their rows and never recreates them.
* what the application attached to Supabase's tables: its policies on ``storage``/``realtime``
  tables and its triggers on them (the sign-up trigger on ``auth.users``). Dropping our
  schemas drops these too, and a schema-filtered dump would not contain them, so the archive
  also carries the DDL of ``auth``, ``storage`` and ``realtime`` (without their other rows) and
  the restore picks exactly those entries from it.

The manifest records row counts taken in the same snapshot as the dump (``--snapshot``), so a
restore can prove it loaded everything, and the archive's SHA-256, so a damaged or swapped
file is refused before anything is dropped.

A restore runs as one ``psql --single-transaction``: clear the application schemas, load the
archive, re-attach publications, verify every count. A failure anywhere, the count check
included, rolls everything back and leaves the target as it was. ``public`` is emptied in
place rather than dropped, because dropping it would also drop the default privileges
Supabase's own roles hold there, which ``postgres`` (not a superuser on Supabase) cannot
recreate.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pysync.errors import BackupError, RestoreVerificationError
from pysync.localdb.binaries import PgInstall
from pysync.ops._tools import client_install, run_tool, server_major

__all__ = [
    "APP_SCHEMAS",
    "DATA_TABLES",
    "BackupResult",
    "Manifest",
    "RestoreResult",
    "TableCheck",
    "create_backup",
    "default_backup_path",
    "manifest_path",
    "restore_backup",
    "table_counts",
]

#: Schemas that belong to the application: dumped and restored whole.
APP_SCHEMAS = ("public", "private", "supabase_migrations")
#: Supabase's schemas: only their DDL is dumped, for what the application attached to them.
SUPABASE_SCHEMAS = ("auth", "storage", "realtime")
#: Supabase-owned tables whose rows are part of the application's data, in load order
#: (a row's foreign key target first).
DATA_TABLES = (
    ("auth", "users"),
    ("auth", "identities"),
    ("storage", "buckets"),
    ("storage", "objects"),
)
MANIFEST_FORMAT = 1
_VERIFY_MARKER = "pysync restore verification failed:"


def default_backup_path(data_dir: Path, now: datetime | None = None) -> Path:
    """``<data dir>/backups/pysync-<UTC timestamp>.dump``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return data_dir / "backups" / f"pysync-{stamp}.dump"


def manifest_path(archive: Path) -> Path:
    """Where the manifest of ``archive`` lives: next to it, ``<archive>.manifest.json``."""
    return archive.with_name(archive.name + ".manifest.json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What a restore checks against: row counts and the archive's checksum."""

    created_at: str
    server_version: str
    archive_sha256: str
    archive_bytes: int
    #: ``"schema.table"`` → rows, in the dump's snapshot.
    tables: dict[str, int]
    #: The application's triggers on Supabase tables: ``(schema, table, trigger)``.
    triggers: list[tuple[str, str, str]]
    #: Publication memberships of application tables: ``(publication, schema, table)``.
    publications: list[tuple[str, str, str]]
    #: Installed extensions ``(name, schema)``: a schema-filtered dump does not create them,
    #: yet our tables need them (e.g. btree_gist for an exclusion constraint).
    extensions: list[tuple[str, str]]
    #: The dumping role's default privileges that are not tied to a schema, as
    #: ``(role, object type, [aclitem, ...])``: a schema dump leaves them out, yet the
    #: migrations that set them are recorded as applied.
    global_defaults: list[tuple[str, str, list[str]]]
    #: The newest applied migration, so an operator can tell which schema a backup holds.
    last_migration: str | None
    format: int = MANIFEST_FORMAT

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "created_at": self.created_at,
            "server_version": self.server_version,
            "archive_sha256": self.archive_sha256,
            "archive_bytes": self.archive_bytes,
            "last_migration": self.last_migration,
            "tables": self.tables,
            "triggers": [list(t) for t in self.triggers],
            "publications": [list(p) for p in self.publications],
            "extensions": [list(e) for e in self.extensions],
            "global_defaults": [[r, k, list(a)] for r, k, a in self.global_defaults],
        }

    @classmethod
    def read(cls, archive: Path) -> Manifest:
        path = manifest_path(archive)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BackupError(
                f"no manifest {path.name} next to {archive.name}: a restore needs the manifest "
                "that `pysync backup create` writes beside the archive"
            ) from None
        except ValueError as exc:
            raise BackupError(f"manifest {path} is not valid JSON: {exc}") from None
        if data.get("format") != MANIFEST_FORMAT:
            raise BackupError(
                f"manifest {path.name} has format {data.get('format')!r}; this pysync reads "
                f"format {MANIFEST_FORMAT}"
            )
        try:
            return cls(
                created_at=str(data["created_at"]),
                server_version=str(data["server_version"]),
                archive_sha256=str(data["archive_sha256"]),
                archive_bytes=int(data["archive_bytes"]),
                tables={str(k): int(v) for k, v in data["tables"].items()},
                triggers=[(str(s), str(t), str(n)) for s, t, n in data["triggers"]],
                publications=[(str(p), str(s), str(t)) for p, s, t in data["publications"]],
                extensions=[(str(n), str(s)) for n, s in data["extensions"]],
                global_defaults=[
                    (str(r), str(k), [str(i) for i in a]) for r, k, a in data["global_defaults"]
                ],
                last_migration=data.get("last_migration"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"manifest {path.name} is incomplete: {exc!r}") from None

    def write(self, archive: Path) -> Path:
        path = manifest_path(archive)
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n", encoding="utf-8")
        return path


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest_path: Path
    manifest: Manifest
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "manifest": str(self.manifest_path),
            "bytes": self.manifest.archive_bytes,
            "seconds": round(self.seconds, 3),
            "tables": self.manifest.tables,
        }


@dataclass(frozen=True)
class TableCheck:
    table: str
    expected: int
    actual: int

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass(frozen=True)
class RestoreResult:
    path: Path
    checks: list[TableCheck] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "tables": [
                {"table": c.table, "expected": c.expected, "actual": c.actual, "ok": c.ok}
                for c in self.checks
            ],
        }


# -- reading the source ----------------------------------------------------------------------


def _qualified(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def _app_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    rows = conn.execute(
        "select n.nspname, c.relname from pg_catalog.pg_class as c"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where c.relkind in ('r', 'p') and not c.relispartition and n.nspname = any(%s)"
        " order by 1, 2",
        (list(APP_SCHEMAS),),
    ).fetchall()
    return [(str(s), str(t)) for s, t in rows]


def table_counts(
    conn: psycopg.Connection[Any], tables: Iterable[tuple[str, str]]
) -> dict[str, int]:
    """Exact row counts of ``tables``, keyed ``schema.table``."""
    counts: dict[str, int] = {}
    for schema, table in tables:
        row = conn.execute(
            sql.SQL("select count(*) from {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
        ).fetchone()
        counts[_qualified(schema, table)] = int(row[0]) if row else 0
    return counts


def _require_supabase_tables(conn: psycopg.Connection[Any], what: str) -> None:
    for schema, table in DATA_TABLES:
        row = conn.execute(
            "select to_regclass(%s) is not null", (f'"{schema}"."{table}"',)
        ).fetchone()
        if not row or not row[0]:
            raise BackupError(
                f"{what} has no {schema}.{table}: it is not a Supabase (or emulated) database"
            )


def _attached_triggers(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """Triggers on Supabase's tables that call a function of ours (e.g. the sign-up trigger)."""
    rows = conn.execute(
        "select n.nspname, c.relname, t.tgname from pg_catalog.pg_trigger as t"
        " join pg_catalog.pg_class as c on c.oid = t.tgrelid"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " join pg_catalog.pg_proc as p on p.oid = t.tgfoid"
        " join pg_catalog.pg_namespace as pn on pn.oid = p.pronamespace"
        " where not t.tgisinternal and n.nspname = any(%s) and pn.nspname = any(%s)"
        " order by 1, 2, 3",
        (list(SUPABASE_SCHEMAS), list(APP_SCHEMAS)),
    ).fetchall()
    return [(str(s), str(t), str(n)) for s, t, n in rows]


def _publications(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "select pubname, schemaname, tablename from pg_catalog.pg_publication_tables"
        " where schemaname = any(%s) order by 1, 2, 3",
        (list(APP_SCHEMAS),),
    ).fetchall()
    return [(str(p), str(s), str(t)) for p, s, t in rows]


def _extensions(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    # pg_cron belongs to the server's cron.database_name, not to the data: a restore into
    # another database could not create it (the target's own schedules come from
    # `select private.schedule_jobs();`).
    rows = conn.execute(
        "select e.extname, n.nspname from pg_catalog.pg_extension as e"
        " join pg_catalog.pg_namespace as n on n.oid = e.extnamespace"
        " where e.extname not in ('plpgsql', 'pg_cron') order by 1"
    ).fetchall()
    return [(str(name), str(schema)) for name, schema in rows]


def _global_defaults(conn: psycopg.Connection[Any]) -> list[tuple[str, str, list[str]]]:
    rows = conn.execute(
        "select d.defaclrole::regrole::text, d.defaclobjtype::text, d.defaclacl::text[]"
        " from pg_catalog.pg_default_acl as d where d.defaclnamespace = 0"
        " and d.defaclrole = (select oid from pg_catalog.pg_roles where rolname = current_user)"
        " order by 1, 2"
    ).fetchall()
    return [(str(r), str(k), [str(i) for i in acl]) for r, k, acl in rows]


def _unwanted_data(conn: psycopg.Connection[Any]) -> list[str]:
    """pg_dump patterns for every table in Supabase's schemas whose rows we do not keep
    (sessions, refresh tokens, realtime messages, ...)."""
    rows = conn.execute(
        "select n.nspname, c.relname from pg_catalog.pg_class as c"
        " join pg_catalog.pg_namespace as n on n.oid = c.relnamespace"
        " where c.relkind in ('r', 'p') and n.nspname = any(%s) order by 1, 2",
        (list(SUPABASE_SCHEMAS),),
    ).fetchall()
    keep = {_qualified(s, t) for s, t in DATA_TABLES}
    return [
        '"{}"."{}"'.format(s.replace('"', '""'), t.replace('"', '""'))
        for s, t in rows
        if _qualified(s, t) not in keep
    ]


def _last_migration(conn: psycopg.Connection[Any]) -> str | None:
    exists = conn.execute(
        "select to_regclass('supabase_migrations.schema_migrations') is not null"
    ).fetchone()
    if not exists or not exists[0]:
        return None
    row = conn.execute("select max(version) from supabase_migrations.schema_migrations").fetchone()
    return str(row[0]) if row and row[0] is not None else None


def create_backup(url: str, out: Path, *, client: PgInstall | None = None) -> BackupResult:
    """Dump the application from ``url`` into ``out`` and write its manifest beside it.

    Counts and dump share one exported snapshot, so the manifest describes exactly the rows
    in the archive even while clients keep writing. ``client`` defaults to the oldest
    installed client programs at least as new as the server.
    """
    started = time.monotonic()
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with psycopg.connect(url) as conn:
        client = client or client_install(conn.info.server_version // 10000)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        _require_supabase_tables(conn, "the source")
        row = conn.execute(
            "select pg_catalog.pg_export_snapshot(), current_setting('server_version')"
        ).fetchone()
        assert row is not None
        snapshot, server_version = str(row[0]), str(row[1])
        tables = [*_app_tables(conn), *DATA_TABLES]
        counts = table_counts(conn, tables)
        triggers = _attached_triggers(conn)
        publications = _publications(conn)
        extensions = _extensions(conn)
        global_defaults = _global_defaults(conn)
        last_migration = _last_migration(conn)
        args = ["--format=custom", f"--snapshot={snapshot}", f"--file={partial}"]
        args += [f"--schema={schema}" for schema in (*APP_SCHEMAS, *SUPABASE_SCHEMAS)]
        args += [f"--exclude-table-data={pattern}" for pattern in _unwanted_data(conn)]
        try:
            run_tool("pg_dump", *args, url=url, install=client)
        except BackupError:
            partial.unlink(missing_ok=True)
            raise
        conn.rollback()
    partial.replace(out)
    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        server_version=server_version,
        archive_sha256=_sha256(out),
        archive_bytes=out.stat().st_size,
        tables=counts,
        triggers=triggers,
        publications=publications,
        extensions=extensions,
        global_defaults=global_defaults,
        last_migration=last_migration,
    )
    written = manifest.write(out)
    return BackupResult(out, written, manifest, time.monotonic() - started)


# -- choosing what to restore ----------------------------------------------------------------

#: pg_dump's entry types that are more than one word, longest first (a TOC line is
#: ``id; catalog oid TYPE schema tag owner`` and only the type may contain spaces).
_MULTIWORD_TYPES = sorted(
    (
        "ACCESS METHOD", "CHECK CONSTRAINT", "DEFAULT ACL", "EVENT TRIGGER", "FK CONSTRAINT",
        "FOREIGN DATA WRAPPER", "FOREIGN SERVER", "FOREIGN TABLE", "INDEX ATTACH",
        "LARGE OBJECT", "MATERIALIZED VIEW", "MATERIALIZED VIEW DATA", "OPERATOR CLASS",
        "OPERATOR FAMILY", "PROCEDURAL LANGUAGE", "PUBLICATION TABLE",
        "PUBLICATION TABLES IN SCHEMA", "ROW SECURITY", "SECURITY LABEL", "SEQUENCE OWNED BY",
        "SEQUENCE SET", "SHELL TYPE", "TABLE ATTACH", "TABLE DATA",
        "TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER",
        "TEXT SEARCH TEMPLATE", "USER MAPPING",
    ),
    key=len,
    reverse=True,
)  # fmt: skip
_TOC_LINE = re.compile(r"^(?P<id>\d+); \d+ \d+ (?P<rest>.+)$")


@dataclass(frozen=True)
class _TocEntry:
    line: str
    kind: str
    schema: str
    tag: str


def _parse_toc(listing: str) -> list[_TocEntry]:
    entries = []
    for line in listing.splitlines():
        match = _TOC_LINE.match(line)
        if not match:
            continue
        rest = match["rest"]
        kind = next((k for k in _MULTIWORD_TYPES if rest.startswith(k + " ")), rest.split(" ")[0])
        schema, _, tail = rest[len(kind) + 1 :].partition(" ")
        tag = tail.rsplit(" ", 1)[0]  # the owner is the last word
        entries.append(_TocEntry(line, kind, schema, tag))
    return entries


def _select_entries(entries: list[_TocEntry], manifest: Manifest) -> list[str]:
    """The TOC lines to restore, in order; Supabase tables' rows in foreign-key order."""
    data_tags = {f"{s} {t}": i for i, (s, t) in enumerate(DATA_TABLES)}
    trigger_tags = {(s, f"{t} {n}") for s, t, n in manifest.triggers}
    ours = set(APP_SCHEMAS) - {"public"}
    chosen: list[str] = []
    data_lines: dict[int, str] = {}
    data_at: int | None = None
    for entry in entries:
        if entry.kind == "TABLE DATA" and f"{entry.schema} {entry.tag}" in data_tags:
            data_lines[data_tags[f"{entry.schema} {entry.tag}"]] = entry.line
            data_at = len(chosen) if data_at is None else data_at
            continue
        keep = (
            # Our schemas themselves (public exists already and keeps Supabase's grants).
            (entry.kind == "SCHEMA" and entry.tag in ours)
            or (entry.kind in ("ACL", "COMMENT") and entry.tag in {f"SCHEMA {s}" for s in ours})
            # Everything inside our schemas, except public's default privileges (see module doc).
            or (
                entry.schema in APP_SCHEMAS
                and not (entry.kind == "DEFAULT ACL" and entry.schema == "public")
            )
            # What we attached to Supabase's tables.
            or (entry.kind == "POLICY" and entry.schema in SUPABASE_SCHEMAS)
            or (entry.kind == "TRIGGER" and (entry.schema, entry.tag) in trigger_tags)
        )
        if keep:
            chosen.append(entry.line)
    if len(data_lines) != len(DATA_TABLES) or data_at is None:
        raise BackupError("the archive lacks the rows of auth.users, auth.identities or storage")
    return chosen[:data_at] + [data_lines[i] for i in sorted(data_lines)] + chosen[data_at:]


# -- the restore script ----------------------------------------------------------------------

_CLEAR_PUBLIC = """
do $clear$
declare
    item record;
begin
    -- Drop every object of schema public, as drop schema would, but keep the schema, its
    -- grants and every role's default privileges in it.
    loop
        select o.type, o.identity, d.objid into item
        from pg_catalog.pg_depend as d
        cross join lateral pg_catalog.pg_identify_object(d.classid, d.objid, 0) as o
        where d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
            and d.refobjid = 'public'::pg_catalog.regnamespace
            and d.deptype = 'n'
            -- Owned objects (serial and identity sequences) go with their owner.
            and not exists (
                select from pg_catalog.pg_depend as owner
                where owner.classid = d.classid and owner.objid = d.objid
                    and owner.deptype in ('a', 'i') and owner.refobjid <> owner.objid
            )
        limit 1;
        exit when not found;
        execute pg_catalog.format(
            'drop %s %s cascade',
            case
                when item.type = 'statistics object' then 'statistics'
                when item.type = 'type' and exists (
                    select from pg_catalog.pg_type as t
                    where t.oid = item.objid and t.typtype = 'd'
                ) then 'domain'
                else item.type
            end,
            item.identity
        );
    end loop;
end
$clear$;
"""

# Objects the restore creates in public would otherwise pick up the restoring role's default
# privileges there (Supabase grants everything to the API roles), on top of the exact grants
# the archive carries, undoing every revoke a migration made (column privileges, say). So the
# restore sets that role's defaults aside for its own transaction and puts them back at the end.
_SET_ASIDE_DEFAULTS = """
create temporary table pysync_saved_default_acl on commit drop as
select
    d.defaclobjtype as objtype,
    a.grantee,
    a.privilege_type,
    a.is_grantable
from pg_catalog.pg_default_acl as d
cross join lateral pg_catalog.aclexplode(d.defaclacl) as a
where d.defaclrole = (select r.oid from pg_catalog.pg_roles as r where r.rolname = current_user)
    and d.defaclnamespace = 'public'::pg_catalog.regnamespace;

do $aside$
declare
    item record;
begin
    for item in select distinct s.objtype, s.grantee from pysync_saved_default_acl as s loop
        execute pg_catalog.format(
            'alter default privileges in schema public revoke all on %s from %s',
            case item.objtype
                when 'r' then 'tables' when 'S' then 'sequences'
                when 'f' then 'functions' when 'T' then 'types'
            end,
            case when item.grantee = 0 then 'public' else item.grantee::pg_catalog.regrole::text end
        );
    end loop;
end
$aside$;
"""

_PUT_BACK_DEFAULTS = """
do $putback$
declare
    item record;
begin
    for item in select s.* from pysync_saved_default_acl as s loop
        execute pg_catalog.format(
            'alter default privileges in schema public grant %s on %s to %s %s',
            item.privilege_type,
            case item.objtype
                when 'r' then 'tables' when 'S' then 'sequences'
                when 'f' then 'functions' when 'T' then 'types'
            end,
            case
                when item.grantee = 0 then 'public'
                else item.grantee::pg_catalog.regrole::text
            end,
            case when item.is_grantable then 'with grant option' else '' end
        );
    end loop;
end
$putback$;
"""

# A global default ACL is the whole ACL new objects get, replacing the built-in default:
# replay it as the revokes and grants that turn the built-in default into it.
_GLOBAL_DEFAULTS = """
do $globals$
declare
    entry record;
    item record;
    kind text;
begin
    for entry in
        select e.role, e.objtype, e.acl
        from pg_catalog.jsonb_to_recordset({}::jsonb) as e (role text, objtype text, acl text[])
    loop
        if not pg_catalog.pg_has_role(current_user, entry.role, 'USAGE') then
            raise notice 'not restoring default privileges of role %: not a member', entry.role;
            continue;
        end if;
        kind := case entry.objtype
            when 'r' then 'tables' when 'S' then 'sequences' when 'f' then 'functions'
            when 'T' then 'types' when 'n' then 'schemas'
        end;
        for item in
            select d.grantee, d.privilege_type from pg_catalog.aclexplode(
                pg_catalog.acldefault(entry.objtype::"char", entry.role::pg_catalog.regrole)
            ) as d
            except
            select a.grantee, a.privilege_type
            from pg_catalog.aclexplode(entry.acl::pg_catalog.aclitem[]) as a
        loop
            execute pg_catalog.format(
                'alter default privileges for role %I revoke %s on %s from %s',
                entry.role, item.privilege_type, kind,
                case
                    when item.grantee = 0 then 'public'
                    else item.grantee::pg_catalog.regrole::text
                end
            );
        end loop;
        for item in
            select a.grantee, a.privilege_type, a.is_grantable
            from pg_catalog.aclexplode(entry.acl::pg_catalog.aclitem[]) as a
            except
            select d.grantee, d.privilege_type, d.is_grantable from pg_catalog.aclexplode(
                pg_catalog.acldefault(entry.objtype::"char", entry.role::pg_catalog.regrole)
            ) as d
        loop
            execute pg_catalog.format(
                'alter default privileges for role %I grant %s on %s to %s %s',
                entry.role, item.privilege_type, kind,
                case
                    when item.grantee = 0 then 'public'
                    else item.grantee::pg_catalog.regrole::text
                end,
                case when item.is_grantable then 'with grant option' else '' end
            );
        end loop;
    end loop;
end
$globals$;
"""

_DROP_POLICIES = """
do $policies$
declare
    item record;
begin
    for item in
        select p.polname, p.polrelid::pg_catalog.regclass as rel from pg_catalog.pg_policy as p
        where p.polrelid = any({}::pg_catalog.regclass[])
    loop
        execute pg_catalog.format('drop policy %I on %s', item.polname, item.rel);
    end loop;
end
$policies$;
"""

_VERIFY = """
do $verify$
declare
    expected record;
    actual bigint;
    problems text[] := '{{}}';
begin
    for expected in
        select e.name, e.rel, e.n
        from pg_catalog.jsonb_to_recordset({}::jsonb) as e (name text, rel text, n bigint)
    loop
        if pg_catalog.to_regclass(expected.rel) is null then
            problems := problems || pg_catalog.format('%s missing', expected.name);
            continue;
        end if;
        execute pg_catalog.format('select count(*) from %s', expected.rel::pg_catalog.regclass)
        into actual;
        if actual <> expected.n then
            problems := problems || pg_catalog.format(
                '%s has %s rows, the manifest says %s', expected.name, actual, expected.n
            );
        end if;
    end loop;
    if pg_catalog.cardinality(problems) > 0 then
        raise exception 'pysync restore verification failed: %',
            pg_catalog.array_to_string(problems, '; ');
    end if;
end
$verify$;
"""


def _split(name: str) -> tuple[str, str]:
    schema, _, table = name.partition(".")
    return schema, table


def _quoted(name: str) -> str:
    """``schema.table`` quoted so ``to_regclass`` reads it exactly."""
    schema, _, table = name.partition(".")
    return '"{}"."{}"'.format(schema.replace('"', '""'), table.replace('"', '""'))


def _prelude(
    conn: psycopg.Connection[Any], manifest: Manifest, policy_tables: list[tuple[str, str]]
) -> str:
    data_tables = sql.SQL(", ").join(sql.Identifier(s, t) for s, t in DATA_TABLES)
    parts: list[sql.Composable] = [
        sql.SQL("set local lock_timeout = '30s';"),
        sql.SQL(_DROP_POLICIES).format(
            sql.Literal([_quoted(_qualified(s, t)) for s, t in policy_tables])
        ),
        sql.SQL("drop schema if exists private cascade;"),
        sql.SQL("drop schema if exists supabase_migrations cascade;"),
        sql.SQL(_CLEAR_PUBLIC),
        sql.SQL(_SET_ASIDE_DEFAULTS),
        *(
            sql.SQL("create extension if not exists {} with schema {};").format(
                sql.Identifier(name), sql.Identifier(schema)
            )
            for name, schema in manifest.extensions
        ),
        sql.SQL("truncate {} cascade;").format(data_tables),
    ]
    return "\n".join(part.as_string(conn) for part in parts) + "\n"


def _postlude(conn: psycopg.Connection[Any], manifest: Manifest) -> str:
    parts: list[sql.Composable] = [
        sql.SQL("reset search_path;"),
        sql.SQL(_PUT_BACK_DEFAULTS),
        sql.SQL(_GLOBAL_DEFAULTS).format(
            sql.Literal(
                json.dumps(
                    [{"role": r, "objtype": k, "acl": a} for r, k, a in manifest.global_defaults]
                )
            )
        ),
    ]
    existing = {
        str(r[0]) for r in conn.execute("select pubname from pg_catalog.pg_publication").fetchall()
    }
    for publication, schema, table in manifest.publications:
        if publication in existing:
            parts.append(
                sql.SQL("alter publication {} add table {};").format(
                    sql.Identifier(publication), sql.Identifier(schema, table)
                )
            )
    expected = [
        {"name": name, "rel": _quoted(name), "n": rows} for name, rows in manifest.tables.items()
    ]
    parts.append(sql.SQL(_VERIFY).format(sql.Literal(json.dumps(expected))))
    return "\n".join(part.as_string(conn) for part in parts) + "\n"


def _major_of(server_version: str) -> int:
    """The major of a ``server_version`` setting (``15.18 (Debian 15.18-0+deb12u1)``)."""
    match = re.match(r"\d+", server_version)
    if match is None:
        raise BackupError(f"the manifest's server version {server_version!r} is not a version")
    return int(match[0])


def restore_backup(url: str, archive: Path, *, client: PgInstall | None = None) -> RestoreResult:
    """Replace the application's schemas and data at ``url`` with the backup in ``archive``.

    All or nothing: if anything fails, the count verification included, the target is left
    exactly as it was. ``client`` defaults to the oldest installed client programs at least
    as new as both the target server and the server the archive was dumped from.
    """
    started = time.monotonic()
    archive = archive.resolve()
    if not archive.is_file():
        raise BackupError(f"no backup archive at {archive}")
    manifest = Manifest.read(archive)
    if _sha256(archive) != manifest.archive_sha256:
        raise BackupError(
            f"{archive.name} does not match its manifest's SHA-256: the archive is damaged or "
            "was replaced; nothing was restored"
        )
    if client is None:
        client = client_install(max(_major_of(manifest.server_version), server_major(url)))
    listing = run_tool("pg_restore", "--list", str(archive), install=client).stdout
    entries = _parse_toc(listing)
    lines = _select_entries(entries, manifest)
    # A policy's tag is "<table> <policy name>"; Supabase's table names have no spaces.
    policy_tables = sorted(
        {
            (e.schema, e.tag.split(" ", 1)[0])
            for e in entries
            if e.kind == "POLICY" and e.schema in SUPABASE_SCHEMAS
        }
    )
    with psycopg.connect(url, autocommit=True) as conn:
        _require_supabase_tables(conn, "the target")
        prelude, postlude = _prelude(conn, manifest, policy_tables), _postlude(conn, manifest)
        with tempfile.TemporaryDirectory(prefix="pysync-restore-") as work:
            folder = Path(work)
            (folder / "toc.list").write_text("\n".join(lines) + "\n", encoding="utf-8")
            (folder / "0-prelude.sql").write_text(prelude, encoding="utf-8")
            (folder / "2-postlude.sql").write_text(postlude, encoding="utf-8")
            run_tool(
                "pg_restore",
                f"--use-list={folder / 'toc.list'}",
                f"--file={folder / '1-archive.sql'}",
                str(archive),
                install=client,
            )
            try:
                run_tool(
                    "psql",
                    "--no-psqlrc",
                    "--quiet",
                    "--single-transaction",
                    "--set=ON_ERROR_STOP=1",
                    f"--file={folder / '0-prelude.sql'}",
                    f"--file={folder / '1-archive.sql'}",
                    f"--file={folder / '2-postlude.sql'}",
                    url=url,
                    install=client,
                )
            except BackupError as exc:
                message = str(exc)
                if _VERIFY_MARKER in message:
                    detail = message.split(_VERIFY_MARKER, 1)[1].strip()
                    raise RestoreVerificationError(
                        f"restore rolled back, row counts differ from the manifest: {detail}"
                    ) from None
                raise BackupError(f"restore rolled back, nothing changed: {message}") from None
        actual = table_counts(conn, [_split(name) for name in manifest.tables])
    checks = [TableCheck(name, manifest.tables[name], actual[name]) for name in manifest.tables]
    result = RestoreResult(archive, checks, time.monotonic() - started)
    if not result.ok:
        bad = ", ".join(f"{c.table} {c.actual}/{c.expected}" for c in checks if not c.ok)
        raise RestoreVerificationError(f"row counts differ from the manifest after restore: {bad}")
    return result
