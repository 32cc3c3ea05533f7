"""``pysync jwt …``: tokens for curl and app testing, signed with the project's JWT secret."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated

import typer

from pysync.auth import DEMO_KEY_EXPIRY, mint_api_key, mint_user_token
from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json
from pysync.errors import ConfigError

jwt_app = typer.Typer(help="Sign tokens with the configured JWT secret (SUPABASE_JWT_SECRET).")


class KeyRole(StrEnum):
    anon = "anon"
    service_role = "service_role"


@jwt_app.command("mint")
def jwt_mint(
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            metavar="EMAIL",
            help="An access token for this user, with GoTrue's claims read from their row"
            " (recorded in auth.sessions, as a sign-in is).",
            show_default=False,
        ),
    ] = None,
    role: Annotated[
        KeyRole | None,
        typer.Option("--role", help="The project API key for this role.", show_default=False),
    ] = None,
    expires_in: Annotated[
        int | None,
        typer.Option(
            "--expires-in",
            min=1,
            help="Lifetime in seconds (default: 3600 for a user; the local stack's fixed expiry"
            " for an API key).",
            show_default=False,
        ),
    ] = None,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Print a signed token: a user's access token or an anon / service_role API key."""
    if (user is None) == (role is None):
        raise ConfigError("give exactly one of --user EMAIL or --role anon|service_role")
    project = context.project(db_url)
    signing = context.signing(project)
    if role is not None:
        expires_at = int(time.time()) + expires_in if expires_in else DEMO_KEY_EXPIRY
        token = mint_api_key(
            signing.secret, role.value, issuer=signing.key_issuer, expires_at=expires_at
        )
        data: dict[str, object] = {"token": token, "role": role.value, "expires_at": expires_at}
    else:
        assert user is not None
        with project.connect() as conn:
            record, session = mint_user_token(
                conn, user, signing.secret, issuer=signing.issuer, expires_in=expires_in or 3600
            )
        token = session.access_token
        data = {
            "token": token,
            "role": "authenticated",
            "user_id": record.id,
            "email": record.email,
            "app_role": record.role,
            "expires_at": session.expires_at,
        }
    output.emit(as_json, data, lambda: output.line(token))
