"""Benchmarks of the library's hot paths, run against the embedded database."""

from pysync.bench.gateway import TARGET_RATIO, GatewayBenchResult, Timing, run_gateway_bench

__all__ = ["TARGET_RATIO", "GatewayBenchResult", "Timing", "run_gateway_bench"]
