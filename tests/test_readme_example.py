"""The README's "Use it from Python" example really runs, against a migrated, seeded database."""

from __future__ import annotations

import re

import pytest

from tests.helpers import PROJECT_ROOT


def readme_example() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section should hold exactly one python example"
    return str(blocks[0])


def test_the_example_is_short() -> None:
    lines = [line for line in readme_example().splitlines() if line.strip()]
    assert len(lines) <= 18  # its settings come from Settings.load(), not literals


def test_the_readme_example_runs(
    app_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", app_url)
    exec(compile(readme_example(), "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("Algebra I ['Linear equations', 'What is an equation?'")
    assert "See you on Tuesday!" in printed[1]
    assert printed[2].startswith("refused: a student cannot grade")
