"""Every encoder: learns better than popularity, is reproducible, keeps the graph sparse."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import get_args

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hashrec.indexer.config import EncoderName
from hashrec.indexer.data import generate_interactions
from hashrec.indexer.encoders.base import Encoder
from hashrec.indexer.encoders.bpr import sample_negatives
from hashrec.indexer.encoders.closed_form import ClosedForm, ClosedFormConfig
from hashrec.indexer.encoders.models import (
    MFBPR,
    BPRConfig,
    LightGCN,
    LightGCNConfig,
    _SymmetricSpMM,
    make_encoder,
    normalized_adjacency,
    to_torch_sparse,
)
from hashrec.indexer.ranking_metrics import exact_recall

SMALL = {"dim": 16, "epochs": 25, "batch_size": 256, "lr": 0.01, "progress": False, "eval_every": 5}


@pytest.fixture(scope="module")
def data():
    return generate_interactions(n_users=400, n_items=300, n_communities=6, mean_items_per_user=15, seed=1)


def popularity_recall(data) -> float:
    popularity = np.asarray(data.train.sum(axis=0)).ravel().astype(np.float32)
    users = np.flatnonzero(np.diff(data.test.indptr) > 0)
    user_vec = np.ones((data.n_users, 1), np.float32)
    return exact_recall(user_vec, popularity[:, None], data.train, data.test, users)


#: Every encoder ``hashrec index --encoder`` takes, by name -> factory(**training overrides).
ENCODERS: dict[str, Callable[..., Encoder]] = {
    "mf": lambda **over: make_encoder("mf", **{**SMALL, **over}),
    "lightgcn": lambda **over: make_encoder("lightgcn", **{**SMALL, **over}),
    # training-free: the overrides (epochs) do not apply
    "gfcf": lambda **over: ClosedForm(ClosedFormConfig(dim=16)),
}


def test_the_contract_covers_every_encoder_the_cli_takes():
    # walk has no vectors to check: its own contract is tests/retrieval/test_walk.py
    assert set(ENCODERS) == set(get_args(EncoderName)) - {"walk"}


@pytest.fixture(params=sorted(ENCODERS))
def encoder_name(request):
    return request.param


class TestEncoderContract:
    """Every encoder passes these (the Encoder role of indexer.encoders.base)."""

    def test_beats_popularity(self, data, encoder_name):
        emb = ENCODERS[encoder_name]().fit(data.train)
        users = np.flatnonzero(np.diff(data.test.indptr) > 0)
        recall = exact_recall(emb.users, emb.items, data.train, data.test, users)
        assert recall > 1.2 * popularity_recall(data)

    def test_shapes_and_dtype(self, data, encoder_name):
        emb = ENCODERS[encoder_name](epochs=1).fit(data.train)
        assert emb.users.shape == (data.n_users, 16) and emb.items.shape == (data.n_items, 16)
        assert emb.users.dtype == emb.items.dtype == np.float32

    def test_same_seed_same_embeddings(self, data, encoder_name):
        a = ENCODERS[encoder_name](epochs=2).fit(data.train)
        b = ENCODERS[encoder_name](epochs=2).fit(data.train)
        assert np.array_equal(a.items, b.items) and np.array_equal(a.users, b.users)

    def test_config_is_json_for_the_manifest(self, encoder_name):
        config = ENCODERS[encoder_name]().config()
        assert json.loads(json.dumps(config))["encoder"] == encoder_name  # TypeError if not JSON


@pytest.mark.parametrize("encoder_name", ["mf", "lightgcn"])
def test_early_stopping_records_validation(data, encoder_name):
    encoder = make_encoder(encoder_name, **{**SMALL, "epochs": 10, "eval_every": 2})
    encoder.fit(data.train, validation=data.test)
    assert any("val_recall@20" in record for record in encoder.history)


def test_unknown_encoder_is_refused():
    with pytest.raises(ValueError, match="unknown encoder"):
        make_encoder("svd++")


def test_normalized_adjacency_is_sparse_and_matches_formula():
    r = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 1]], dtype=np.float32))
    adjacency = normalized_adjacency(r)
    assert sp.issparse(adjacency) and adjacency.shape == (5, 5)
    dense = np.zeros((5, 5))
    dense[:2, 2:] = r.toarray()
    dense[2:, :2] = r.toarray().T
    d = dense.sum(1) ** -0.5
    assert np.allclose(adjacency.toarray(), d[:, None] * dense * d[None, :])


def test_symmetric_spmm_gradient_matches_dense():
    r = sp.random(6, 5, density=0.4, random_state=0, format="csr", dtype=np.float32)
    r.data[:] = 1
    adjacency = normalized_adjacency(r)
    x = torch.randn(11, 3, dtype=torch.float32, requires_grad=True)
    out = _SymmetricSpMM.apply(to_torch_sparse(adjacency), x)
    (out * torch.arange(33, dtype=torch.float32).reshape(11, 3)).sum().backward()
    dense = torch.from_numpy(adjacency.toarray())
    x2 = x.detach().clone().requires_grad_(True)
    ((dense @ x2) * torch.arange(33, dtype=torch.float32).reshape(11, 3)).sum().backward()
    assert torch.allclose(out, dense @ x.detach(), atol=1e-6)
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)


def test_negatives_avoid_training_pairs():
    rng = np.random.default_rng(0)
    n_items = 10
    users = np.repeat(np.arange(50), 8)
    train_keys = np.sort(np.unique(users * n_items + rng.integers(0, 5, len(users))))
    negatives = sample_negatives(users, train_keys, n_items, rng, rounds=30)
    assert not np.isin(users * n_items + negatives, train_keys).any()


def test_configs_are_recorded():
    assert LightGCN(LightGCNConfig(layers=2)).config()["layers"] == 2
    assert MFBPR(BPRConfig(dim=8)).config()["encoder"] == "mf"
