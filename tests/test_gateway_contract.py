"""The gateway contract: the same behaviour through every implementation.

Runs for real against the embedded database through ``PostgresGateway``, and against a real
Supabase project through ``PostgrestGateway`` when ``SUPABASE_URL``, ``SUPABASE_ANON_KEY``,
``SUPABASE_SERVICE_ROLE_KEY`` and ``SUPABASE_DB_URL`` are set (the last creates the fixture
schema below). The fixture schema is this module's own, so the suite does not depend on the
platform's migrations.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import psycopg
import pytest

from pysync.auth import LocalAuth, SupabaseSession
from pysync.config import LOCAL_JWT_SECRET, Settings
from pysync.gateway import (
    Conflict,
    Gateway,
    Identity,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PostgresGateway,
    PostgrestGateway,
    QueryTimeout,
    RateLimited,
    Unauthorized,
    and_,
    asc,
    desc,
    eq,
    gt,
    gte,
    ilike,
    in_,
    is_not_null,
    is_null,
    lt,
    lte,
    neq,
    or_,
)
from pysync.localdb import LocalDatabase
from pysync.localdb.pooler import Pooler

FIXTURE_SQL = """
drop table if exists public.gw_notes cascade;
create table public.gw_notes (
    id uuid primary key default gen_random_uuid(),
    owner uuid,
    slug text unique,
    body text,
    rank int check (rank >= 0),
    is_public boolean not null default false,
    created_at timestamptz not null default now()
);
alter table public.gw_notes enable row level security;
create policy "Owners can read their notes" on public.gw_notes
    for select to authenticated using (owner = (select auth.uid()));
create policy "Anyone can read public notes" on public.gw_notes
    for select to anon using (is_public);
create policy "Owners can add notes" on public.gw_notes
    for insert to authenticated with check (owner = (select auth.uid()));
create policy "Owners can change their notes" on public.gw_notes
    for update to authenticated
    using (owner = (select auth.uid())) with check (owner = (select auth.uid()));
create policy "Owners can delete their notes" on public.gw_notes
    for delete to authenticated using (owner = (select auth.uid()));

create or replace function public.gw_request_context() returns jsonb
language sql volatile as $$
    select jsonb_build_object(
        'method', current_setting('request.method', true),
        'path', current_setting('request.path', true),
        'headers_text', current_setting('request.headers', true),
        'cookies', current_setting('request.cookies', true),
        'claims_text', current_setting('request.jwt.claims', true),
        'legacy_sub', current_setting('request.jwt.claim.sub', true),
        'legacy_role', current_setting('request.jwt.claim.role', true),
        'current_user', current_user,
        'statement_timeout', current_setting('statement_timeout'),
        'search_path', current_setting('search_path'),
        'read_only', current_setting('transaction_read_only'),
        'isolation', current_setting('transaction_isolation'),
        'pre_request', current_setting('gw.pre_request', true),
        'uid', auth.uid()
    )
$$;

create or replace function public.gw_whoami() returns uuid
language sql stable security invoker as $$ select auth.uid() $$;

create or replace function public.gw_add(a int, b int default 10) returns int
language sql immutable as $$ select a + b $$;

create or replace function public.gw_notes_ranked(min_rank int) returns setof public.gw_notes
language sql stable as $$
    select * from public.gw_notes where rank >= min_rank order by rank
$$;

create or replace function public.gw_touch(note_id uuid) returns void
language sql volatile as $$
    update public.gw_notes set body = body || '!' where id = note_id
$$;

create or replace function public.gw_slow_down() returns void
language plpgsql as $$
begin
    raise exception 'too many requests' using errcode = 'PT429', hint = 'retry in a second';
end
$$;

create or replace function public.gw_stale_version(expected int) returns void
language plpgsql as $$
begin
    raise exception 'stale version' using errcode = 'PT409', detail = 'expected ' || expected;
end
$$;

create or replace function public.gw_reject(reason text) returns void
language plpgsql as $$
begin
    raise exception '%', reason;
end
$$;

create or replace function public.gw_slow(seconds double precision) returns void
language sql set statement_timeout = '150ms' as $$ select pg_sleep(seconds) $$;

create or replace function public.gw_json(kind text) returns json
language sql immutable as $$
    select case kind
        when 'object' then '{"a": [1, 2.50, "x"], "b": null, "c": {"d": true}}'::json
        when 'array' then '[1, "two", null]'::json
        when 'string' then '"text"'::json
        when 'null' then 'null'::json
    end
