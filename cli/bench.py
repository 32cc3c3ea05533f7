"""``pysync bench …``: measure the library's hot paths on the embedded database."""

from __future__ import annotations

from typing import Annotated

import typer

from pysync_cli import context, output
from pysync_cli.options import Json

bench_app = typer.Typer(help="Measure the cost of the library's hot paths.")

Iterations = Annotated[
    int, typer.Option("--iterations", "-n", min=1, help="Measured calls of each kind.")
]
Rows = Annotated[int, typer.Option("--rows", min=1, help="Rows in the scratch table.")]


@bench_app.command("gateway")
def bench_gateway(
    iterations: Iterations = 1000,
    rows: Rows = 10_000,
    as_json: Json = False,
) -> None:
    """Primary-key reads through PostgresGateway (as a signed-in user) vs bare psycopg.

    Runs on the embedded cluster (started if needed) in a scratch database, then drops it.
    """
    from pysync.bench import TARGET_RATIO, run_gateway_bench

    project = context.project()
    project.local.start()
    result = run_gateway_bench(
        project.local,
        iterations=iterations,
        rows=rows,
        progress=None if as_json else output.say,
    )

    def human() -> None:
        output.table(
            f"Primary-key read, {result.iterations} calls on {result.rows} rows",
            ["path", "p50 ms", "p95 ms", "mean ms"],
            [
                ("PostgresGateway.select", *_ms(result.gateway.as_dict())),
                ("bare psycopg", *_ms(result.bare.as_dict())),
                ("ratio", f"{result.ratio_p50:.2f}x", f"{result.ratio_p95:.2f}x", ""),
            ],
        )
        verdict = "within" if result.within_target else "over"
        output.say(f"p50 ratio {result.ratio_p50:.2f}x: {verdict} the {TARGET_RATIO:g}x target")

    output.emit(as_json, result.as_dict(), human)


def _ms(timing: dict[str, float]) -> tuple[str, str, str]:
    return (f"{timing['p50_ms']:.3f}", f"{timing['p95_ms']:.3f}", f"{timing['mean_ms']:.3f}")
