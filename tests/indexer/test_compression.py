"""Compressed embedding tables: the id -> row mappings, the shared-row module, build and serve."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hashrec.indexer.compression import (
    METHODS,
    GraphHash,
    RowMap,
    budget_rows,
    compress,
    make_mapper,
    search_resolution,
    split_rows,
)
from hashrec.indexer.compression.graph import fill_private
from hashrec.indexer.compression.hashing import quotient_remainder
from hashrec.indexer.config import CompressionConfig, EncoderConfig, IndexConfig, QuantizerConfig
from hashrec.indexer.data import generate_interactions
from hashrec.indexer.encoders.bpr import BPRModule
from hashrec.indexer.encoders.models import (
    LightGCNModule,
    make_encoder,
    normalized_adjacency,
    to_torch_sparse,
)
from hashrec.indexer.pipeline import build_index
from hashrec.indexer.ranking_metrics import exact_recall
from hashrec.model_store import ModelStore
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.search import two_stage_searcher
from typer.testing import CliRunner

from hashrec.cli import app

COMPRESSED = [m for m in METHODS if m != "full"]
SMALL = {"dim": 16, "epochs": 3, "batch_size": 512, "lr": 0.01, "progress": False}


@pytest.fixture(scope="module")
def data():
    return generate_interactions(n_users=300, n_items=240, n_communities=4, mean_items_per_user=12, seed=2)


@pytest.fixture(scope="module")
def train_with_cold_ids(data):
    """The generated training matrix plus a user and an item without any interaction."""
    train = sp.csr_matrix(data.train)
    return sp.csr_matrix(sp.block_diag([train, sp.csr_matrix((1, 1))]), dtype=np.float32)


def planted_two_communities(seed: int = 0) -> sp.csr_matrix:
    """Users 0-59 x items 0-39 and users 60-119 x items 40-79, dense inside, no edge across."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((120, 80), dtype=np.float32)
    dense[:60, :40] = rng.random((60, 40)) < 0.3
    dense[60:, 40:] = rng.random((60, 40)) < 0.3
    return sp.csr_matrix(dense)


# ---- budgets --------------------------------------------------------------------------------


def test_budget_is_a_fraction_or_a_row_count():
    assert budget_rows(0.25, 1000) == 250
    assert budget_rows(1.0, 1000) == 1000
    assert budget_rows(300, 1000) == 300
    for bad in (0, -0.5, 1001, 12.5, float("nan")):
        with pytest.raises(ValueError):
            budget_rows(bad, 1000)


def test_rows_split_in_proportion_to_ids():
    assert split_rows(100, 300, 100) == (75, 25)
    users, items = split_rows(3, 1000, 1)
    assert users + items == 3 and items >= 1 and users >= 1


# ---- every mapping --------------------------------------------------------------------------


class TestMapperContract:
    """Every table-compression Mapper (``indexer.compression.METHODS``) passes these."""

    @pytest.mark.parametrize("method", COMPRESSED)
    @pytest.mark.parametrize("budget", [0.5, 0.1, 97])
    def test_budget_respected_exactly_and_every_id_mapped(self, train_with_cold_ids, method, budget):
        train = train_with_cold_ids
        n_users, n_items = train.shape
        c = compress(train, method, budget, seed=0)
        assert c.n_rows == budget_rows(budget, n_users + n_items)
        for side, n in ((c.users, n_users), (c.items, n_items)):
            assert side.rows.dtype == np.int64 and side.rows.shape[0] == n
            assert side.rows.max() < side.n_rows and side.rows.min() >= -1
            assert (side.rows.max(axis=1) >= 0).all()  # the cold ids too
        assert c.summary(dim=8)["parameters"] == c.n_rows * 8 < (n_users + n_items) * 8

    @pytest.mark.parametrize("method", METHODS)
    def test_same_seed_same_mapping(self, data, method):
        budget = 1.0 if method == "full" else 0.25
        a = compress(data.train, method, budget, seed=3)
        b = compress(data.train, method, budget, seed=3)
        assert np.array_equal(a.users.rows, b.users.rows) and np.array_equal(a.items.rows, b.items.rows)

    @pytest.mark.parametrize("method", METHODS)
    def test_the_summary_names_the_method_and_is_json(self, data, method):
        budget = 1.0 if method == "full" else 0.25
        summary = make_mapper(method, seed=0).fit(data.train, budget).summary(dim=4)
        assert json.loads(json.dumps(summary))["method"] == method  # TypeError if not JSON
        assert summary["budget"] == budget and summary["rows"] == summary["user_rows"] + summary["item_rows"]


@pytest.mark.parametrize("method", ["hash", "double", "double-frequency", "qr"])
def test_seed_changes_hashed_rows(data, method):
    a = compress(data.train, method, 0.25, seed=0)
    b = compress(data.train, method, 0.25, seed=1)
    assert not np.array_equal(a.items.rows, b.items.rows)


def test_full_table_is_the_identity_and_needs_budget_one(data):
    c = compress(data.train, "full", 1.0)
    assert c.users.is_identity() and c.items.is_identity()
    with pytest.raises(ValueError, match="full table"):
        compress(data.train, "full", 0.5)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown compression"):
        make_mapper("bloom")


