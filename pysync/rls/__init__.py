"""Row Level Security, proven: the declared access matrix and the runner that checks it."""

from pysync.rls.matrix import ACTORS, Case, CaseSpec, Matrix, load_matrix
from pysync.rls.realtime import TopicAccess, probe_topic
from pysync.rls.runner import CaseResult, MatrixReport, coverage_gaps, run_matrix

__all__ = [
    "ACTORS",
    "Case",
    "CaseResult",
    "CaseSpec",
    "Matrix",
    "MatrixReport",
    "TopicAccess",
    "coverage_gaps",
    "load_matrix",
    "probe_topic",
    "run_matrix",
]
