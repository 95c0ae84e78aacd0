"""Typed configuration of an index run: one frozen dataclass per role, composed into IndexConfig.

Each role's config checks its own values once, when it is made: a ValueError naming the option
as ``hashrec index`` spells it, which the CLI prints as is (it only maps its options onto these).
``IndexConfig.record()`` is what the manifest keeps as ``config``: the flat layout of format 1,
so older readers keep working.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

from hashrec.indexer.quantizers import QUANTIZERS, QuantizerName
from hashrec.retrieval.query_codes import TRANSFORMS, Transform

EncoderName = Literal["gfcf", "lightgcn", "mf", "walk"]
CompressionMethod = Literal[
    "full",
    "hash",
    "double",
    "frequency",
    "double-frequency",
    "qr",
    "graphhash",
    "double-graphhash",
    "graphhash-plus",
    "learned",
]
BinaryIndexKind = Literal["auto", "flat", "ivf"]
TRAINED_ENCODERS: tuple[EncoderName, ...] = ("lightgcn", "mf")


def _choose(option: str, value: object, allowed: tuple[object, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{option} must be one of {', '.join(map(str, allowed))}, got {value!r}")


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoder learns the user and item vectors, and its training options.

    ``walk`` (compact) serves the graph walk of ``retrieval.walk`` with no vectors; its ``dim``
    is the rank of the spectral features its codes are learned from (0: up to 1,536).
    ``dim`` 0 means chosen on a holdout (gfcf) or 64 (trained encoders); ``batch_size`` 0 about 50
    steps per epoch; ``lr`` 0 the encoder's own default (1e-2 LightGCN, 5e-3 MF).
    ``spectral_power`` None: gfcf chooses it on a holdout. ``val_fraction`` 0 disables early stopping.
    """

    # gfcf: the best measured quality within the CPU budget (benchmarks/quality.md); walk is 30x
    # smaller at 99.7% of its Recall@20 and 97.8% of its NDCG@20 on Gowalla, far behind on
    # MovieLens-1M (benchmarks/compact.md)
    name: EncoderName = "gfcf"
    dim: int = 0
    spectral_power: float | None = None
    layers: int = 3
    epochs: int = 30
    batch_size: int = 0
    lr: float = 0.0
    reg: float = 1e-4
    val_fraction: float = 0.05
    eval_every: int = 5
    patience: int = 3

    def __post_init__(self) -> None:
        _choose("--encoder", self.name, get_args(EncoderName))
        if self.spectral_power is not None:
            if self.name != "gfcf":
                raise ValueError(f"--spectral-power applies to --encoder gfcf only, not {self.name!r}")
            if not 0.0 <= self.spectral_power <= 4.0:
                raise ValueError(f"--spectral-power must be in [0, 4], got {self.spectral_power}")
        at_least: dict[str, tuple[float, int]] = {
            "--dim": (self.dim, 0),
            "--epochs": (self.epochs, 1),
            "--batch-size": (self.batch_size, 0),
            "--lr": (self.lr, 0),
            "--reg": (self.reg, 0),
            "eval_every": (self.eval_every, 1),
            "patience": (self.patience, 1),
        }
        for option, (value, low) in at_least.items():
            if value < low:
                raise ValueError(f"{option} must be >= {low}, got {value}")
        if not 0 <= self.layers <= 8:
            raise ValueError(f"--layers must be in [0, 8], got {self.layers}")
        if not 0.0 <= self.val_fraction <= 0.5:
            raise ValueError(f"--val-fraction must be in [0, 0.5], got {self.val_fraction}")


@dataclass(frozen=True)
class CompressionConfig:
    """How ids share rows of the embedding tables (``indexer.compression``) and how many rows.

    ``budget`` <= 1 is a fraction of n_users + n_items, above 1 a whole row count.
    """

    method: CompressionMethod = "full"
    budget: float = 1.0

    def __post_init__(self) -> None:
        _choose("--compression", self.method, get_args(CompressionMethod))
        if self.budget <= 0 or (self.budget > 1 and self.budget != int(self.budget)):
            raise ValueError(f"--budget must be a fraction in (0, 1] or a whole row count, got {self.budget}")
        if self.method == "full" and self.budget != 1.0:
            raise ValueError("--compression full keeps every row; give a method to use --budget")

    @property
    def compressed(self) -> bool:
        """True where ids share rows (any method but ``full``)."""
        return self.method != "full"


@dataclass(frozen=True)
class QuantizerConfig:
    """Which quantizer makes the binary codes (``indexer.quantizers``), their length and the
    query transform (``transform`` matters to ``sign`` only)."""

    name: QuantizerName = "learned"
    bits: int = 128
    transform: Transform = "mips"

    def __post_init__(self) -> None:
        _choose("--quantizer", self.name, tuple(QUANTIZERS))
        _choose("--code-transform", self.transform, TRANSFORMS)
        if self.bits % 8 or self.bits <= 0:
            raise ValueError(f"--bits must be a positive multiple of 8, got {self.bits}")


@dataclass(frozen=True)
class ServingConfig:
    """What is published beside the codes for the service: the binary index kind (``auto``: IVF
    from ``retrieval.model.IVF_MIN_ITEMS`` items on), the C the served ranking is evaluated and
    IVF-tuned with, and optional float16 / int8 rerank vectors."""

    binary_index: BinaryIndexKind = "auto"
    candidates: int = 200
    rerank_float16: bool = False
    rerank_int8: bool = False

    def __post_init__(self) -> None:
        _choose("--binary-index", self.binary_index, get_args(BinaryIndexKind))
        if self.candidates < 1:
            raise ValueError(f"--candidates must be >= 1, got {self.candidates}")


@dataclass(frozen=True)
class IndexConfig:
    """Everything ``hashrec index`` can set: the roles' configs, plus the run's seed and device.

    ``device`` is ``auto`` (CUDA when torch sees one), ``cpu``, ``cuda`` or ``cuda:N``.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.compression.compressed and self.encoder.name not in TRAINED_ENCODERS:
            raise ValueError(
                f"--compression needs a trained encoder ({' or '.join(TRAINED_ENCODERS)}), "
                f"not {self.encoder.name!r}"
            )
        if self.encoder.name == "walk" and (self.serving.rerank_float16 or self.serving.rerank_int8):
            raise ValueError("--rerank-float16 / --rerank-int8 need vectors; --encoder walk has none")

    def record(self) -> dict[str, object]:
        """The manifest's ``config``: the flat option names ``hashrec index`` takes."""
        e, c, q, s = (asdict(part) for part in (self.encoder, self.compression, self.quantizer, self.serving))
        return {
            "encoder": e.pop("name"),
            **e,
            "compression": c["method"],
            "budget": c["budget"],
            "bits": q["bits"],
            "quantizer": q["name"],
            "code_transform": q["transform"],
            **s,
            "seed": self.seed,
            "device": self.device,
            "progress": self.progress,
        }
