"""Old name of :mod:`hashrec.indexer.pipeline`, kept only for importers outside the indexer's
reach (tests/service imports ``IndexConfig``, ``build_index`` and ``item_index`` from here).
New code imports :mod:`hashrec.indexer.pipeline`; delete this module once nothing names it."""

from hashrec.indexer.pipeline import IndexConfig, build_index, item_index

__all__ = ["IndexConfig", "build_index", "item_index"]
