"""Lint migrations and policies: sqlfluff for style, squawk for migration safety.

Both tools read their configuration from the project (``.sqlfluff``, ``.squawk.toml``) so the
editor, CI and ``pysync db lint`` agree. Findings come back as one flat list.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from pysync.config import Settings
from pysync.errors import PysyncError
from pysync.migrate.files import discover_migrations, discover_policies

__all__ = ["LintFinding", "lint_paths"]


@dataclass(frozen=True)
class LintFinding:
    tool: str
    path: str
    line: int
    rule: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _tool(name: str) -> str:
    """The tool installed beside this interpreter (the project venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise PysyncError(
            f"{name} is not installed: run `make test` once, or pip install -e '.[dev]'"
        )
    return found


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root))
    except ValueError:
        return path


def _sqlfluff(files: list[Path], root: Path) -> list[LintFinding]:
    result = subprocess.run(
        [_tool("sqlfluff"), "lint", "--format", "json", "--nofail", *map(str, files)],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        reports = json.loads(result.stdout or "[]")
    except ValueError as exc:
        raise PysyncError(f"sqlfluff failed: {result.stderr.strip()[-300:]}") from exc
    return [
        LintFinding(
            tool="sqlfluff",
            path=_relative(report["filepath"], root),
            line=int(v.get("start_line_no", 0)),
            rule=str(v.get("code", "")),
            message=str(v.get("description", "")),
        )
        for report in reports
        for v in report.get("violations", [])
    ]


def _squawk(files: list[Path], root: Path) -> list[LintFinding]:
    result = subprocess.run(
        [_tool("squawk"), "--reporter", "json", *map(str, files)],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        violations = json.loads(result.stdout or "[]")
    except ValueError as exc:
        raise PysyncError(f"squawk failed: {result.stderr.strip()[-300:]}") from exc
    return [
        LintFinding(
            tool="squawk",
            path=_relative(v["file"], root),
            line=int(v.get("line", 0)) + 1,  # squawk counts lines from 0
            rule=str(v.get("rule_name", "")),
            message=str(v.get("message", "")),
        )
        for v in violations
    ]


def lint_paths(settings: Settings) -> list[LintFinding]:
    """Lint every migration and policy file of the project."""
    files = [f.path for f in discover_migrations(settings.migrations_dir)]
    files += [f.path for f in discover_policies(settings.policies_dir)]
    if not files:
        return []
    root = settings.project_dir
    return _sqlfluff(files, root) + _squawk(files, root)
