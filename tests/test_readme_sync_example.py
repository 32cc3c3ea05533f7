"""The README's "Work offline" example really runs, against a migrated, seeded database."""

from __future__ import annotations

import re

import pytest

from tests.helpers import PROJECT_ROOT


def sync_example() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Work offline", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section should hold exactly one python example"
    return str(blocks[0])


def test_the_sync_example_runs(
    app_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SUPABASE_DB_URL", app_url)
    exec(compile(sync_example(), "README.md", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("['Algebra I'")
    assert printed[1] == "1 write waiting"
    assert printed[2] == "1 0"