def test_frequency_gives_the_most_frequent_ids_private_rows(data):
    c = compress(data.train, "frequency", 0.25)
    popularity = np.asarray(data.train.sum(axis=0)).ravel()
    head = np.argsort(-popularity, kind="stable")[: c.items.n_rows // 2]
    rows = c.items.rows[:, 0]
    counts = np.bincount(rows, minlength=c.items.n_rows)
    assert (counts[rows[head]] == 1).all()


def test_double_frequency_leaves_private_ids_one_slot(data):
    c = compress(data.train, "double-frequency", 0.25)
    private = c.items.rows[:, 1] < 0
    assert private.sum() == c.items.n_rows // 2 and (c.items.rows[~private] >= 0).all()


def test_quotient_remainder_keeps_ids_distinct(data):
    c = compress(data.train, "qr", 0.25)
    assert c.items.distinct_ids() == data.n_items and c.users.distinct_ids() == data.n_users
    nq, nr = quotient_remainder(1000, 80)
    assert nq + nr == 80 and nq * nr >= 1000
    nq, nr = quotient_remainder(1000, 20)  # too few rows: quotients wrap, the sum still holds
    assert nq + nr == 20


# ---- GraphHash ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["graphhash", "double-graphhash", "graphhash-plus"])
def test_graphhash_separates_a_planted_two_community_graph(method):
    train = planted_two_communities()
    c = compress(train, method, 0.1, seed=0)
    cluster_slot = 0
    for side, half in ((c.users, 60), (c.items, 40)):
        rows = side.rows[:, cluster_slot]
        if method == "graphhash-plus":  # frequent ids are private: look at the shared ones only
            shared = np.bincount(rows, minlength=side.n_rows)[rows] > 1
            first, second = rows[:half][shared[:half]], rows[half:][shared[half:]]
        else:
            first, second = rows[:half], rows[half:]
        assert len(first) and len(second)
        assert not set(first.tolist()) & set(second.tolist())


def test_graphhash_with_two_rows_per_side_finds_exactly_the_two_communities():
    c = compress(planted_two_communities(), "graphhash", 4, seed=0)
    assert (c.users.n_rows, c.items.n_rows) == (2, 2)
    assert len(set(c.users.rows[:60, 0].tolist())) == 1 and len(set(c.items.rows[40:, 0].tolist())) == 1
    assert c.users.rows[0, 0] != c.users.rows[60, 0] and c.items.rows[0, 0] != c.items.rows[40, 0]


def test_graphhash_separate_resolutions_meet_each_side_budget(data):
    c = GraphHash(seed=0, separate=True).fit(data.train, 0.2)
    users, items = split_rows(budget_rows(0.2, data.n_users + data.n_items), data.n_users, data.n_items)
    assert (c.users.n_rows, c.items.n_rows) == (users, items)
    assert len(c.info["resolutions"]) == 2


def test_graphhash_views_sum_rows_of_several_clusterings(data):
    c = GraphHash(seed=0, separate=True, views=2, private=0.1).fit(data.train, 0.25)
    assert c.n_rows == budget_rows(0.25, data.n_users + data.n_items)
    assert c.items.slots == 2 and len(c.info["clusters"]) == 4
    shared = c.items.rows[:, 1] >= 0
    assert c.items.distinct_ids() > len(np.unique(c.items.rows[shared, 0]))
    with pytest.raises(ValueError, match="separate"):
        GraphHash(views=2)


def test_resolution_search_lands_just_under_the_target():
    calls = []

    def count(r: float) -> int:
        calls.append(r)
        return int(37 * r**0.8)

    r, c, runs = search_resolution(count, 5000)
    assert 0.99 * 5000 <= c <= 5000 and count(r) == c and runs <= 14


def test_fill_private_uses_spare_rows_for_frequent_ids():
    labels = np.array([0, 0, 0, 1, 1, -1])
    degree = np.array([5, 1, 9, 2, 3, 0])
    rows = fill_private(labels, 4, degree, seed=0)
    assert rows.max() == 3 and set(rows.tolist()) == {0, 1, 2, 3}
    assert np.sum(rows == rows[2]) == 1  # the most frequent id got its own row


# ---- the shared-row module ------------------------------------------------------------------


def test_module_sums_the_rows_of_each_id_and_regularizes_those_rows():
    torch.manual_seed(0)
    rows = np.array([[0, 2], [1, -1], [2, 2]])
    module = BPRModule(3, 2, 4, user_rows=rows, item_rows=np.array([1, 0]), user_table_rows=5)
    assert module.user0.shape == (5, 4) and module.item0.shape == (2, 4)
    table = module.user0.detach()
    expected = torch.stack([table[0] + table[2], table[1], 2 * table[2]])
    users, items = module.final()
    assert torch.allclose(users, expected) and torch.allclose(items, module.item0.detach()[[1, 0]])
    u, p, n = torch.tensor([0, 1]), torch.tensor([0]), torch.tensor([1])
    l2 = table[[0, 2, 1]].square().sum() + module.item0.detach()[[1, 0]].square().sum()
    assert torch.allclose(module.l2(u, p, n), l2)
    eu, ep, _ = module.batch(u, p, n)
    assert torch.allclose(eu, expected[:2]) and torch.allclose(ep, items[:1])


def test_module_without_rows_keeps_one_row_per_id():
    module = BPRModule(3, 2, 4)
    assert module.user_rows is None and module.final()[0] is module.user0
    assert set(module.state_dict()) == {"user0", "item0"}


def test_lightgcn_propagates_the_composed_layer0():
    r = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 1]], dtype=np.float32))
    adjacency = to_torch_sparse(normalized_adjacency(r))
    module = LightGCNModule(2, 3, 4, 1, adjacency, user_rows=np.array([0, 0]), item_rows=np.array([0, 1, 1]))
    users, items = module.final()
    layer0 = torch.cat(module.layer0())
    expected = (layer0 + torch.from_numpy(normalized_adjacency(r).toarray()) @ layer0) / 2
    assert torch.allclose(torch.cat([users, items]), expected, atol=1e-6)
    assert module.table_parameters() == 3 * 4


