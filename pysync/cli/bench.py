"""``pysync bench …``: measure the library's hot paths on the embedded database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pysync.cli import context, output
from pysync.cli.options import DbUrl, Json

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


@bench_app.command("rls")
def bench_rls(
    users: Annotated[
        int, typer.Option("--users", min=20, help="Users in the scratch perf world.")
    ] = 100_000,
    iterations: Iterations = 1000,
    naive: Annotated[
        bool,
        typer.Option(
            "--naive",
            help="Also run the queries on a copy with naive policies and no policy indexes.",
        ),
    ] = False,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Hot client queries as a user through PostgresGateway vs the same with RLS bypassed.

    Loads the perf world into a scratch database on the embedded cluster and drops it
    afterwards; with --db-url, runs on the perf world already loaded there (see
    `pysync seed perf`). Reports p50/p95 and the p95 ratio to service_role with the
    policy written as an explicit filter, measured interleaved in the same run.
    """
    from pysync.bench.rls import MAX_P95_MS, MAX_RATIO, run_rls_bench

    project = context.project(db_url)
    if project.is_local:
        project.local.start()
    result = run_rls_bench(
        project.local if project.is_local else None,
        db_url=project.db_url,
        jwt_secret=project.settings.jwt_secret,
        users=users,
        iterations=iterations,
        naive=naive,
        migrations_dir=project.settings.migrations_dir,
        policies_dir=project.settings.policies_dir,
        progress=None if as_json else output.say,
    )

    def human() -> None:
        columns = ["query", "p50", "p95", "bypass p95", "ratio"]
        if naive:
            columns.append("naive p95")
        rows = []
        for query in result.queries:
            figures = query.as_dict()
            row = [
                query.name,
                f"{figures['p50_ms']:.2f}",
                f"{figures['p95_ms']:.2f}",
                f"{figures['bypass_p95_ms']:.2f}",
                f"{figures['ratio']:.2f}x" + ("" if query.within_target else " !"),
            ]
            if naive:
                row.append(f"{figures['naive_p95_ms']:.2f}")
            rows.append(row)
        output.table(
            f"RLS cost in ms, {result.iterations} iterations on {result.users:,} users",
            columns,
            rows,
        )
        missed = [q.name for q in result.queries if not q.within_target]
        output.say(
            f"targets: ratio <= {MAX_RATIO:g}x and p95 <= {MAX_P95_MS:g} ms: "
            + (f"missed by {', '.join(missed)}" if missed else "all within")
        )

    output.emit(as_json, result.as_dict(), human)


@bench_app.command("sync")
def bench_sync(
    rows: Annotated[
        int,
        typer.Option("--rows", min=1, help="Rows of the first sync (1000000 for the large run)."),
    ] = 100_000,
    users: Annotated[
        int, typer.Option("--users", min=20, help="Users in the scratch perf world.")
    ] = 10_000,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only this benchmark (repeatable): no_change_pull, first_sync, "
            "apply_one_change, push, capacity, propagation, files.",
        ),
    ] = None,
    iterations: Iterations = 200,
    push_ops: Annotated[int, typer.Option("--push-ops", min=1, help="Queued ops pushed.")] = 10_000,
    writes: Annotated[
        int, typer.Option("--writes", min=1, help="Writes propagated from A to B.")
    ] = 200,
    rounds: Annotated[
        int,
        typer.Option(
            "--rounds",
            min=1,
            help="First syncs and floors measured in turn; the medians are reported.",
        ),
    ] = 3,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="Concurrent pullers for capacity.")
    ] = 4,
    files: Annotated[
        int, typer.Option("--files", min=1, help="Files uploaded and downloaded (files).")
    ] = 20,
    file_kib: Annotated[
        int, typer.Option("--file-kib", min=1, help="Size of each file, KiB.")
    ] = 1024,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write a PNG of first-sync rows/s and RSS (matplotlib)."),
    ] = None,
    db_url: DbUrl = None,
    as_json: Json = False,
) -> None:
    """Sync's costs, each against a baseline measured in the same run (issue 10).

    First sync vs the floor (owner keyset SELECT + SQLite executemany), one change applied
    vs a no-change pull, a no-change pull of ~50 buckets vs `select 1` through the same
    gateway, a push of queued ops vs service_role in one transaction, no-change pulls/s from
    many users vs `select 1`/s, A-to-B propagation through the nudge, and the local file
    path's upload and download MB/s vs a plain file copy. Loads the perf
    world into a scratch database and drops it afterwards; with --db-url, runs on a
    database with the migrations and a perf world, adding (and then deleting) its own users.
    """
    from pysync.bench.sync import plot as draw
    from pysync.bench.sync import run_sync_bench

    project = context.project(db_url)
    if project.is_local:
        project.local.start()
    result = run_sync_bench(
        project.local if project.is_local else None,
        db_url=project.db_url,
        jwt_secret=project.settings.jwt_secret,
        users=users,
        rows=rows,
        only=only or (),
        iterations=iterations,
        push_ops=push_ops,
        writes=writes,
        first_sync_rounds=rounds,
        capacity_threads=threads,
        files=files,
        file_bytes=file_kib * 1024,
        migrations_dir=project.settings.migrations_dir,
        policies_dir=project.settings.policies_dir,
        progress=None if as_json else output.say,
    )
    data = result.as_dict()
    if plot is not None:
        draw(data, plot)
    if as_json:
        for bench in data["benchmarks"]:
            bench.pop("samples", None)
            bench.pop("floor_samples", None)

    def human() -> None:
        table_rows = []
        for bench in data["benchmarks"]:
            ratio = bench["ratio"]
            table_rows.append(
                (
                    bench["name"],
                    _summary(bench["measured"]),
                    _summary(bench["baseline"]),
                    "" if ratio is None else f"{ratio:.2f}x",
                    "yes" if bench["within_target"] else "no",
                )
            )
        load = data["load"]
        output.table(
            f"Sync benchmarks on {data['users']:,} users"
            f" (load {load['1m']} on {load['cpus']} CPUs)",
            ["benchmark", "measured", "baseline", "ratio", "target met"],
            table_rows,
        )

    output.emit(as_json, data, human)


def _summary(figures: dict[str, object]) -> str:
    keys = ("rows_per_second", "ops_per_second", "pulls_per_second", "calls_per_second")
    parts = [f"{k.replace('_per_second', '/s')} {figures[k]:,}" for k in keys if k in figures]
    if "p50_ms" in figures:
        parts.append(f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms")
    if "peak_rss_mb" in figures:
        parts.append(f"peak RSS {figures['peak_rss_mb']} MB")
    for key in ("attach_mb_s", "upload_mb_s", "download_mb_s", "copy_mb_s"):
        if key in figures:
            parts.append(f"{key.removesuffix('_mb_s')} {figures[key]} MB/s")
    return "; ".join(parts)


def _ms(timing: dict[str, float]) -> tuple[str, str, str]:
    return (f"{timing['p50_ms']:.3f}", f"{timing['p95_ms']:.3f}", f"{timing['mean_ms']:.3f}")
