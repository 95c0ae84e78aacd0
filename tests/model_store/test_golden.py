"""The committed golden artifact (tests/fixtures/golden) still loads and answers the same.

A change to the format, the loader or the search that alters what an existing store means fails
here. If the change is intended: bump FORMAT_VERSION, document it in model_store/FORMAT.md, keep a
reader for the old version, and re-run ``python tests/fixtures/make_golden.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hashrec.model_store import FORMAT_VERSION, ModelStore
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.schema import ITEM_INDEX_FILE, RECOMMENDER_ARRAYS, check_recommender
from hashrec.retrieval.search import served_searcher, two_stage_searcher

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
EXPECTED = json.loads((GOLDEN / "expected_top5.json").read_text())


@pytest.fixture
def golden(tmp_path: Path) -> ModelStore:
    shutil.copytree(GOLDEN / "store", tmp_path / "store")
    return ModelStore(tmp_path / "store")


def test_golden_store_is_small() -> None:
    assert sum(p.stat().st_size for p in GOLDEN.rglob("*") if p.is_file()) < 100_000


def test_today_loader_opens_and_verifies_the_golden_version(golden: ModelStore) -> None:
    assert golden.current() == EXPECTED["version"]
    assert [m.version for m in golden.list_versions()] == [EXPECTED["version"]]
    artifact = golden.open()
    manifest = artifact.manifest
    assert manifest.format_version == 1 <= FORMAT_VERSION
    assert manifest.bits == 64
    expected_files = {f"{name}.npy" for name in RECOMMENDER_ARRAYS} | {"code_projection.npy", ITEM_INDEX_FILE}
    assert set(manifest.files) == expected_files
    arrays = check_recommender(artifact)
    assert arrays["user_codes"].shape == (12, 8) and arrays["item_codes"].shape == (40, 8)
    assert arrays["user_ids"].dtype.kind == "U" and arrays["seen_indptr"].dtype == np.int64
    assert [e.action for e in golden.history()] == ["publish"]


def test_golden_version_serves_the_expected_top5(golden: ModelStore) -> None:
    model = ServingModel.from_artifact(golden.open())
    row = model.user_index[EXPECTED["user_id"]]
    result = two_stage_searcher(model, candidates=EXPECTED["candidates"]).search_users(
        np.array([row]), EXPECTED["k"]
    )
    assert model.item_labels(result.items[0]) == EXPECTED["items"]
    np.testing.assert_allclose(result.scores[0], EXPECTED["scores"], atol=1e-4)


def test_golden_store_is_verified_by_the_cli(golden: ModelStore) -> None:
    from typer.testing import CliRunner

    from hashrec.cli import app

    result = CliRunner().invoke(app, ["store", "verify", "--store", str(golden.root)])
    assert result.exit_code == 0, result.output
    assert f"ok      {EXPECTED['version']}" in result.stdout


# Format 2, the walk layout (new in format 2): its own golden store.
GOLDEN_WALK = GOLDEN.with_name("golden-walk")
EXPECTED_WALK = json.loads((GOLDEN_WALK / "expected_top5.json").read_text())
WALK_FILES = {
    "user_ids.npy",
    "item_ids.npy",
    "item_codes.npy",
    "seen_indptr.npy",
    "seen_indices.npy",
    "item_popularity.npy",
    "item_users_indptr.npy",
    "item_users_indices.npy",
    "query_weights.npy",
    "query_scale.npy",
    ITEM_INDEX_FILE,
}


@pytest.fixture
def golden_walk(tmp_path: Path) -> ModelStore:
    shutil.copytree(GOLDEN_WALK / "store", tmp_path / "store")
    return ModelStore(tmp_path / "store")


def test_walk_golden_is_format_2_without_vectors(golden_walk: ModelStore) -> None:
    artifact = golden_walk.open()
    assert artifact.manifest.format_version == 2 == FORMAT_VERSION
    assert artifact.manifest.config["layout"] == "walk"
    assert set(artifact.manifest.files) == WALK_FILES  # no user table, no vectors at all
    arrays = check_recommender(artifact)
    assert arrays["user_ids"].dtype.kind == "S" and arrays["item_ids"].dtype.itemsize <= 3  # compact ids
    assert sum(p.stat().st_size for p in GOLDEN_WALK.rglob("*") if p.is_file()) < 100_000


def test_walk_golden_serves_the_expected_top5(golden_walk: ModelStore) -> None:
    model = ServingModel.from_artifact(golden_walk.open())
    row = model.user_index[EXPECTED_WALK["user_id"]]
    result = served_searcher(model, candidates=EXPECTED_WALK["candidates"]).search_users(
        np.array([row]), EXPECTED_WALK["k"]
    )
    np.testing.assert_allclose(result.scores[0], EXPECTED_WALK["scores"], atol=1e-4)
    # items with equal scores (within the tolerance) may come in either order: compare per tie group
    got, want = model.item_labels(result.items[0]), EXPECTED_WALK["items"]
    scores = EXPECTED_WALK["scores"]
    groups = [
        [j for j in range(len(scores)) if abs(scores[j] - scores[i]) < 1e-4] for i in range(len(scores))
    ]
    assert all({got[j] for j in g} == {want[j] for j in g} for g in groups)


def test_walk_golden_is_verified_by_the_cli(golden_walk: ModelStore) -> None:
    from typer.testing import CliRunner

    from hashrec.cli import app

    result = CliRunner().invoke(app, ["store", "verify", "--store", str(golden_walk.root)])
    assert result.exit_code == 0, result.output
