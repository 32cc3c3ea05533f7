"""Seed worlds: a small realistic one for development, a large one for benchmarks."""

from pysync.seed.perf import PerfPlan, PerfReport, seed_perf

__all__ = ["PerfPlan", "PerfReport", "seed_perf"]
