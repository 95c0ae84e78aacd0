"""Interaction data: loading (LightGCN, MovieLens, CSV, parquet), splitting, synthesis, writing.

Public names: `DataError`, `Interactions`, `load_interactions`, `generate_interactions`,
`write_interactions_csv`, plus the `FORMATS` and `SPLITS` name tuples.
"""

from .detect import FORMATS
from .errors import DataError
from .interactions import SPLITS, Interactions
from .load import load_interactions
from .synthetic import generate_interactions
from .writers import write_interactions_csv

__all__ = [
    "FORMATS",
    "SPLITS",
    "DataError",
    "Interactions",
    "generate_interactions",
    "load_interactions",
    "write_interactions_csv",
]
