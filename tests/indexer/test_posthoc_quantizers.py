"""Sign codes: layout, determinism, and why the MIPS transform is the default."""

from __future__ import annotations

import numpy as np
import pytest
from hashrec.indexer.quantizers import ITQQuantizer, SignQuantizer
from hashrec.retrieval.query_codes import mips_augment

from tests.conftest import planted_arrays


@pytest.mark.parametrize("bits", [8, 64, 128, 256])
def test_codes_are_uint8_of_bits_over_8_bytes(bits):
    rng = np.random.default_rng(0)
    users, items = rng.standard_normal((10, 32)), rng.standard_normal((20, 32))
    user_codes, item_codes = SignQuantizer(bits).encode(users, items)
    assert user_codes.dtype == np.uint8 and user_codes.shape == (10, bits // 8)
    assert item_codes.shape == (20, bits // 8)


def test_same_seed_same_codes_other_seed_other_codes():
    rng = np.random.default_rng(0)
    users, items = rng.standard_normal((10, 16)), rng.standard_normal((30, 16))
    a = SignQuantizer(64, seed=1).encode(users, items)
    b = SignQuantizer(64, seed=1).encode(users, items)
    c = SignQuantizer(64, seed=2).encode(users, items)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


def test_bad_bits_and_transform_are_refused():
    with pytest.raises(ValueError, match="multiple of 8"):
        SignQuantizer(12)
    with pytest.raises(ValueError, match="transform"):
        SignQuantizer(64, transform="pca")


def test_mips_augmentation_preserves_inner_product_order():
    rng = np.random.default_rng(3)
    users, items = rng.standard_normal((5, 8)), rng.standard_normal((50, 8)) * rng.uniform(0.5, 2, (50, 1))
    aug_users, aug_items = mips_augment(users, items)
    assert np.allclose(np.linalg.norm(aug_items, axis=1), 1.0, atol=1e-5)
    for u in range(5):
        assert np.array_equal(np.argsort(-(users[u] @ items.T)), np.argsort(-(aug_users[u] @ aug_items.T)))


def test_unpacked_bits_are_the_signs_of_the_projection():
    rng = np.random.default_rng(4)
    users, items = rng.standard_normal((6, 16)), rng.standard_normal((9, 16))
    quantizer = SignQuantizer(32, transform="rotation")
    user_codes, _ = quantizer.encode(users, items)
    assert np.array_equal(np.unpackbits(user_codes, axis=1).astype(bool), users @ quantizer.projection > 0)


def test_planted_codes_put_true_neighbours_near():
    arrays = planted_arrays(bits=128)
    user_bits = np.unpackbits(arrays["user_codes"], axis=1)
    item_bits = np.unpackbits(arrays["item_codes"], axis=1)
    hamming = (user_bits[:, None, :] != item_bits[None, :, :]).sum(-1)
    scores = arrays["user_embeddings"] @ arrays["item_embeddings"].T
    best = np.argmax(scores, axis=1)
    # The exact best item sits in the nearer half by Hamming distance for nearly every user.
    rank_of_best = (hamming < hamming[np.arange(len(best)), best][:, None]).sum(1)
    assert np.mean(rank_of_best < hamming.shape[1] // 2) > 0.95


@pytest.mark.parametrize("bits", [16, 64])
def test_itq_codes_are_the_signs_of_its_projection_and_reproducible(bits):
    rng = np.random.default_rng(5)
    users, items = rng.standard_normal((20, 32)), rng.standard_normal((300, 32))
    quantizer = ITQQuantizer(bits)
    user_codes, item_codes = quantizer.encode(users, items)
    aug_users, _ = mips_augment(users, items)
    assert item_codes.shape == (300, bits // 8) and item_codes.dtype == np.uint8
    assert np.array_equal(
        np.unpackbits(user_codes, axis=1).astype(bool), aug_users @ quantizer.projection > 0
    )
    again = ITQQuantizer(bits).encode(users, items)
    assert np.array_equal(item_codes, again[1])


def test_itq_rotation_lowers_the_quantization_error_of_a_random_rotation():
    rng = np.random.default_rng(6)
    # anisotropic items: a few strong directions, as real embeddings have
    items = rng.standard_normal((2000, 16)) * np.geomspace(4, 0.2, 16)
    users = rng.standard_normal((10, 16))
    _, aug_items = mips_augment(users, items)

    def error(projection):
        projected = aug_items @ projection
        return float(np.square(np.where(projected >= 0, 1.0, -1.0) - projected).sum())

    quantizer = ITQQuantizer(16)
    quantizer.encode(users, items)
    _, _, vt = np.linalg.svd(aug_items.astype(np.float64), full_matrices=False)
    pca = vt[:16].T
    scale = np.linalg.norm(aug_items @ quantizer.projection) / np.linalg.norm(aug_items @ pca)
    assert error(quantizer.projection) < error(pca * scale)
