"""Checks of every answer the load test gets: a wrong answer is a failure, not a success.

Each function returns ``None`` for a right answer, else a one-line reason (what Locust records as
the failure). The exact expectations (fallback flag, item count) hold only while the service
serves the version the ids were read from; answers from another version (a hot reload during the
run) get the structural checks only.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hashrec.loadtest.id_pool import IdPool


def _check_items(items: Any, expected: int | None, k: int, exclude: str | None = None) -> str | None:
    if not isinstance(items, list):
        return "items: not a list"
    if expected is not None and len(items) != expected:
        return f"items: {len(items)} returned, expected {expected}"
    if len(items) > k:
        return f"items: {len(items)} returned for k={k}"
    ids = [item.get("item_id") if isinstance(item, dict) else None for item in items]
    scores: list[Any] = [item.get("score") if isinstance(item, dict) else None for item in items]
    if any(not isinstance(i, str) or not i for i in ids):
        return "items: an entry has no item_id"
    if any(not isinstance(s, int | float) for s in scores):
        return "items: an entry has no numeric score"
    if len(set(ids)) != len(ids):
        return "items: duplicate item_id"
    if any(a < b for a, b in pairwise(scores)):
        return "items: scores are not in descending order"
    if exclude is not None and exclude in ids:
        return "items: the query item is among its own similar items"
    return None


def _version(body: Any) -> str | None:
    version = body.get("model_version") if isinstance(body, dict) else None
    return version if isinstance(version, str) and version else None


def check_recommend(body: Any, pool: IdPool, user_id: str, known: bool, k: int) -> str | None:
    """POST /v1/recommend for one user (known to the ids' version or not)."""
    version = _version(body)
    if version is None:
        return "model_version: missing"
    if body.get("user_id") != user_id:
        return "user_id: the answer names another user"
    same = version == pool.version
    fallback = not known  # unknown users, and only they, get the popular items
    if same and body.get("fallback") is not fallback:
        return f"fallback: {body.get('fallback')!r} for a {'known' if known else 'unknown'} user"
    expected = pool.expected_items(k, user_id if known else None) if same else None
    return _check_items(body.get("items"), expected, k)


def check_batch(body: Any, pool: IdPool, user_ids: list[str], known: list[bool], k: int) -> str | None:
    """POST /v1/recommend/batch: one result per user, in order, each a right answer."""
    if _version(body) is None:
        return "model_version: missing"
    results = body.get("results")
    if not isinstance(results, list) or len(results) != len(user_ids):
        return f"results: {len(results) if isinstance(results, list) else 'none'} for {len(user_ids)} users"
    for result, user, is_known in zip(results, user_ids, known, strict=True):
        if not isinstance(result, dict):
            return "results: an entry is not an object"
        reason = check_recommend(result, pool, user, is_known, k)
        if reason is not None:
            return f"results: {reason}"
    return None


def check_similar(body: Any, pool: IdPool, item_id: str, k: int) -> str | None:
    """POST /v1/similar-items: k other items, the query item not among them."""
    version = _version(body)
    if version is None:
        return "model_version: missing"
    if body.get("item_id") != item_id:
        return "item_id: the answer names another item"
    expected = min(k, pool.n_items - 1) if version == pool.version else None
    return _check_items(body.get("items"), expected, k, exclude=item_id)
