"""Packaging: every package directory ships (setuptools lists them explicitly), the CLI is
part of the package (``pysync.cli``), and the declared requirements are the real ones."""

from __future__ import annotations

import tomllib

from tests.helpers import PROJECT_ROOT


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(PROJECT_ROOT).parts)
        for init in (PROJECT_ROOT / "pysync").rglob("__init__.py")
    }
    assert on_disk == listed
    assert "package-dir" not in config  # one tree: the CLI runs from a source checkout too


def test_console_script_points_at_the_cli() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"pysync": "pysync.cli.main:run"}


def _requirement_names(requirements: list[str]) -> set[str]:
    from packaging.requirements import Requirement

    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def test_the_cli_runs_from_a_source_checkout() -> None:
    """``python -m pysync`` with the checkout on the path, no console script needed."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pysync", "--version"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pysync ")


def _imported_top_level_modules() -> set[str]:
    import ast
    import sys

    found: set[str] = set()
    for path in (PROJECT_ROOT / "pysync").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"pysync", "__future__"}


def test_every_directly_imported_distribution_is_declared() -> None:
    """A module the code imports must come from a declared requirement, not from whatever
    supabase-py happens to pull in today (issue 13: httpx, postgrest, storage3...)."""
    from importlib.metadata import packages_distributions

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    required = _requirement_names(project["dependencies"])
    extras = {
        name: _requirement_names(reqs) for name, reqs in project["optional-dependencies"].items()
    }
    #: Imported lazily, only by the feature their extra names.
    optional = {"faker": "seed", "matplotlib": "dev", "sqlcipher3": "sqlcipher"}
    distributions = packages_distributions()
    for module in sorted(_imported_top_level_modules()):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        assert names, f"{module} is imported but no installed distribution provides it"
        if module in optional:
            assert names & extras[optional[module]], f"{module}: not in [{optional[module]}]"
        else:
            assert names & required, f"{module} ({names}) is imported but not a dependency"


def test_the_package_says_it_is_typed() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in config["package-data"]["pysync"]
    assert (PROJECT_ROOT / "pysync" / "py.typed").is_file()


def test_supabase_floor_has_what_the_code_uses() -> None:
    """2.10 lacked supabase_auth, RequestConfig and the retry option."""
    from packaging.requirements import Requirement

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    supabase = next(Requirement(r) for r in project["dependencies"] if r.startswith("supabase>"))
    assert not supabase.specifier.contains("2.33.0") and supabase.specifier.contains("2.34.0")


def test_the_lock_satisfies_every_requirement() -> None:
    """requirements-dev.lock pins the development environment (scripts/lock.sh); a
    requirement changed in pyproject.toml without regenerating it fails here, not halfway
    through a CI install."""
    from packaging.requirements import Requirement

    pinned: dict[str, str] = {}
    for line in (PROJECT_ROOT / "requirements-dev.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[name.lower().replace("_", "-")] = version
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    for text in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in pinned, f"{name} is required but not in requirements-dev.lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"requirements-dev.lock pins {name}=={pinned[name]}, outside {requirement}: "
            "run scripts/lock.sh"
        )
