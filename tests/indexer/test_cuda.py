"""CUDA training gives the CPU's results up to float tolerance (runs only where a GPU is present).

Every random draw is made on the CPU (initial weights, numpy negative sampling, the quantizers'
torch generator), so a CUDA run sees the same numbers as a CPU run with the same seed; what may
differ is float rounding (cuBLAS/cuSPARSE reduction order), hence tolerances, not equality.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hashrec.indexer.data import generate_interactions
from hashrec.indexer.encoders.closed_form import ClosedForm, ClosedFormConfig
from hashrec.indexer.encoders.models import make_encoder
from hashrec.indexer.quantizers.learned import LearnedQuantizer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SMALL = {"dim": 16, "epochs": 3, "batch_size": 256, "lr": 0.01, "progress": False, "eval_every": 5}


@pytest.fixture(scope="module")
def data():
    return generate_interactions(n_users=400, n_items=300, n_communities=6, mean_items_per_user=15, seed=1)


@pytest.mark.parametrize("encoder", ["mf", "lightgcn"])
def test_encoder_on_cuda_matches_cpu(data, encoder):
    cpu = make_encoder(encoder, **SMALL, device="cpu").fit(data.train)
    gpu = make_encoder(encoder, **SMALL, device="cuda").fit(data.train)
    np.testing.assert_allclose(gpu.users, cpu.users, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(gpu.items, cpu.items, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("estimator", ["anneal", "hashgnn", "gste"])
def test_quantizer_on_cuda_matches_cpu(data, estimator):
    emb = ClosedForm(ClosedFormConfig(dim=24, power=0.0)).fit(data.train)
    cpu = LearnedQuantizer(32, epochs=2, estimator=estimator, device="cpu")
    gpu = LearnedQuantizer(32, epochs=2, estimator=estimator, device="cuda")
    on_cpu = cpu.encode(emb.users, emb.items, data.train)
    on_gpu = gpu.encode(emb.users, emb.items, data.train)
    for a, b in zip(on_cpu, on_gpu, strict=True):
        # Codes are signs: a pre-activation within rounding of zero may flip; almost none may.
        bits_a, bits_b = np.unpackbits(a, axis=1), np.unpackbits(b, axis=1)
        assert (bits_a == bits_b).mean() >= 0.999
