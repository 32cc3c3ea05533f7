"""Seed worlds: a small realistic one for development, a large one for benchmarks."""

from pysync.seed.dev import DEV_PASSWORD, DevPlan, DevReport, build_dev_world, dev_id, seed_dev
from pysync.seed.perf import BaselineReport, PerfPlan, PerfReport, perf_id, seed_perf

__all__ = [
    "DEV_PASSWORD",
    "BaselineReport",
    "DevPlan",
    "DevReport",
    "PerfPlan",
    "PerfReport",
    "build_dev_world",
    "dev_id",
    "perf_id",
    "seed_dev",
    "seed_perf",
]
