"""Lint and types as part of the suite: ruff (check and format) on the repository, mypy on the
packages and the benchmark scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["indexer", "service", "model_store", "hashrec", "loadtest", "benchmarks"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("command", [("ruff", "check", "."), ("ruff", "format", "--check", ".")])
def test_ruff(command):
    result = run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy(tmp_path):
    result = run("mypy", "--cache-dir", str(tmp_path / "cache"), *PACKAGES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_readme_names_every_setting_and_no_other():
    import re

    from service.settings import Settings

    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Settings", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `HASHREC_([A-Z0-9_]+)` \|", table, flags=re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}
