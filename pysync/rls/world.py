"""Build the matrix's fixture world inside the caller's (rolled-back) transaction.

Users are created as GoTrue creates them (:func:`pysync.auth.users.create_user`), so the
project's own sign-up trigger gives them profiles; rows are inserted as the connecting role
(the platform), in file order. Ids are fresh for every run, so the world never collides with
real data in a target database.
"""

from __future__ import annotations

import string
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pysync.auth.users import create_user
from pysync.rls.matrix import Matrix, MatrixError, Value, qualified

__all__ = ["World", "build_world", "table_identifier"]


@dataclass(frozen=True)
class World:
    """Names of users and rows mapped to their ids."""

    ids: dict[str, uuid.UUID]

    def resolve(self, value: Value, me: uuid.UUID | None) -> Value:
        """Fill ``{name}`` references; a string that is one reference becomes that id."""
        if isinstance(value, dict):
            return Jsonb(value)
        if isinstance(value, list):
            return [self.resolve(v, me) for v in value]
        if not isinstance(value, str):
            return value
        names = {**{k: str(v) for k, v in self.ids.items()}, "me": str(me) if me else None}
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name]
        if fields == [value[1:-1]] and value.startswith("{") and value.endswith("}"):
            return names[fields[0]]
        return value.format_map(names)


def table_identifier(table: str) -> sql.Identifier:
    schema, name = qualified(table).split(".", 1)
    return sql.Identifier(schema, name)


def insert_row(
    conn: psycopg.Connection[Any],
    table: str,
    values: dict[str, Any],
    on_conflict: tuple[str, ...] = (),
) -> psycopg.Cursor[Any]:
    """``insert into <table> (<columns>) values (<params>) returning id``; with
    ``on_conflict``, a row already there under that key is updated to the values instead."""
    upsert: sql.Composable = sql.SQL("")
    if on_conflict:
        upsert = sql.SQL(" on conflict ({}) do update set {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in on_conflict),
            sql.SQL(", ").join(
                sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in values
            ),
        )
    query = sql.SQL("insert into {} ({}) values ({}){} returning id").format(
        table_identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in values),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
        upsert,
    )
    return conn.execute(query, list(values.values()))


def _create_user(conn: psycopg.Connection[Any], user_id: uuid.UUID, name: str, role: str) -> None:
    # Nobody signs in with these users' passwords: the cheapest bcrypt cost keeps the run fast.
    create_user(
        conn,
        f"rls-{name.replace('_', '-')}-{user_id.hex[:8]}@matrix.invalid",
        user_id=user_id,
        app_metadata={"app_role": role},
        user_metadata={"display_name": name.replace("_", " ").title()},
        bcrypt_cost=4,
    )


def build_world(conn: psycopg.Connection[Any], matrix: Matrix) -> World:
    """Create the fixture users and rows; the caller's transaction keeps or discards them."""
    world = World(ids={})
    for user in matrix.users.values():
        user_id = uuid.uuid4()
        world.ids[user.name] = user_id
        _create_user(conn, user_id, user.name, user.app_role)
        # Role and soft delete as an admin would set them, whatever the sign-up trigger did.
        conn.execute(
            "update public.profiles set role = %s,"
            " deleted_at = case when %s then now() end where id = %s",
            (user.app_role, user.deleted, user_id),
        )
    for row in matrix.rows.values():
        values = {column: world.resolve(v, None) for column, v in row.values.items()}
        try:
            inserted = insert_row(conn, row.table, values, row.on_conflict).fetchone()
        except psycopg.Error as exc:
            raise MatrixError(
                f"fixture row {row.name} ({row.table}) could not be created: {exc}"
            ) from exc
        assert inserted is not None
        world.ids[row.name] = inserted[0]
    return world
