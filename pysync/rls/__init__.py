"""Row Level Security, proven: the declared access matrix and the runner that checks it."""

from pysync.rls.matrix import ACTORS, Case, CaseSpec, Matrix, load_matrix
from pysync.rls.runner import CaseResult, MatrixReport, coverage_gaps, run_matrix

__all__ = [
    "ACTORS",
    "Case",
    "CaseResult",
    "CaseSpec",
    "Matrix",
    "MatrixReport",
    "coverage_gaps",
    "load_matrix",
    "run_matrix",
]
