"""The CLI reference in docs/ is generated from --help and must match the CLI as built.

No database needed: these tests only render help text.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_cli_reference.py"
REFERENCE = ROOT / "docs" / "cli-reference.md"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_reference", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_help_text(generator: ModuleType) -> None:
    committed = REFERENCE.read_text(encoding="utf-8") if REFERENCE.is_file() else ""
    assert committed == generator.render_reference(), (
        "docs/cli-reference.md is out of date: run .venv/bin/python scripts/gen_cli_reference.py"
    )


def test_every_command_has_a_heading_in_the_cli_reference(generator: ModuleType) -> None:
    headings = set(re.findall(r"^#+ (.+?)\s*$", REFERENCE.read_text(encoding="utf-8"), re.M))
    paths = generator.command_paths()
    assert "pysync db push" in paths, "the walk should reach sub-commands"
    missing = [path for path in paths if path not in headings]
    assert not missing, (
        f"undocumented commands {missing}: run .venv/bin/python scripts/gen_cli_reference.py"
    )
