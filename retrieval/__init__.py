"""The retrieval core both sides share: the served model, its array schema, the searchers and kernels.

numpy, faiss and (optionally) numba only; it imports ``hashrec.model_store`` and nothing else of
hashrec, so the indexer evaluates exactly what the service serves without either importing the other.
"""
