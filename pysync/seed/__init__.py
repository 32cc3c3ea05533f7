"""Seed worlds: a small realistic one for development, a large one for benchmarks."""

from pysync.seed.perf import BaselineReport, PerfPlan, PerfReport, perf_id, seed_perf

__all__ = ["BaselineReport", "PerfPlan", "PerfReport", "perf_id", "seed_perf"]
