"""Option aliases shared by every command, so flags read the same everywhere."""

from __future__ import annotations

from typing import Annotated

import typer

DbUrl = Annotated[
    str | None,
    typer.Option(
        "--db-url",
        envvar="SUPABASE_DB_URL",
        help="Target this Postgres (e.g. a Supabase project) instead of the embedded database.",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Confirm a destructive operation.")]
