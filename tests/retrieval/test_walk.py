"""The walk layout: scorer congruence (per-candidate, all-items, the indexer's sparse products),
searchers (two stages at C = n_items against the exact walk), one code path for users and
visitors, and the loader's refusals of damaged walk arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hashrec.indexer.config import EncoderConfig, IndexConfig, QuantizerConfig
from hashrec.indexer.data import generate_interactions
from hashrec.indexer.pipeline import build_index
from hashrec.indexer.walk import walk_operator, walk_scores, walk_top_k
from hashrec.model_store import CorruptVersion, ModelStore
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.recommender import Recommender
from hashrec.retrieval.schema import check_recommender
from hashrec.retrieval.search import reference_searchers, served_searcher
from hashrec.retrieval.walk import GraphWalk, WalkExponents
from hashrec.retrieval.walk_search import WalkExactSearcher


@pytest.fixture(scope="module")
def walk_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    data = generate_interactions(n_users=400, n_items=300, seed=3)
    store = ModelStore(tmp_path_factory.mktemp("walk") / "store")
    config = IndexConfig(
        encoder=EncoderConfig(name="walk"), quantizer=QuantizerConfig(bits=64), device="cpu", progress=False
    )
    build_index(data, store, config)
    return store


@pytest.fixture(scope="module")
def walk_model(walk_store: ModelStore) -> ServingModel:
    return ServingModel.from_artifact(walk_store.open())


def _train(model: ServingModel):  # type: ignore[no-untyped-def]
    import scipy.sparse as sp

    ones = np.ones(len(model.seen_indices), np.float32)
    return sp.csr_matrix((ones, model.seen_indices, model.seen_indptr), shape=(model.n_users, model.n_items))


def test_walk_index_publishes_the_walk_layout_without_vectors(walk_store: ModelStore) -> None:
    artifact = walk_store.open()
    assert artifact.manifest.config["layout"] == "walk"
    assert not any("embeddings" in name or name.startswith("user_codes") for name in artifact.manifest.files)
    metrics = artifact.manifest.metrics
    # the rerank improves on Hamming alone and keeps most of the exact walk's quality
    assert metrics["hamming"]["recall@20"] < metrics["served"]["recall@20"]
    assert metrics["served"]["recall@20"] >= 0.9 * metrics["full"]["recall@20"]


def test_walk_scores_agree_three_ways(walk_model: ServingModel) -> None:
    walk = walk_model.walk
    assert walk is not None
    train = _train(walk_model)
    left, right = walk_operator(train, walk.exponents)
    users = np.arange(0, walk_model.n_users, 37)
    sparse = walk_scores(train, users, left, right)
    rng = np.random.default_rng(0)
    for n, user in enumerate(users):
        history = walk_model.seen(int(user))
        every = walk.score_all(history)
        np.testing.assert_allclose(every, sparse[n], rtol=1e-5, atol=1e-6)
        items = rng.choice(walk_model.n_items, 30, replace=False)
        np.testing.assert_allclose(walk.score(history, items), every[items], rtol=1e-5, atol=1e-6)


def test_the_kernel_scores_what_numpy_scores(walk_model: ServingModel) -> None:
    walk = walk_model.walk
    assert walk is not None
    plain = GraphWalk(
        (walk.user_indptr, walk.user_indices),
        (walk.item_indptr, walk.item_indices),
        walk.query_weights,
        walk.query_scale,
        walk.exponents,
        kernel=False,
    )
    rng = np.random.default_rng(1)
    for row in range(0, walk_model.n_users, 29):
        history = walk_model.seen(row)
        items = rng.choice(walk_model.n_items, 50, replace=False)
        np.testing.assert_allclose(
            walk.score(history, items), plain.score(history, items), rtol=1e-5, atol=1e-7
        )
    assert walk.score(np.empty(0, np.int64), np.arange(3)).tolist() == [0.0, 0.0, 0.0]


def test_two_stage_over_every_item_is_the_exact_walk(walk_model: ServingModel) -> None:
    users = np.arange(walk_model.n_users)[::7]
    n = walk_model.n_items
    served = served_searcher(walk_model, candidates=n, max_candidates=n).search_users(users, 10)
    exact = WalkExactSearcher(walk_model).search_users(users, 10)
    np.testing.assert_allclose(served.scores, exact.scores, rtol=1e-5, atol=1e-6)  # ties may swap items
    assert (served.items == exact.items).mean() > 0.95


def test_indexer_teacher_is_the_exact_walk_top_k(walk_model: ServingModel) -> None:
    walk = walk_model.walk
    assert walk is not None
    teacher = walk_top_k(_train(walk_model), walk.exponents, 10)
    exact = WalkExactSearcher(walk_model).search_users(np.arange(walk_model.n_users), 10)
    assert (teacher == exact.items).mean() > 0.95  # equal up to ties


def test_a_visitor_with_a_users_history_gets_that_users_answer(walk_model: ServingModel) -> None:
    recommender = Recommender(walk_model, served_searcher(walk_model))
    for row in range(0, walk_model.n_users, 23):
        history = walk_model.seen(row)
        assert recommender.for_history(history, 20) == recommender.for_user(row, 20)
        assert (
            recommender.for_history(history[::-1].copy(), 20) == recommender.for_users(np.array([row]), 20)[0]
        )


def test_served_metrics_come_from_the_served_searchers(
    walk_store: ModelStore, walk_model: ServingModel
) -> None:
    from hashrec.indexer.evaluation import evaluate_model

    searchers = reference_searchers(walk_model, 200)
    assert {type(s).__name__ for s in searchers.values()} == {
        "WalkExactSearcher",
        "WalkHammingSearcher",
        "WalkTwoStageSearcher",
    }
    data = generate_interactions(n_users=400, n_items=300, seed=3)
    again = evaluate_model(walk_model, data.test, candidates=200)
    assert again["served"] == walk_store.open().manifest.metrics["served"]


def test_exponents_are_checked() -> None:
    with pytest.raises(ValueError, match="walk exponent user"):
        WalkExponents(user=-1.0)
    with pytest.raises(ValueError, match="unknown keys"):
        WalkExponents.from_record({"user": 0.5, "extra": 1})


def test_empty_history_scores_zero_and_codes_zero(walk_model: ServingModel) -> None:
    walk = walk_model.walk
    assert isinstance(walk, GraphWalk)
    empty = np.empty(0, np.int64)
    assert not walk.score(empty, np.arange(5)).any()
    assert not walk.query_code(empty).any()


def _damaged(store: ModelStore, tmp_path: Path, edit) -> ModelStore:  # type: ignore[no-untyped-def]
    """A copy of the store's version with arrays or the manifest's config edited, re-checksummed."""
    from hashrec.model_store.store import Artifact

    artifact = store.open()
    arrays = {
        name.removesuffix(".npy"): np.array(artifact.array(name.removesuffix(".npy")))
        for name in artifact.manifest.files
        if name.endswith(".npy")
    }
    config = json.loads(json.dumps(artifact.manifest.config))
    edit(arrays, config)
    copy = ModelStore(tmp_path / "damaged")
    index = artifact.file_path("item_codes.faissindex").read_bytes()
    copy.publish(arrays, {"item_codes.faissindex": index}, bits=artifact.manifest.bits, config=config)
    assert isinstance(copy.open(), Artifact)
    return copy


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a, c: a.update(query_weights=a["query_weights"][:, :8]), "query_weights has shape"),
        (lambda a, c: a.update(query_scale=a["query_scale"][:-1]), "query_scale has shape"),
        (lambda a, c: a["query_scale"].__setitem__(0, np.nan), "query_scale holds NaN"),
        (lambda a, c: a["item_users_indices"].__setitem__(0, 10**6), "item_users_indices has entries"),
        (lambda a, c: a["seen_indices"].__setitem__(0, -1), "seen_indices has entries"),
        (lambda a, c: c.pop("walk"), "config.walk is missing"),
        (lambda a, c: c["walk"].update(user="high"), "config.walk"),
        (lambda a, c: c.update(layout="graph"), "config.layout 'graph'"),
        (
            lambda a, c: a.update(
                item_users_indices=a["item_users_indices"][:-1],
                item_users_indptr=np.minimum(a["item_users_indptr"], len(a["item_users_indices"]) - 1),
            ),
            "item_users and seen",
        ),
    ],
)
def test_damaged_walk_versions_are_refused_by_name(walk_store, tmp_path, edit, message) -> None:  # type: ignore[no-untyped-def]
    copy = _damaged(walk_store, tmp_path, edit)
    with pytest.raises(CorruptVersion, match=message):
        check_recommender(copy.open())


def test_a_gfcf_visitor_with_a_users_history_gets_that_users_answer(tmp_path: Path) -> None:
    """The default encoder's users are sum_j item_j / d_j, the visitor rule there: one answer."""
    data = generate_interactions(n_users=300, n_items=200, seed=5)
    store = ModelStore(tmp_path / "store")
    build_index(data, store, IndexConfig(quantizer=QuantizerConfig(bits=64), device="cpu", progress=False))
    model = ServingModel.from_artifact(store.open())
    assert model.layout == "embedding" and model.history_exponent == 1.0
    recommender = Recommender(model, served_searcher(model))
    same = 0
    rows = range(0, model.n_users, 7)
    for row in rows:
        visitor = recommender.for_history(model.seen(row), 20)
        user = recommender.for_user(row, 20)
        same += [i for i, _ in visitor] == [i for i, _ in user]
        np.testing.assert_allclose([s for _, s in visitor][:5], [s for _, s in user][:5], rtol=1e-3)
    assert same >= 0.95 * len(rows)  # float32 sums in another order may flip a tie
