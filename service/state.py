"""What the app holds between requests: the loaded model, its searcher and the cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import faiss

from model_store import ModelStore, StoreError
from service.cache import AnswerCache, InProcessCache, NoCache
from service.model import ServingModel
from service.search import TwoStageSearcher
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    """One model and the searcher bound to it, swapped together as one reference."""

    model: ServingModel
    searcher: TwoStageSearcher


@dataclass
class ServiceState:
    """Mutable app state; ``loaded`` is replaced whole, never edited in place."""

    settings: Settings
    cache: AnswerCache
    loaded: Loaded | None = None
    not_ready_reason: str | None = "no model loaded yet"
    store: ModelStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = ModelStore(self.settings.store)

    def load(self, version: str | None = None) -> Loaded:
        """Verify and load a version (blocking; call it off the event loop)."""
        artifact = self.store.open(version or self.settings.version)
        model = ServingModel.from_artifact(artifact)
        loaded = Loaded(
            model, TwoStageSearcher(model, self.settings.oversample, self.settings.max_candidates)
        )
        self.loaded, self.not_ready_reason = loaded, None
        log.info(
            "loaded model version %s (%d users, %d items, %d bits)",
            model.version,
            model.n_users,
            model.n_items,
            model.bits,
        )
        return loaded

    def try_load(self) -> None:
        """Load at startup; a store without a usable version leaves the service not ready."""
        try:
            self.load()
        except StoreError as err:
            self.not_ready_reason = str(err)
            log.warning("not ready: %s", err)


def make_cache(settings: Settings) -> AnswerCache:
    """The cache the settings ask for."""
    if not settings.cache_enabled:
        return NoCache()
    return InProcessCache(settings.cache_size, settings.cache_ttl_s)


def make_state(settings: Settings) -> ServiceState:
    faiss.omp_set_num_threads(settings.faiss_threads)
    return ServiceState(settings=settings, cache=make_cache(settings))
