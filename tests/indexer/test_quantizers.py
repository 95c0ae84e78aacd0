"""The Quantizer contract, run over every name in ``indexer.quantizers.QUANTIZERS``.

A quantizer's codes are what the service scans: uint8 rows of bits / 8 bytes, the same for the same
seed, and user codes the service can recompute from the published projection and transform alone
(``retrieval.query_codes.query_codes``), which it reads back from the manifest's
``config.quantizer``. Per-method behaviour lives in test_posthoc_quantizers.py and
test_learned_quantizer.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hashrec.indexer.data import generate_interactions
from hashrec.indexer.encoders.closed_form import ClosedForm, ClosedFormConfig
from hashrec.indexer.pipeline import recommender_arrays
from hashrec.indexer.quantizers import QUANTIZERS, Quantizer, make_quantizer
from hashrec.model_store import ModelStore
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.query_codes import TRANSFORMS, query_codes
from hashrec.retrieval.search import pack_query_codes

from tests.conftest import publish_arrays

#: 16 bits: fewer than the vectors' dimensions (+1); 64: more (ITQ and sign switch to Gaussian).
BITS = (16, 64)


@pytest.fixture(scope="module")
def data():
    return generate_interactions(n_users=80, n_items=120, n_communities=4, mean_items_per_user=10, seed=0)


@pytest.fixture(scope="module")
def vectors(data):
    emb = ClosedForm(ClosedFormConfig(dim=12, power=0.0)).fit(data.train)
    return emb.users, emb.items


@pytest.fixture(scope="module")
def encoded(data, vectors):
    """(quantizer, user codes, item codes) of every (name, bits), encoded once for the module."""
    users, items = vectors
    out = {}
    for name in QUANTIZERS:
        for bits in BITS:
            quantizer = make_quantizer(name, bits, seed=3)
            out[name, bits] = (quantizer, *quantizer.encode(users, items, data.train))
    return out


@pytest.fixture(params=list(QUANTIZERS))
def name(request):
    return request.param


@pytest.mark.parametrize("bits", BITS)
class TestQuantizerContract:
    def test_codes_are_uint8_rows_of_bits_over_8_bytes(self, encoded, vectors, name, bits):
        quantizer, user_codes, item_codes = encoded[name, bits]
        users, items = vectors
        assert isinstance(quantizer, Quantizer) and quantizer.bits == bits
        assert user_codes.dtype == item_codes.dtype == np.uint8
        assert user_codes.shape == (len(users), bits // 8) and item_codes.shape == (len(items), bits // 8)
        assert quantizer.projection.dtype == np.float32 and quantizer.projection.shape[1] == bits

    def test_same_seed_same_codes(self, encoded, data, vectors, name, bits):
        _, user_codes, item_codes = encoded[name, bits]
        again = make_quantizer(name, bits, seed=3).encode(*vectors, data.train)
        assert np.array_equal(again[0], user_codes) and np.array_equal(again[1], item_codes)

    def test_the_service_rule_reproduces_the_user_codes(self, encoded, vectors, name, bits):
        quantizer, user_codes, _ = encoded[name, bits]
        assert quantizer.transform in TRANSFORMS
        again = query_codes(vectors[0], quantizer.projection, quantizer.transform)
        assert np.array_equal(again, user_codes)

    def test_config_round_trips_through_the_manifest_to_the_service(
        self, encoded, data, vectors, name, bits, tmp_path
    ):
        quantizer, user_codes, _ = encoded[name, bits]
        config = quantizer.config()
        assert config["quantizer"] == name and config["bits"] == bits and config["seed"] == 3
        assert config["transform"] == quantizer.transform
        assert json.loads(json.dumps(config)) == config  # JSON as the manifest stores it
        store = ModelStore(tmp_path)
        arrays = recommender_arrays(data, *vectors, quantizer)
        publish_arrays(store, arrays, config={"quantizer": config})
        model = ServingModel.from_artifact(store.open())
        assert store.open().manifest.config["quantizer"] == config
        assert model.code_transform == quantizer.transform
        assert np.array_equal(pack_query_codes(model, vectors[0]), user_codes)


@pytest.mark.parametrize("bits", [0, -8, 12, 100])
def test_bad_bits_are_refused(name, bits):
    with pytest.raises(ValueError, match="multiple of 8"):
        make_quantizer(name, bits)


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="unknown quantizer 'pq'; choose one of sign, itq"):
        make_quantizer("pq", 64)
