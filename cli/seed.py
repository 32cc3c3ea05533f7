"""``pysync seed …``: fill a database with a development or a performance world."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pysync.seed import PerfPlan, seed_perf
from pysync_cli import context, output
from pysync_cli.options import DbUrl, Json

seed_app = typer.Typer(
    help="Load seed worlds: a small realistic one, or a large one for benchmarks."
)


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
    with project.connect() as conn:
        if as_json:
            report = seed_perf(conn, plan)
        else:
            columns = (
                TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(),
            )  # fmt: skip
            with Progress(*columns, console=output.console) as bar:
                tasks: dict[str, int] = {}

                def advance(table: str, done: int, planned: int) -> None:
                    if table not in tasks:
                        tasks[table] = bar.add_task(table, total=planned)
                    bar.update(tasks[table], completed=done)

                report = seed_perf(conn, plan, progress=advance)

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
