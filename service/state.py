"""What the app holds between requests: the loaded model and the cache; loading and hot reload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import anyio
import faiss
import numpy as np
from hashrec.model_store import ModelStore, StoreError
from hashrec.retrieval.model import ServingModel
from hashrec.retrieval.recommender import Recommender
from hashrec.retrieval.search import served_searcher
from hashrec.service import metrics
from hashrec.service.cache import AnswerCache, InProcessCache, NoCache, RedisCache
from hashrec.service.coalesce import Coalescer
from hashrec.service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """One model and its query logic, swapped together as one reference."""

    model: ServingModel
    recommender: Recommender

    @property
    def version(self) -> str:
        return self.model.version


class ReloadRefused(RuntimeError):
    """A version failed verification, loading or the smoke query; the old model keeps serving."""


def smoke_test(recommender: Recommender) -> None:
    """Real queries through the new model before it may serve, one on every query path: a batch
    (``/v1/recommend/batch``), a known user, a visitor by history and similar items.

    Every path runs, so its compiled kernels are loaded (or compiled) here, in the loading
    thread, not on the event loop by the first request, and a model that cannot answer one of
    them (a code projection of the wrong shape, non-finite vectors) never serves.
    """
    model = recommender.model
    if model.n_users == 0 or model.n_items == 0:
        raise ReloadRefused(f"version {model.version} has no users or items")
    k = min(10, model.n_items)
    history = np.arange(min(3, model.n_items), dtype=np.int64)
    answers = {
        "batch": recommender.for_users(np.array([0]), k=k, exclude_seen=False)[0],
        "known user": recommender.for_user(0, k=k, exclude_seen=False),
    }
    if model.encodes_histories:  # without a query rule, visitors get popular items
        answers["visitor"] = recommender.for_history(history, k, exclude_seen=False)
    if model.n_items > 1:  # an item is never similar to itself
        answers["similar items"] = recommender.similar(0, k)
    for path, answer in answers.items():
        if not answer or not all(np.isfinite(score) for _, score in answer):
            raise ReloadRefused(f"version {model.version} failed the smoke query ({path})")


@dataclass
class ServiceState:
    """Mutable app state; ``loaded`` is replaced whole, never edited in place."""

    settings: Settings
    cache: AnswerCache
    loaded: Loaded | None = None
    not_ready_reason: str | None = "no model loaded yet"
    draining: bool = False
    refused: dict[str, str] = field(default_factory=dict)
    coalescer: Coalescer[tuple[bytes, bool]] = field(default_factory=Coalescer)
    store: ModelStore = field(init=False)
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.store = ModelStore(self.settings.store)

    def public_reason(self) -> str | None:
        """Why no model serves, for unauthenticated answers: the store's location (a path, a
        bucket) is said as "the store"; the log keeps it."""
        reason = self.not_ready_reason
        if reason is None:
            return None
        for location in sorted({self.store.url, str(self.settings.store)}, key=len, reverse=True):
            reason = reason.replace(f"store {location}", "the store").replace(location, "the store")
        return reason

    def _build(self, version: str | None) -> Loaded:
        """Verify, load and smoke-test a version or alias (blocking; runs in a worker thread)."""
        artifact = self.store.open(self.store.resolve(version) if version is not None else None)
        model = ServingModel.from_artifact(
            artifact,
            hamming_kernel=self.settings.hamming_kernel,
            rerank_dtype=self.settings.rerank_dtype,
            scan_prefetch_bytes=self.settings.scan_prefetch_bytes,
        )
        searcher = served_searcher(model, self.settings.oversample, self.settings.max_candidates)
        recommender = Recommender(model, searcher)
        smoke_test(recommender)
        return Loaded(model, recommender)

    async def reload(self, version: str | None = None) -> Loaded:
        """Load ``version`` (default: the pinned or current one) off the event loop and swap it in.

        Raises
        ------
        ReloadRefused
            With the reason; the previous model (if any) keeps serving.
        """
        async with self._reload_lock:
            wanted = version or self.settings.version
            started = time.perf_counter()
            try:
                loaded = await anyio.to_thread.run_sync(self._build, wanted)
            except Exception as err:  # any failure refuses the candidate, never the serving model
                name = wanted or "current"
                self.refused[name] = str(err)
                metrics.RELOADS.labels(result="refused").inc()
                if self.loaded is None:
                    self.not_ready_reason = str(err)
                if isinstance(err, (StoreError, ReloadRefused, ValueError, OSError)):
                    log.error("refused model version %s: %s", name, err)
                else:  # unexpected: keep the traceback for the bug report
                    log.exception("refused model version %s: %s", name, err)
                raise ReloadRefused(str(err)) from err
            previous = self.loaded
            self.loaded, self.not_ready_reason = loaded, None
            metrics.RELOADS.labels(result="loaded").inc()
            metrics.set_model_version(loaded.version, previous.version if previous else None)
            log.info(
                "serving model version %s (%d users, %d items, %d bits) loaded in %.2fs",
                loaded.version,
                loaded.model.n_users,
                loaded.model.n_items,
                loaded.model.bits,
                time.perf_counter() - started,
            )
            return loaded

    async def follow_store(self) -> None:
        """Poll the store's current pointer (or the alias HASHREC_VERSION names) and reload when it
        names a new, unrefused version.

        Nothing stops the loop but cancellation: an unexpected error is logged and the next poll
        tries again (a follower that died would leave /readyz green and newer versions unread).
        """
        interval = self.settings.poll_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self._follow_once()
            except Exception:
                log.exception("the store follower failed this poll; it tries again")

    def _followed(self) -> str | None:
        """What the pinned name (a version stays itself, an alias moves) or current names now."""
        pinned = self.settings.version
        return self.store.resolve(pinned) if pinned is not None else self.store.current()

    async def _follow_once(self) -> None:
        try:
            current = await anyio.to_thread.run_sync(self._followed)
        except StoreError as err:
            log.warning("cannot read the store's current version: %s", err)
            return
        serving = self.loaded.version if self.loaded else None
        if current is None or current == serving or current in self.refused:
            return
        with contextlib.suppress(ReloadRefused):  # logged, counted and remembered by reload()
            await self.reload(current)


def make_cache(settings: Settings) -> AnswerCache:
    """The cache the settings ask for: none, in-process, or Redis."""
    if not settings.cache_enabled:
        return NoCache()
    if settings.redis_url is None:
        return InProcessCache(settings.cache_size, settings.cache_ttl_s)
    return RedisCache(settings.redis_url, settings.cache_ttl_s, settings.redis_timeout_s)


def make_state(settings: Settings) -> ServiceState:
    faiss.omp_set_num_threads(settings.faiss_threads)
    return ServiceState(settings=settings, cache=make_cache(settings))
