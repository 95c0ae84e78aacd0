"""The index run's typed configuration: each role refuses what it cannot run, naming the option."""

from __future__ import annotations

from typing import get_args

import pytest
from hashrec.indexer.compression import METHODS
from hashrec.indexer.config import (
    CompressionConfig,
    CompressionMethod,
    EncoderConfig,
    IndexConfig,
    QuantizerConfig,
    ServingConfig,
)

#: The manifest's ``config`` keys of format 1, which older readers (``hashrec evaluate``) rely on.
RECORDED_KEYS = {
    "encoder", "dim", "spectral_power", "layers", "epochs", "batch_size", "lr", "reg", "compression",
    "budget", "val_fraction", "eval_every", "patience", "bits", "quantizer", "code_transform",
    "candidates", "binary_index", "rerank_float16", "rerank_int8", "seed", "device", "progress",
}  # fmt: skip


def test_the_compression_names_are_the_registry():
    assert get_args(CompressionMethod) == tuple(METHODS)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: EncoderConfig(name="svd++"), "--encoder must be one of gfcf, lightgcn, mf, walk"),  # type: ignore[arg-type]
        (lambda: EncoderConfig(name="mf", spectral_power=1.0), "--spectral-power applies to --encoder gfcf"),
        (lambda: EncoderConfig(spectral_power=5.0), r"--spectral-power must be in \[0, 4\]"),
        (lambda: EncoderConfig(epochs=0), "--epochs must be >= 1"),
        (lambda: EncoderConfig(lr=-1.0), "--lr must be >= 0"),
        (lambda: EncoderConfig(layers=9), r"--layers must be in \[0, 8\]"),
        (lambda: EncoderConfig(val_fraction=0.7), "--val-fraction"),
        (lambda: CompressionConfig(method="zip"), "--compression must be one of full, hash"),  # type: ignore[arg-type]
        (lambda: CompressionConfig(method="hash", budget=0), "--budget must be a fraction"),
        (lambda: CompressionConfig(method="hash", budget=2.5), "--budget must be a fraction"),
        (lambda: CompressionConfig(budget=0.5), "--compression full keeps every row"),
        (lambda: QuantizerConfig(name="pq"), "--quantizer must be one of sign, itq"),  # type: ignore[arg-type]
        (lambda: QuantizerConfig(bits=12), "--bits must be a positive multiple of 8"),
        (lambda: QuantizerConfig(transform="pca"), "--code-transform must be one of"),  # type: ignore[arg-type]
        (lambda: ServingConfig(binary_index="hnsw"), "--binary-index must be one of auto, flat, ivf"),  # type: ignore[arg-type]
        (lambda: ServingConfig(candidates=0), "--candidates must be >= 1"),
        (lambda: IndexConfig(device="gpu"), "--device must be auto, cpu, cuda or cuda:N"),
        (
            lambda: IndexConfig(compression=CompressionConfig(method="graphhash", budget=0.5)),
            "--compression needs a trained encoder",
        ),
    ],
)
def test_each_role_refuses_a_bad_value_naming_the_option(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_defaults_and_good_values_are_accepted():
    cfg = IndexConfig(
        encoder=EncoderConfig(name="lightgcn", dim=16, layers=0),
        compression=CompressionConfig(method="double-graphhash", budget=300),
        quantizer=QuantizerConfig(name="sign", bits=64, transform="rotation"),
        serving=ServingConfig(binary_index="ivf", candidates=50),
        device="cuda:1",
    )
    assert cfg.compression.compressed and not IndexConfig().compression.compressed


def test_the_record_keeps_the_flat_manifest_layout():
    record = IndexConfig(
        encoder=EncoderConfig(name="mf", dim=8), quantizer=QuantizerConfig(name="itq", bits=32)
    ).record()
    assert set(record) == RECORDED_KEYS
    assert (record["encoder"], record["dim"], record["quantizer"], record["bits"]) == ("mf", 8, "itq", 32)
    assert record["compression"] == "full" and record["code_transform"] == "mips"
