"""``pysync seed …``: fill a database with a development or a performance world."""

from __future__ import annotations

from typing import Annotated

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json
from pysync.cli.progress import progress_bars
from pysync.errors import PysyncError
from pysync.seed import DevPlan, DevReport, PerfPlan, seed_dev, seed_perf

seed_app = typer.Typer(
    help="Load seed worlds: a small realistic one, or a large one for benchmarks."
)


def render_dev(report: DevReport) -> None:
    if report.rows:
        output.table(
            "Development world",
            ["table", "rows added"],
            [(table, rows) for table, rows in report.inserted.items()],
        )
    else:
        output.say("the development world is already there: nothing to add")
    output.table(
        f"Log in as (every password: {report.password})",
        ["role", "email", "name"],
        [(u.role, u.email, u.name) for u in report.logins()],
    )
    output.say(f"{len(report.users)} users in all: `pysync users list`")


@seed_app.command("dev")
def seed_dev_command(
    seed: Annotated[int, typer.Option("--seed", help="Faker and random seed.")] = DevPlan.seed,
    remote: Annotated[
        bool,
        typer.Option(
            "--remote",
            help="Allow a remote --db-url target (its seeded users share a published password).",
        ),
    ] = False,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Load a small realistic world (users of each role, courses, sessions, chats, payments…):
    deterministic, and re-runnable without duplicates."""
    project = context.project(db_url)
    if context.is_remote(project) and not remote:
        raise PysyncError(
            "seed dev creates users whose password is published: pass --remote to seed a"
            " remote database anyway"
        )
    with project.connect() as conn, progress_bars(not as_json) as progress:
        report = seed_dev(conn, DevPlan(seed=seed), progress=progress)
    output.emit(as_json, report.as_dict(), lambda: render_dev(report))


@seed_app.command("perf")
def seed_perf_command(
    users: Annotated[int, typer.Option("--users", min=20, help="Number of users.")] = 100_000,
    scale: Annotated[
        float, typer.Option("--scale", min=0.1, help="Multiplies enrollments per student.")
    ] = 1.0,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Bulk-load the perf world with COPY (about 2.8 million rows at --users 100000).

    Then inserts a sample of 20,000 enrollments row by row (executemany) and with COPY
    into a temporary copy of the table, to report COPY's speed-up measured in the same run.
    """
    project = context.project(db_url)
    plan = PerfPlan(users=users, scale=scale)
    with project.connect() as conn, progress_bars(not as_json) as progress:
        report = seed_perf(conn, plan, progress=progress)

    def human() -> None:
        output.table(
            "Perf world",
            ["table", "rows", "seconds", "rows/s"],
            [
                (t.table, f"{t.rows:,}", f"{t.seconds:.2f}", f"{t.rows / t.seconds:,.0f}")
                for t in report.tables
            ],
        )
        output.say(
            f"{report.rows:,} rows in {report.seconds:.1f}s ({report.rows_per_second:,.0f} rows/s)"
        )
        if report.baseline is not None:
            b = report.baseline
            output.say(
                f"baseline on {b.rows:,} enrollments: executemany"
                f" {b.executemany_rows_per_second:,.0f}"
                f" rows/s, COPY {b.copy_rows_per_second:,.0f} rows/s ({b.speedup:.1f}x faster)"
            )

    output.emit(as_json, report.as_dict(), human)
