"""python -m hashrec.service.warmup: what the serving image runs at build time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hashrec.service import warmup

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures"


def test_warmup_loads_every_golden_layout_and_fills_the_numba_cache(tmp_path: Path):
    cache = tmp_path / "numba"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    stores = [str(GOLDEN / "golden" / "store"), str(GOLDEN / "golden-walk" / "store")]
    result = subprocess.run(
        [sys.executable, "-m", "hashrec.service.warmup", *stores], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("compiled and loaded") == 2
    assert list(cache.rglob("*.nbi")) and list(cache.rglob("*.nbc"))  # index and compiled code


def test_warmup_refuses_a_store_without_a_version_in_one_line(tmp_path: Path, capsys):
    assert warmup.main([str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("warmup: ") and "\n" not in err


def test_warmup_without_a_store_prints_its_usage(capsys):
    assert warmup.main([]) == 2
    assert "usage" in capsys.readouterr().err
