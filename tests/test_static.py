"""Lint and types as part of the suite: ruff (check and format) on the repository, mypy on the
packages and the benchmark scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The folders that install as ``hashrec.<name>`` (pyproject.toml's package-dir).
SUBPACKAGES = ["retrieval", "model_store", "indexer", "service", "loadtest"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [("ruff", "check", "."), ("ruff", "format", "--check", ".")])
def test_ruff(command):
    result = run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def namespace_view(root: Path) -> Path:
    """A tree of symlinks laid out as the installed ``hashrec`` package: mypy names modules by
    their path and follows no import hook, so it checks the namespace through this view."""
    package = root / "hashrec"
    package.mkdir(parents=True)
    for module in (ROOT / "hashrec").glob("*.py"):
        (package / module.name).symlink_to(module)
    for name in SUBPACKAGES:
        (package / name).symlink_to(ROOT / name, target_is_directory=True)
    (root / "benchmarks").symlink_to(ROOT / "benchmarks", target_is_directory=True)
    return package


def test_mypy(tmp_path):
    namespace_view(tmp_path / "view")
    config = str(ROOT / "pyproject.toml")
    cache = str(tmp_path / "cache")
    command = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        config,
        "--cache-dir",
        cache,
        "hashrec",
        "benchmarks",
    ]
    result = subprocess.run(command, cwd=tmp_path / "view", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_namespace_view_names_every_package():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "hashrec"}
    assert packages == set(SUBPACKAGES)


def test_the_readme_names_every_setting_and_no_other():
    import re

    from hashrec.service.settings import Settings

    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `HASHREC_([A-Z0-9_]+)` \|", table, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}
