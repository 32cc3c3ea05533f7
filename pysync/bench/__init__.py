"""Benchmarks of the library's hot paths, run against the embedded database."""

from pysync.bench.gateway import TARGET_RATIO, GatewayBenchResult, Timing, run_gateway_bench
from pysync.bench.rls import MAX_P95_MS, MAX_RATIO, QueryFigures, RlsBenchResult, run_rls_bench

__all__ = [
    "MAX_P95_MS",
    "MAX_RATIO",
    "TARGET_RATIO",
    "GatewayBenchResult",
    "QueryFigures",
    "RlsBenchResult",
    "Timing",
    "run_gateway_bench",
    "run_rls_bench",
]