$$;

create or replace function public.gw_jsonb(kind text) returns jsonb
language sql immutable as $$ select public.gw_json(kind)::jsonb $$;
"""

DROP_SQL = """
drop function if exists public.gw_request_context(), public.gw_whoami(), public.gw_add(int, int),
    public.gw_notes_ranked(int), public.gw_touch(uuid), public.gw_slow_down(),
    public.gw_stale_version(int), public.gw_reject(text), public.gw_slow(double precision),
    public.gw_jsonb(text), public.gw_json(text);
drop table if exists public.gw_notes cascade;
"""


@dataclass
class User:
    id: str
    gateway: Gateway


@dataclass
class Backend:
    """One gateway implementation and the means to make users for it."""

    name: str
    anon: Gateway
    make_user: Callable[[], tuple[str, Identity]]
    #: Signs an already expired token for a user id, when the backend knows the secret.
    expired_token: Callable[[str], str] | None
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    @property
    def service(self) -> Gateway:
        return self.anon.as_identity(Identity.service_role())

    def user(self) -> User:
        user_id, identity = self.make_user()
        return User(user_id, self.anon.as_identity(identity))


def _expired(secret: str) -> Callable[[str], str]:
    def sign(user_id: str) -> str:
        past = int(time.time()) - 3600
        claims = {"sub": user_id, "role": "authenticated", "aud": "authenticated"}
        return jwt.encode({**claims, "iat": past - 60, "exp": past}, secret, algorithm="HS256")

    return sign


@pytest.fixture(scope="module")
def contract_db(local_db: LocalDatabase) -> Iterator[str]:
    name = f"gw_{uuid.uuid4().hex[:12]}"
    url = local_db.create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FIXTURE_SQL.encode())
    yield name
    local_db.drop_database(name)


def _postgres_backend(local_db: LocalDatabase, dbname: str, pooler: Pooler | None) -> Backend:
    """The gateway straight to the database or, with ``pooler``, through a transaction-mode
    pgbouncer (``pooled=True``); users are made on the database directly either way."""
    api_url = (
        pooler.url(dbname, "authenticator") if pooler else local_db.url(dbname, "authenticator")
    )
    gateway = PostgresGateway.connect(
        api_url, jwt_secret=LOCAL_JWT_SECRET, pooled=pooler is not None
    )
    auth = LocalAuth(local_db.url(dbname), jwt_secret=LOCAL_JWT_SECRET, bcrypt_cost=4)

    def make_user() -> tuple[str, Identity]:
        user = auth.create_user(f"{uuid.uuid4().hex[:10]}@example.com", "pw-123456")
        return user.id, auth.identity(user)

    name = "pooled" if pooler else "postgres"
    return Backend(name, gateway, make_user, _expired(LOCAL_JWT_SECRET), [gateway.close])


LIVE_VARIABLES = (
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_DB_URL",
)


def _postgrest_backend() -> Backend:
    settings = Settings.load()
    values = (settings.supabase_url, settings.anon_key, settings.service_role_key, settings.db_url)
    if not all(values):
        pytest.skip(f"live contract suite needs {', '.join(LIVE_VARIABLES)}")
    url, anon_key, service_key, db_url = (str(v) for v in values)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(FIXTURE_SQL.encode())
        conn.execute("notify pgrst, 'reload schema'")
    gateway = PostgrestGateway.connect(url, anon_key, service_role_key=service_key)
    from supabase_auth import SyncGoTrueAdminAPI

    admin = SyncGoTrueAdminAPI(
        url=f"{url.rstrip('/')}/auth/v1",
        headers={"apikey": service_key, "Authorization": f"Bearer {service_key}"},
    )
    created: list[str] = []

    def make_user() -> tuple[str, Identity]:
        email, password = f"gw-{uuid.uuid4().hex[:10]}@example.com", uuid.uuid4().hex
        response = admin.create_user({"email": email, "password": password, "email_confirm": True})
        assert response.user is not None
        created.append(response.user.id)
        session = SupabaseSession.for_project(url, anon_key)
        return response.user.id, session.sign_in_with_password(email, password).identity()

    def cleanup() -> None:
        for user_id in created:
            admin.delete_user(user_id)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(DROP_SQL.encode())
            conn.execute("notify pgrst, 'reload schema'")

    # A project created from the legacy JWT secret can sign tokens; newer ones cannot here.
    secret = settings.jwt_secret if settings.jwt_secret != LOCAL_JWT_SECRET else None
    backend = Backend("postgrest", gateway, make_user, _expired(secret) if secret else None)
    backend.cleanup.append(cleanup)
    _wait_for_schema_cache(backend.anon)
    return backend


def _wait_for_schema_cache(gateway: Gateway, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            gateway.rpc("gw_add", {"a": 1})
            return
        except NotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(
    scope="module",
    params=["postgres", "pooled", pytest.param("postgrest", marks=pytest.mark.live)],
)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param in ("postgres", "pooled"):
        local_db = request.getfixturevalue("local_db")
        pooler = request.getfixturevalue("pooler") if request.param == "pooled" else None
        made = _postgres_backend(local_db, request.getfixturevalue("contract_db"), pooler)
    else:
        made = _postgrest_backend()
    yield made
    for step in made.cleanup:
        step()


def notes(
    user: User, count: int = 3, *, public: bool = False, **extra: Any
) -> list[dict[str, Any]]:
    """``count`` notes owned by ``user``, ranks 1..count, inserted as that user."""
    rows = [
        {
            "owner": user.id,
            "slug": f"{uuid.uuid4().hex[:12]}",
            "body": f"note {rank}",
            "rank": rank,
            "is_public": public,
            **extra,
        }
        for rank in range(1, count + 1)
    ]
    return user.gateway.insert("gw_notes", rows)


def bodies(rows: list[dict[str, Any]]) -> list[str]:
    return [row["body"] for row in rows]


# -- reading: filters, order, ranges, count, single -------------------------------------------


def test_each_comparison_filter_selects_its_rows(backend: Backend) -> None:
    user = backend.user()
    notes(user, 5)
    cases = [
        (eq("rank", 3), [3]),
        (neq("rank", 3), [1, 2, 4, 5]),
        (gt("rank", 3), [4, 5]),
        (gte("rank", 3), [3, 4, 5]),
        (lt("rank", 3), [1, 2]),
        (lte("rank", 3), [1, 2, 3]),
        (in_("rank", [1, 5, 9]), [1, 5]),
        (in_("rank", []), []),
        (ilike("body", "NOTE 4"), [4]),
        (ilike("body", "%te 2%"), [2]),
        (eq("rank", 3).negated(), [1, 2, 4, 5]),
    ]
    for condition, expected in cases:
        found = user.gateway.select("gw_notes", filters=[condition], order=[asc("rank")])
        assert [row["rank"] for row in found.rows] == expected, condition


def test_is_null_and_is_not_null(backend: Backend) -> None:
    user = backend.user()
    notes(user, 2)
    (blank,) = user.gateway.insert(
        "gw_notes",
        {"owner": user.id, "slug": uuid.uuid4().hex, "body": None, "rank": 9, "is_public": False},
    )
    nulls = user.gateway.select("gw_notes", filters=[is_null("body")])
    assert [row["id"] for row in nulls.rows] == [blank["id"]]
    present = user.gateway.select("gw_notes", filters=[is_not_null("body")], order=[asc("rank")])
    assert [row["rank"] for row in present.rows] == [1, 2]


def test_filters_combine_with_and(backend: Backend) -> None:
    user = backend.user()
    notes(user, 5)
    found = user.gateway.select("gw_notes", filters=[gte("rank", 2), lt("rank", 4)])
    assert sorted(row["rank"] for row in found.rows) == [2, 3]


def test_or_and_groups(backend: Backend) -> None:
    user = backend.user()
    notes(user, 6)
    cases = [
        ([or_(eq("rank", 1), eq("rank", 5))], [1, 5]),
        ([or_(lt("rank", 2), and_(eq("rank", 4), eq("body", "note 4")))], [1, 4]),
        ([gte("rank", 2), or_(eq("body", "note 2"), gt("rank", 5))], [2, 6]),
        ([or_(eq("rank", 1), eq("rank", 2)).negated()], [3, 4, 5, 6]),
        ([and_(gte("rank", 2), lte("rank", 3)).negated()], [1, 4, 5, 6]),
        ([or_(in_("rank", [3, 4]), is_null("body"), ilike("body", "NOTE 6"))], [3, 4, 6]),
        ([or_(eq("rank", 2).negated(), eq("body", "note 2"))], [1, 2, 3, 4, 5, 6]),
        # Values with the logic tree's own characters stay data.
        ([or_(eq("body", 'a,b.c:(d)"e\\'), eq("rank", 3))], [3]),
    ]
    for condition, expected in cases:
        found = user.gateway.select("gw_notes", filters=condition, order=[asc("rank")])
        assert [row["rank"] for row in found.rows] == expected, condition
    (odd,) = user.gateway.insert(
        "gw_notes",
        {"owner": user.id, "slug": uuid.uuid4().hex, "body": 'a,b.c:(d)"e\\', "rank": 9},
    )
    found = user.gateway.select(
        "gw_notes", filters=[or_(eq("body", 'a,b.c:(d)"e\\'), eq("rank", 100))]
    )
    assert [row["id"] for row in found.rows] == [odd["id"]]
    changed = user.gateway.update(
        "gw_notes", {"body": "grouped"}, filters=[or_(eq("rank", 1), eq("rank", 2))]
    )
    assert sorted(row["rank"] for row in changed) == [1, 2]
    with pytest.raises(InvalidInput):
        user.gateway.select("gw_notes", filters=[or_(eq("no_such_column", 1), eq("rank", 1))])
    with pytest.raises(ValueError):
        or_(in_("rank", []), eq("rank", 1))
    with pytest.raises(ValueError):
        or_()


def test_order_limit_offset_and_count(backend: Backend) -> None:
    user = backend.user()
    notes(user, 5)
    page = user.gateway.select(
        "gw_notes",
        columns=["rank", "body"],
        order=[desc("rank")],
        limit=2,
        offset=1,
        count=True,
    )
    assert page.rows == [{"rank": 4, "body": "note 4"}, {"rank": 3, "body": "note 3"}]
    assert page.count == 5
    assert user.gateway.select("gw_notes").count is None
    at_end = user.gateway.select("gw_notes", offset=5, count=True)
    assert (at_end.rows, at_end.count) == ([], 5)
    assert user.gateway.select("gw_notes", offset=10).rows == []
    with pytest.raises(InvalidInput) as beyond:
        user.gateway.select("gw_notes", offset=10, count=True)
    assert beyond.value.code == "PGRST103"


def test_negative_or_non_integer_bounds_are_invalid(backend: Backend) -> None:
    for bounds in ({"limit": -1}, {"offset": -5}, {"limit": True}, {"offset": "3"}):
        with pytest.raises(InvalidInput):
            backend.anon.select("gw_notes", **bounds)


def test_nulls_first_ordering(backend: Backend) -> None:
    user = backend.user()
    notes(user, 2)
    user.gateway.insert(
        "gw_notes",
        {"owner": user.id, "slug": uuid.uuid4().hex, "body": "x", "rank": None, "is_public": False},
    )
    ranks = [
        row["rank"]
        for row in user.gateway.select(
            "gw_notes", columns="rank", order=[asc("rank", nulls_first=True)]
        ).rows
    ]
    assert ranks == [None, 1, 2]


def test_single_returns_the_row_or_not_found(backend: Backend) -> None:
    user = backend.user()
    notes(user, 2)
    row = user.gateway.select("gw_notes", filters=[eq("rank", 2)], single=True)
    assert row["body"] == "note 2"
    with pytest.raises(NotFound) as none:
        user.gateway.select("gw_notes", filters=[eq("rank", 7)], single=True)
    assert none.value.code == "PGRST116"
    with pytest.raises(NotFound):
        user.gateway.select("gw_notes", single=True)


# -- writing ----------------------------------------------------------------------------------


def test_insert_returns_rows_with_server_defaults(backend: Backend) -> None:
    user = backend.user()
    (row,) = notes(user, 1)
    assert uuid.UUID(row["id"])
    assert row["owner"] == user.id and row["is_public"] is False
    assert isinstance(row["created_at"], str) and row["created_at"]


def test_insert_without_returning_still_writes(backend: Backend) -> None:
    user = backend.user()
    slug = uuid.uuid4().hex
    result = user.gateway.insert(
        "gw_notes",
        {"owner": user.id, "slug": slug, "body": "quiet", "rank": 1, "is_public": False},
        returning=False,
    )
    assert result == []
    assert user.gateway.select("gw_notes", filters=[eq("slug", slug)], single=True)["body"] == (
        "quiet"
    )


def test_upsert_merges_on_conflict_columns_and_on_the_primary_key(backend: Backend) -> None:
    user = backend.user()
    (first,) = notes(user, 1)
    (merged,) = user.gateway.upsert(
        "gw_notes",
        {"owner": user.id, "slug": first["slug"], "body": "merged by slug"},
        on_conflict=["slug"],
    )
    assert merged["id"] == first["id"] and merged["body"] == "merged by slug"
    (by_key,) = user.gateway.upsert(
        "gw_notes", {"id": first["id"], "owner": user.id, "body": "merged by key"}
    )
    assert by_key["id"] == first["id"] and by_key["body"] == "merged by key"
    (fresh,) = user.gateway.upsert(
        "gw_notes",
        {"owner": user.id, "slug": uuid.uuid4().hex, "body": "new"},
        on_conflict=["slug"],
    )
    assert fresh["id"] != first["id"]
    assert user.gateway.select("gw_notes", count=True).count == 2


def test_update_returns_the_changed_rows(backend: Backend) -> None:
    user = backend.user()
    notes(user, 3)
    changed = user.gateway.update("gw_notes", {"body": "changed"}, filters=[gte("rank", 2)])
    assert sorted(row["rank"] for row in changed) == [2, 3]
    assert set(bodies(changed)) == {"changed"}
    untouched = user.gateway.select("gw_notes", filters=[eq("rank", 1)], single=True)
    assert untouched["body"] == "note 1"


def test_delete_returns_the_deleted_rows(backend: Backend) -> None:
    user = backend.user()
    notes(user, 3)
    gone = user.gateway.delete("gw_notes", filters=[lte("rank", 2)])
    assert sorted(row["rank"] for row in gone) == [1, 2]
    assert [row["rank"] for row in user.gateway.select("gw_notes").rows] == [3]
    assert user.gateway.delete("gw_notes", filters=[eq("rank", 3)], returning=False) == []
    assert user.gateway.select("gw_notes").rows == []


def test_update_and_delete_refuse_to_run_without_a_filter(backend: Backend) -> None:
    user = backend.user()
    notes(user, 2)
    with pytest.raises(InvalidInput):
        user.gateway.update("gw_notes", {"body": "all"}, filters=[])
    with pytest.raises(InvalidInput):
        user.gateway.delete("gw_notes", filters=[])
    assert sorted(bodies(user.gateway.select("gw_notes").rows)) == ["note 1", "note 2"]


# -- rpc --------------------------------------------------------------------------------------


def test_rpc_with_named_and_default_arguments(backend: Backend) -> None:
    assert backend.anon.rpc("gw_add", {"a": 1, "b": 2}) == 3
    assert backend.anon.rpc("gw_add", {"a": 1}) == 11
    assert backend.anon.rpc("gw_add", {"a": 5}, read_only=True) == 15


@pytest.mark.parametrize("function", ["gw_json", "gw_jsonb"])
def test_rpc_returning_json_gives_the_value_itself(backend: Backend, function: str) -> None:
    """A json or jsonb result is the JSON value (the local gateway sends it as it is, where
    other results go through to_json); SQL NULL and JSON null both read as None."""
    rpc = backend.anon.rpc
    assert rpc(function, {"kind": "object"}) == {"a": [1, 2.5, "x"], "b": None, "c": {"d": True}}
    assert rpc(function, {"kind": "array"}) == [1, "two", None]
    assert rpc(function, {"kind": "string"}) == "text"
    assert rpc(function, {"kind": "null"}) is None
    assert rpc(function, {"kind": "missing"}) is None


def test_rpc_set_returning_function_runs_under_rls(backend: Backend) -> None:
    user, other = backend.user(), backend.user()
    notes(user, 3)
    notes(other, 3)
    ranked = user.gateway.rpc("gw_notes_ranked", {"min_rank": 2})
    assert [(row["owner"], row["rank"]) for row in ranked] == [(user.id, 2), (user.id, 3)]


def test_void_rpc_returns_none_and_unknown_function_is_not_found(backend: Backend) -> None:
    user = backend.user()
    (note,) = notes(user, 1)
    assert user.gateway.rpc("gw_touch", {"note_id": note["id"]}) is None
    assert user.gateway.select("gw_notes", single=True)["body"] == "note 1!"
    with pytest.raises(NotFound):
        backend.anon.rpc("gw_no_such_function")
    with pytest.raises(NotFound):
        backend.anon.rpc("gw_add", {"nope": 1})


def test_security_invoker_rpc_sees_the_callers_uid(backend: Backend) -> None:
    user = backend.user()
    assert user.gateway.rpc("gw_whoami") == user.id
    assert backend.anon.rpc("gw_whoami") is None


def test_read_only_rpc_cannot_write(backend: Backend) -> None:
    user = backend.user()
    (note,) = notes(user, 1)
    with pytest.raises(InvalidInput) as refused:
        user.gateway.rpc("gw_touch", {"note_id": note["id"]}, read_only=True)
    assert refused.value.code == "25006"
    assert user.gateway.select("gw_notes", single=True)["body"] == "note 1"


# -- who sees what ----------------------------------------------------------------------------


def test_anon_user_and_service_role_see_different_rows(backend: Backend) -> None:
    alice, bob = backend.user(), backend.user()
    notes(alice, 2)
    notes(bob, 1, public=True)
    mine = [alice.id, bob.id]
    owned = [in_("owner", mine)]
    assert {row["owner"] for row in alice.gateway.select("gw_notes", filters=owned).rows} == {
        alice.id
    }
    anon_rows = backend.anon.select("gw_notes", filters=owned).rows
    assert [(row["owner"], row["is_public"]) for row in anon_rows] == [(bob.id, True)]
    assert backend.service.select("gw_notes", filters=owned, count=True).count == 3


def test_rls_denial_is_permission_denied(backend: Backend) -> None:
    alice, bob = backend.user(), backend.user()
    with pytest.raises(PermissionDenied) as denied:
        alice.gateway.insert(
            "gw_notes", {"owner": bob.id, "slug": uuid.uuid4().hex, "body": "forged", "rank": 1}
        )
    assert denied.value.code == "42501"
    with pytest.raises(PermissionDenied):
        backend.anon.insert("gw_notes", {"owner": None, "slug": uuid.uuid4().hex, "rank": 1})
    assert backend.service.select("gw_notes", filters=[eq("owner", bob.id)]).rows == []


def test_rows_hidden_by_rls_are_not_updated_or_deleted(backend: Backend) -> None:
    alice, bob = backend.user(), backend.user()
    notes(bob, 1)
    assert alice.gateway.update("gw_notes", {"body": "hijack"}, filters=[eq("owner", bob.id)]) == []
    assert alice.gateway.delete("gw_notes", filters=[eq("owner", bob.id)]) == []
    assert bodies(bob.gateway.select("gw_notes").rows) == ["note 1"]


# -- errors -----------------------------------------------------------------------------------


def test_unique_violation_is_a_conflict(backend: Backend) -> None:
    user = backend.user()
    (note,) = notes(user, 1)
    with pytest.raises(Conflict) as conflict:
        user.gateway.insert(
            "gw_notes", {"owner": user.id, "slug": note["slug"], "body": "dup", "rank": 2}
        )
    assert conflict.value.code == "23505"


def test_stale_version_raised_by_a_function_is_a_conflict(backend: Backend) -> None:
    with pytest.raises(Conflict) as stale:
        backend.anon.rpc("gw_stale_version", {"expected": 3})
    assert stale.value.code == "PT409"
    assert stale.value.details == "expected 3"


def test_bad_input_is_invalid_input(backend: Backend) -> None:
    user = backend.user()
    notes(user, 1)
    attempts: list[tuple[Callable[[], object], str | None]] = [
        (lambda: user.gateway.select("gw_notes", filters=[eq("id", "not-a-uuid")]), "22P02"),
        (lambda: user.gateway.select("gw_notes", filters=[eq("rank", "many")]), "22P02"),
        (
            lambda: user.gateway.insert(
                "gw_notes", {"owner": user.id, "slug": uuid.uuid4().hex, "rank": -1}
            ),
            "23514",
        ),
        (
            lambda: user.gateway.insert(
                "gw_notes", {"owner": user.id, "slug": uuid.uuid4().hex, "is_public": None}
            ),
            "23502",
        ),
        (lambda: user.gateway.select("gw_notes", columns=["id", "nope"]), None),
        (lambda: user.gateway.select("gw_notes", filters=[eq("nope", 1)]), None),
        (lambda: user.gateway.insert("gw_notes", {"owner": user.id, "nope": 1}), None),
        (lambda: backend.anon.rpc("gw_reject", {"reason": "no thanks"}), "P0001"),
        (lambda: backend.anon.rpc("gw_add", {"a": "three"}), "22P02"),
    ]
    for attempt, code in attempts:
        with pytest.raises(InvalidInput) as bad:
            attempt()
        if code:
            assert bad.value.code == code


def test_rate_limit_raised_by_a_function_is_rate_limited(backend: Backend) -> None:
    with pytest.raises(RateLimited) as limited:
        backend.anon.rpc("gw_slow_down")
    assert limited.value.code == "PT429"
    assert limited.value.hint == "retry in a second"
    assert limited.value.retryable


def test_function_statement_timeout_is_applied_to_the_call(backend: Backend) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as timeout:
        backend.anon.rpc("gw_slow", {"seconds": 2})
    assert timeout.value.code == "57014" and not timeout.value.retryable
    assert time.monotonic() - started < 1.5


def test_unknown_table_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.anon.select("gw_no_such_table")


def test_expired_or_forged_tokens_are_unauthorized(backend: Backend) -> None:
    user_id = str(uuid.uuid4())
    forged = jwt.encode(
        {"sub": user_id, "role": "authenticated", "exp": int(time.time()) + 600},
        "another-secret-that-is-at-least-32-characters",
        algorithm="HS256",
    )
    with pytest.raises(Unauthorized):
        backend.anon.as_identity(Identity.from_jwt(forged)).select("gw_notes")
    with pytest.raises(Unauthorized):
        backend.anon.as_identity(Identity.from_jwt("not.a.jwt")).rpc("gw_whoami")
    if backend.expired_token is None:
        pytest.skip("expired tokens need the project's JWT secret (SUPABASE_JWT_SECRET)")
    expired = Identity.from_jwt(backend.expired_token(user_id))
    with pytest.raises(Unauthorized):
        backend.anon.as_identity(expired).select("gw_notes")


def test_injection_in_names_is_rejected_and_harmless(backend: Backend) -> None:
    user = backend.user()
    notes(user, 1)
    with pytest.raises(NotFound):
        user.gateway.select("gw_notes; drop table public.gw_notes; --")
    with pytest.raises(InvalidInput):
        user.gateway.select("../auth/v1/admin/users")
    with pytest.raises(InvalidInput):
        user.gateway.select("gw_notes", columns=['id") from public.gw_notes; --'])
    with pytest.raises(InvalidInput):
        user.gateway.select("gw_notes", filters=[eq("rank) or (true", 1)])
    with pytest.raises(InvalidInput):
        user.gateway.insert("gw_notes", {"owner": user.id, 'body") values (1); --': "x"})
    with pytest.raises(NotFound):
        user.gateway.rpc("gw_add(1,2); select 1; --", {"a": 1})
    assert len(user.gateway.select("gw_notes").rows) == 1


# -- request context --------------------------------------------------------------------------


def test_request_context_seen_by_sql_is_postgrests(backend: Backend) -> None:
    user = backend.user()
    tagged = user.gateway.with_headers({"X-Gw-Test": "contract"})
    ctx = tagged.rpc("gw_request_context")
    assert ctx["method"] == "POST"
    assert ctx["path"] == "/rpc/gw_request_context"
    assert ctx["current_user"] == "authenticated"
    assert ctx["uid"] == user.id
    assert ctx["statement_timeout"] == "8s"
    assert ctx["read_only"] == "off"
    assert ctx["legacy_sub"] is None and ctx["legacy_role"] is None
    claims = json.loads(ctx["claims_text"])
    assert (claims["sub"], claims["role"]) == (user.id, "authenticated")
    assert json.loads(ctx["headers_text"])["x-gw-test"] == "contract"
    read = tagged.rpc("gw_request_context", read_only=True)
    assert (read["method"], read["read_only"]) == ("GET", "on")
    anon = backend.anon.rpc("gw_request_context")
    assert (anon["current_user"], anon["statement_timeout"], anon["uid"]) == ("anon", "3s", None)
    assert json.loads(anon["claims_text"])["role"] == "anon"
    service = backend.service.rpc("gw_request_context")
    assert service["current_user"] == "service_role"
