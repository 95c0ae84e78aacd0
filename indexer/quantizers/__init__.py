"""Quantizers: packed binary codes of user and item vectors, and the registry of their names.

``make_quantizer(name, bits, seed=..., transform=..., device=...)`` builds the quantizer that
``hashrec index --quantizer NAME`` publishes. Modules:

- :mod:`.base`: the :class:`Quantizer` interface, ``check_bits``, ``random_projection``.
- :mod:`.posthoc`: nothing trained: ``sign`` (seeded random rotation or projection) and ``itq``.
- :mod:`.learned`: a projection trained on the encoder's ranking or the interactions
  (``learned``, ``learned-gste``, and the published ``hashgnn`` and ``hqgnn`` recipes).
- :mod:`.estimators`: the gradient estimators the learned projection trains through (torch).

Every name in ``QUANTIZERS`` passes ``tests/indexer/test_quantizers.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

from hashrec.indexer.quantizers.base import Quantizer, check_bits, random_projection
from hashrec.indexer.quantizers.posthoc import ITQQuantizer, SignQuantizer
from hashrec.retrieval.query_codes import Transform

#: The names ``hashrec index --quantizer`` takes, in the order its help lists them.
QuantizerName = Literal["sign", "itq", "learned", "hashgnn", "hqgnn", "learned-gste"]

#: name -> factory(bits, seed, transform, device); ``transform`` matters to ``sign`` only (the
#: others code MIPS-augmented vectors), ``device`` to the learned ones only (torch).
QuantizerFactory = Callable[[int, int, Transform, str], Quantizer]


def _learned(**recipe: object) -> QuantizerFactory:
    def make(bits: int, seed: int, transform: Transform, device: str) -> Quantizer:
        from hashrec.indexer.quantizers.learned import LearnedQuantizer  # torch is imported in training

        return LearnedQuantizer(bits=bits, seed=seed, device=device, **recipe)  # type: ignore[arg-type]

    return make


QUANTIZERS: dict[str, QuantizerFactory] = {
    "sign": lambda bits, seed, transform, device: SignQuantizer(bits=bits, transform=transform, seed=seed),
    "itq": lambda bits, seed, transform, device: ITQQuantizer(bits=bits, seed=seed),
    # distils the encoder's own top-k into the Hamming ranking
    "learned": _learned(),
    # HashGNN's recipe: the interactions as positives, stochastic guidance, BPR + 0.1 BCE
    "hashgnn": _learned(estimator="hashgnn", positives="train", bce_weight=0.1, name="hashgnn"),
    # HQ-GNN's 1-bit generalized straight-through estimator on the interactions' BPR loss
    "hqgnn": _learned(estimator="gste", positives="train", name="hqgnn"),
    # the distillation trained through the GSTE
    "learned-gste": _learned(estimator="gste", name="learned-gste"),
}
assert tuple(QUANTIZERS) == get_args(QuantizerName), "QuantizerName and QUANTIZERS must agree"


def make_quantizer(
    name: str, bits: int, seed: int = 0, transform: Transform = "mips", device: str = "cpu"
) -> Quantizer:
    """The quantizer called ``name`` (see ``QUANTIZERS``); unknown names and bad bits raise ValueError."""
    if name not in QUANTIZERS:
        raise ValueError(f"unknown quantizer {name!r}; choose one of {', '.join(QUANTIZERS)}")
    return QUANTIZERS[name](bits, seed, transform, device)


__all__ = [
    "QUANTIZERS",
    "ITQQuantizer",
    "Quantizer",
    "QuantizerName",
    "SignQuantizer",
    "check_bits",
    "make_quantizer",
    "random_projection",
]