@pytest.mark.parametrize("encoder_name", ["mf", "lightgcn"])
def test_encoders_train_on_compressed_tables(data, encoder_name):
    encoder = make_encoder(encoder_name, **SMALL, compression="graphhash", budget=0.25)
    emb = encoder.fit(data.train)
    assert emb.users.shape == (data.n_users, 16) and emb.items.shape == (data.n_items, 16)
    assert encoder.table["method"] == "graphhash" and encoder.table["rows"] == budget_rows(
        0.25, data.n_users + data.n_items
    )
    assert encoder.table["parameters"] == encoder.table["rows"] * 16
    users = np.flatnonzero(np.diff(data.test.indptr) > 0)
    assert exact_recall(emb.users, emb.items, data.train, data.test, users) > 0


def test_compressed_training_is_reproducible(data):
    a = make_encoder("mf", **SMALL, compression="double", budget=0.3).fit(data.train)
    b = make_encoder("mf", **SMALL, compression="double", budget=0.3).fit(data.train)
    assert np.array_equal(a.items, b.items) and np.array_equal(a.users, b.users)


def test_graphhash_beats_the_hashing_trick_at_a_small_budget(data):
    cfg = {**SMALL, "epochs": 15}
    users = np.flatnonzero(np.diff(data.test.indptr) > 0)

    def recall(method: str) -> float:
        emb = make_encoder("mf", **cfg, compression=method, budget=0.1).fit(data.train)
        return exact_recall(emb.users, emb.items, data.train, data.test, users)

    assert recall("graphhash") > recall("hash")


# ---- build, publish, reload, serve ----------------------------------------------------------


def test_compressed_model_publishes_reloads_and_serves(data, tmp_path):
    cfg = IndexConfig(
        encoder=EncoderConfig(name="mf", dim=16, epochs=3, batch_size=512, lr=0.01),
        compression=CompressionConfig(method="graphhash", budget=0.25),
        quantizer=QuantizerConfig(bits=64),
        progress=False,
    )
    result = build_index(data, ModelStore(tmp_path), cfg)
    artifact = ModelStore(tmp_path).open()
    assert artifact.version == result["version"]
    config = artifact.manifest.config
    assert config["compression"] == "graphhash" and config["budget"] == 0.25
    table = config["table"]
    assert table["method"] == "graphhash" and table["parameters"] < table["full_parameters"]
    model = ServingModel.from_artifact(artifact)
    assert model.n_users == data.n_users and model.n_items == data.n_items
    found = two_stage_searcher(model).search_users(np.arange(5), 10)
    assert found.items.shape == (5, 10) and (found.items >= 0).all()


def test_cli_index_with_compression(tmp_path):
    runner = CliRunner()
    csv = tmp_path / "data.csv"
    assert (
        runner.invoke(app, ["generate", "--out", str(csv), "--users", "150", "--items", "100"]).exit_code == 0
    )
    common = ["index", "--data", str(csv), "--store", str(tmp_path / "s"), "--quiet", "--encoder", "mf"]
    common += ["--epochs", "2", "--dim", "8", "--bits", "64", "--batch-size", "512"]
    result = runner.invoke(app, [*common, "--compression", "hash", "--budget", "0.25"])
    assert result.exit_code == 0, result.output
    assert "version" in json.loads(result.stdout.strip().splitlines()[-1])
    manifest = ModelStore(tmp_path / "s").open().manifest
    assert manifest.config["table"]["rows"] == budget_rows(0.25, 250)
    bad = runner.invoke(app, [*common, "--compression", "bloom"])
    assert bad.exit_code == 2 and "--compression" in bad.output
    bad = runner.invoke(app, [*common, "--compression", "hash", "--budget", "1e6"])
    assert bad.exit_code == 2 and "--budget" in bad.output


def test_rowmap_validates_its_rows():
    with pytest.raises(ValueError):
        RowMap(np.array([0, 3]), 3)
    with pytest.raises(ValueError):
        RowMap(np.array([[0, 1], [-1, -1]]), 3)
