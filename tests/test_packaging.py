"""Packaging: every package directory ships (setuptools lists them explicitly because the
CLI lives in ``cli/`` but installs as ``pysync_cli``)."""

from __future__ import annotations

import tomllib

from tests.helpers import PROJECT_ROOT


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(PROJECT_ROOT).parts)
        for init in (PROJECT_ROOT / "pysync").rglob("__init__.py")
    } | {"pysync_cli"}
    assert on_disk == listed
    assert config["package-dir"] == {"pysync": "pysync", "pysync_cli": "cli"}


def test_console_script_points_at_the_cli() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"pysync": "pysync_cli.main:run"}
