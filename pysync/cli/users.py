"""``pysync users …``: create, list and delete users as GoTrue would (local development)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from pysync.auth import UserRecord, create_user, delete_user, find_user, list_users
from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json, Yes
from pysync.errors import PysyncError

users_app = typer.Typer(help="Create, list and delete users as GoTrue's admin API would.")


class AppRole(StrEnum):
    student = "student"
    tutor = "tutor"
    admin = "admin"


def render_users(title: str, users: list[UserRecord]) -> None:
    output.table(
        title,
        ["id", "email", "role", "created", "confirmed"],
        [
            (
                u.id,
                u.email,
                u.role,
                u.created.strftime("%Y-%m-%d %H:%M"),
                "yes" if u.confirmed else "no",
            )
            for u in users
        ],
    )


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="The user's email (stored lower-cased).")],
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            help="Password to sign in with (default: a random one, as GoTrue's admin API).",
            show_default=False,
        ),
    ] = None,
    role: Annotated[
        AppRole, typer.Option("--role", help="Application role (app_metadata.app_role).")
    ] = AppRole.student,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Display name (user_metadata.display_name; default: the email's local part).",
            show_default=False,
        ),
    ] = None,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Create a confirmed email user with a profile of the given role."""
    with context.project(db_url).connect() as conn, conn.transaction():
        create_user(
            conn,
            email,
            password,
            app_metadata={"app_role": role.value},
            user_metadata={"display_name": name} if name else None,
        )
        user = find_user(conn, email)
    output.emit(as_json, user.as_dict(), lambda: render_users("Created", [user]))


@users_app.command("list")
def users_list(
    role: Annotated[
        AppRole | None,
        typer.Option("--role", help="Only users with this application role.", show_default=False),
    ] = None,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """List users, oldest first: id, email, application role, created, confirmed."""
    with context.project(db_url).connect() as conn:
        users = list_users(conn, role.value if role else None)
    output.emit(
        as_json, [u.as_dict() for u in users], lambda: render_users(f"Users ({len(users)})", users)
    )


@users_app.command("delete")
def users_delete(
    email: Annotated[str, typer.Argument(help="Email of the user to delete.")],
    yes: Yes = False,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Delete a user; their profile and everything that belongs to them goes too (cascade)."""
    if not yes:
        raise PysyncError(
            f"deleting {email.strip().lower()} also deletes their profile and data:"
            " run again with --yes"
        )
    with context.project(db_url).connect() as conn:
        user = delete_user(conn, email)
    output.emit(
        as_json,
        {"deleted": user.as_dict()},
        lambda: output.line(f"deleted {user.email} ({user.role}, {user.id})"),
    )
